"""Explicit INT8 dynamic ranges and per-layer precision pins on a parsed TensorRT network.

Contract (``network`` is a ``trt.INetworkDefinition`` filled by ``trt.OnnxParser``):

- ``apply_clip_ranges(trt, network, clip, input_range=(0, 255), ranges=None)``: the DLA
  recipe of a ReLU6-trained model: ``input_range`` on the network input (YOLOX input is 0-255)
  and, on every float layer output, its range in ``ranges`` (by tensor name: the recipe of
  ``quantization.clip.clip_ranges``, which gives residual sums (0, 2 * clip)), else (0,
  ``clip``) (tensors TensorRT's parser made itself). TensorRT quantizes symmetrically, so
  (0, c) means scale c / 127.
- ``apply_tensor_ranges(trt, network, ranges)``: per-tensor (min, max) from a calibration
  (``quantization.compute_tensor_ranges``), matched by tensor name (the ONNX names, which
  TensorRT's ONNX parser keeps); returns how many were set and which float tensors had none.
- ``boundary_layers(trt, network)``: (first, last) weighted layers (convolution, deconvolution,
  matrix multiply): the ones with no weighted layer between them and the network input /
  output. For YOLOX: the stem conv and the head's final reg/obj/cls convs.
- ``keep_in_fp16(trt, layers)``: pin those layers to FP16 (``layer.precision`` and the output
  types of non-network-output tensors); the builder must also set
  ``BuilderFlag.PREFER_PRECISION_CONSTRAINTS`` (or OBEY) or TensorRT ignores the pins.

``set_dynamic_range`` and layer precision are deprecated from TensorRT 10.1 / 10.12 (explicit
quantization and strong typing replace them); the DeprecationWarnings are silenced here because
the builder logs which INT8 path it took and why.
"""

import logging
import warnings
from typing import Any, Dict, List, Optional, Tuple

LOGGER = logging.getLogger(__name__)


def _is_float(trt: Any, tensor: Any) -> bool:
    return tensor is not None and tensor.dtype in (trt.float32, trt.float16)


def _set_range(tensor: Any, low: float, high: float) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        ok = tensor.set_dynamic_range(float(low), float(high))
    if ok is False:
        raise ValueError(f'TensorRT rejected the dynamic range ({low}, {high}) of tensor '
                         f'{tensor.name}')


def network_inputs(network: Any) -> List[Any]:
    """Return the network's input tensors."""
    return [network.get_input(i) for i in range(network.num_inputs)]


def layer_outputs(network: Any) -> List[Any]:
    """Return every layer output tensor, in layer order."""
    out = []
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        out.extend(layer.get_output(j) for j in range(layer.num_outputs))
    return out


def apply_clip_ranges(trt: Any, network: Any, clip: float,
                      input_range: Tuple[float, float] = (0.0, 255.0),
                      ranges: Optional[Dict[str, Tuple[float, float]]] = None) -> int:
    """Set the clip recipe's ranges on the inputs and float layer outputs; see the contract."""
    if clip <= 0:
        raise ValueError(f'clip_value must be > 0, got {clip}')
    ranges = ranges or {}
    count, widened = 0, 0
    for tensor in network_inputs(network):
        _set_range(tensor, *input_range)
        count += 1
    for tensor in layer_outputs(network):
        if _is_float(trt, tensor):
            low, high = ranges.get(tensor.name, (0.0, clip))
            widened += (low, high) != (0.0, clip)
            _set_range(tensor, low, high)
            count += 1
    LOGGER.info('explicit dynamic ranges: %d layer outputs, (0, %g) but %d (residual sums and '
                'what keeps their range), (%g, %g) on the input',
                count - network.num_inputs, clip, widened, *input_range)
    return count


def apply_tensor_ranges(trt: Any, network: Any, ranges: Dict[str, Tuple[float, float]]
                        ) -> Tuple[int, List[str]]:
    """Set calibrated (min, max) by tensor name; return (count set, float tensors missing)."""
    count, missing = 0, []
    for tensor in network_inputs(network) + layer_outputs(network):
        if not _is_float(trt, tensor):
            continue
        if tensor.name in ranges:
            low, high = ranges[tensor.name]
            if high <= low:
                high = low + 1e-6
            _set_range(tensor, low, high)
            count += 1
        else:
            missing.append(tensor.name)
    return count, missing


def _weighted_types(trt: Any) -> Tuple[Any, ...]:
    names = ('CONVOLUTION', 'DECONVOLUTION', 'MATRIX_MULTIPLY', 'FULLY_CONNECTED')
    return tuple(getattr(trt.LayerType, n) for n in names if hasattr(trt.LayerType, n))


def boundary_layers(trt: Any, network: Any) -> Tuple[List[Any], List[Any]]:
    """Return (first, last) weighted layers; see the module contract."""
    weighted = _weighted_types(trt)
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    consumers: Dict[str, List[Any]] = {}
    producer: Dict[str, Any] = {}
    for layer in layers:
        for i in range(layer.num_inputs):
            tensor = layer.get_input(i)
            if tensor is not None:
                consumers.setdefault(tensor.name, []).append(layer)
        for i in range(layer.num_outputs):
            producer[layer.get_output(i).name] = layer
    first: List[Any] = []
    seen = set()
    stack = [t.name for t in network_inputs(network)]
    while stack:
        for layer in consumers.get(stack.pop(), []):
            if layer.name in seen:
                continue
            seen.add(layer.name)
            if layer.type in weighted:
                first.append(layer)
            else:
                stack.extend(layer.get_output(i).name for i in range(layer.num_outputs))
    last: List[Any] = []
    seen = set()
    stack = [network.get_output(i).name for i in range(network.num_outputs)]
    while stack:
        layer = producer.get(stack.pop())
        if layer is None or layer.name in seen:
            continue
        seen.add(layer.name)
        if layer.type in weighted:
            last.append(layer)
        else:
            stack.extend(layer.get_input(i).name for i in range(layer.num_inputs)
                         if layer.get_input(i) is not None)
    return first, last


def keep_in_fp16(trt: Any, layers: List[Any]) -> List[str]:
    """Pin ``layers`` to FP16 (precision + output types); return their names."""
    names = []
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        for layer in layers:
            layer.precision = trt.float16
            for i in range(layer.num_outputs):
                if not layer.get_output(i).is_network_output:
                    layer.set_output_type(i, trt.float16)
            names.append(layer.name)
    return names
