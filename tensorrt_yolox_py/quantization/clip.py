"""The clip recipe's fixed INT8 ranges (a ReLU6-trained model, no calibration data).

Contract:

- ``clip_ranges(model, clip, input_range=(0, 255), residual_sums=False)``: for an ONNX model
  (``onnx.ModelProto``; only its graph is read), a (min, max) per activation tensor name:
  ``input_range`` on the graph inputs (YOLOX input is 0-255) and (0, ``clip``) on every node
  output. With ``residual_sums``, an ``Add`` of two bounded tensors gets the sum of their
  ranges (a residual sum of two ReLU6 outputs: (0, 2 * clip)) and the range-keeping operators
  (``RANGE_KEEPING_OPS``: concatenations, max pools, resizes, reshapes of bounded tensors) the
  union of their inputs' ranges. Initializers get no range.
- One recipe, two consumers: the strongly typed Q/DQ model (``strongly_typed``, as fixed Q/DQ
  scales) and TensorRT's implicit INT8 ``clip`` path (``backends.tensorrt.dynamic_range``, as
  ``set_dynamic_range`` by tensor name; TensorRT's ONNX parser keeps the ONNX names).
- Why ``residual_sums``: (0, clip) on a sum of two ReLU6 outputs, which reaches 2 * clip, cost
  the demo model 8.2 points of mAP50; the sums' own ranges cost 0.3 (calibration study, int8
  convolutions emulated; docs/performance.md).
"""

from typing import Any, Dict, Tuple

#: Changes when the recipe gives a tensor another range (engine and model caches key on it).
#: 1: (0, clip) everywhere; 2: residual sums and range-keeping operators derived.
CLIP_RECIPE_VERSION = 2

#: Operators whose output range is the union of their (bounded) inputs' ranges.
RANGE_KEEPING_OPS = ('Concat', 'MaxPool', 'Resize', 'Reshape', 'Transpose', 'Slice',
                     'Identity', 'Flatten', 'Squeeze', 'Unsqueeze')

Range = Tuple[float, float]


def clip_ranges(model: Any, clip: float, input_range: Range = (0.0, 255.0),
                residual_sums: bool = False) -> Dict[str, Range]:
    """Return the clip recipe's fixed ranges by tensor name; see the module contract."""
    inits = {i.name for i in model.graph.initializer}
    ranges = {i.name: input_range for i in model.graph.input if i.name not in inits}
    for node in model.graph.node:             # topological order (an ONNX requirement)
        bounds = [ranges.get(n) for n in node.input if n and n not in inits]
        derived = None
        if residual_sums and bounds and all(b is not None for b in bounds):
            if node.op_type == 'Add' and len(bounds) == 2:
                derived = (bounds[0][0] + bounds[1][0], bounds[0][1] + bounds[1][1])
            elif node.op_type in RANGE_KEEPING_OPS:
                derived = (min(b[0] for b in bounds), max(b[1] for b in bounds))
        for name in node.output:
            if name and name not in ranges:
                ranges[name] = derived or (0.0, float(clip))
    return ranges
