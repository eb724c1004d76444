"""Make a YOLOX ONNX model take a dynamic batch (cross-camera batching).

Contract of ``make_dynamic_batch(model) -> model``:

- Input: an ONNX ``ModelProto`` of the package's contract (one input (1, 3, H, W), one output
  (1, N, 5 + C)); it is not modified.
- Output: a copy whose input and output dimension 0 is the symbolic ``batch``, with every
  constant that hard-codes batch 1 fixed: the shape of a ``Reshape`` (an initializer or a
  ``Constant``) whose first entry is 1 gets 0 (= copy the input's dim 0, or -1 under
  ``allowzero``); a constant tensor with leading dimension 1 (also through DequantizeLinear /
  QuantizeLinear / Cast / Identity, as in a Q/DQ model) concatenated along another axis
  is ``Expand``-ed to the batch of the first non-constant input of that ``Concat``. Stale
  intermediate shapes (``value_info``) are dropped. Already dynamic models come back unchanged
  (a copy).
- Raises ``ModelContractError`` when the model is not of the contract.

``check_dynamic_batch(model, batch)`` runs ONNX Runtime on ``batch`` random images at once and
one at a time and returns the largest absolute difference (the caller decides the tolerance;
float32 on the CPU gives 0 to ~1e-5). ``dynamic_batch_bytes(path)`` is what the backends load.

Command line: ``python -m tensorrt_yolox_py.tools.dynamic_batch IN.onnx OUT.onnx [--check N]``.
"""

import copy
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np

from .._lazy import require
from ..errors import ModelContractError

LOG = logging.getLogger(__name__)
BATCH_DIM = 'batch'


#: Ops whose output has their first input's shape (a constant through them stays constant).
_SHAPE_KEEPING = ('DequantizeLinear', 'QuantizeLinear', 'Cast', 'Identity')


def _onnx() -> Any:
    return require('onnx', 'dynamic-batch model conversion', 'pip install onnx')


def graph_inputs(model: Any) -> List[Any]:
    """Return the graph inputs that are not initializers."""
    inits = {init.name for init in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def batch_dim(value_info: Any) -> Union[int, str]:
    """Return dimension 0 of a tensor value: its size, or its symbolic name ('' if unknown)."""
    dims = value_info.type.tensor_type.shape.dim
    if not dims:
        return ''
    first = dims[0]
    return int(first.dim_value) if first.HasField('dim_value') else first.dim_param


def has_dynamic_batch(model: Any) -> bool:
    """Return True when the model's (single) input has a non-static dimension 0."""
    inputs = graph_inputs(model)
    return len(inputs) == 1 and not isinstance(batch_dim(inputs[0]), int)


def _set_symbolic(value_info: Any) -> None:
    dim = value_info.type.tensor_type.shape.dim[0]
    dim.Clear()
    dim.dim_param = BATCH_DIM


def make_dynamic_batch(model: Any) -> Any:
    """Return a copy of ``model`` with a dynamic batch dimension; see the module contract."""
    onnx = _onnx()
    model = copy.deepcopy(model)
    inputs = graph_inputs(model)
    if len(inputs) != 1 or len(model.graph.output) != 1:
        raise ModelContractError(f'expected 1 input and 1 output, found {len(inputs)} and '
                                 f'{len(model.graph.output)}')
    if has_dynamic_batch(model):
        return model
    if batch_dim(inputs[0]) != 1 or batch_dim(model.graph.output[0]) not in (1, ''):
        raise ModelContractError(f'expected batch 1, got input batch {batch_dim(inputs[0])!r}')
    _set_symbolic(inputs[0])
    if model.graph.output[0].type.tensor_type.shape.dim:
        _set_symbolic(model.graph.output[0])
    del model.graph.value_info[:]
    graph = model.graph
    inits: Dict[str, Any] = {init.name: init for init in graph.initializer}
    constants: Dict[str, Any] = {}
    for node in graph.node:
        if node.op_type == 'Constant' and node.attribute and node.attribute[0].name == 'value':
            constants[node.output[0]] = node
    producer = {out: node for node in graph.node for out in node.output}
    numpy_helper = onnx.numpy_helper
    fixed = 0
    new_nodes: List[Any] = []
    counter = [0]

    def fresh(base: str) -> str:
        counter[0] += 1
        return f'{base}__dynbatch{counter[0]}'

    def const_value(name: str) -> Optional[np.ndarray]:
        if name in inits:
            return numpy_helper.to_array(inits[name])
        if name in constants:
            return numpy_helper.to_array(constants[name].attribute[0].t)
        return None

    def const_like(name: str) -> Optional[np.ndarray]:
        """Return a constant, also one behind shape-keeping ops (a Q/DQ model's constants)."""
        node = producer.get(name)
        if node is not None and node.op_type in _SHAPE_KEEPING and node.input:
            return const_like(node.input[0])
        return const_value(name)

    def add_init(base: str, value: np.ndarray) -> str:
        name = fresh(base)
        init = numpy_helper.from_array(np.asarray(value), name)
        graph.initializer.append(init)
        inits[name] = init
        return name

    for node in graph.node:
        if node.op_type == 'Reshape' and len(node.input) > 1:
            shape = const_value(node.input[1])
            if shape is None or shape.ndim != 1 or len(shape) < 1 or shape[0] != 1:
                new_nodes.append(node)
                continue
            allowzero = any(a.name == 'allowzero' and a.i for a in node.attribute)
            new_shape = shape.copy()
            if not allowzero:
                new_shape[0] = 0
            elif -1 not in shape:
                new_shape[0] = -1
            else:
                raise ModelContractError(f'Reshape {node.name}: cannot make batch dynamic '
                                         f'(allowzero with -1 in {shape.tolist()})')
            node.input[1] = add_init(node.input[1], new_shape.astype(np.int64))
            fixed += 1
        elif node.op_type == 'Concat':
            axis = next((a.i for a in node.attribute if a.name == 'axis'), 0)
            values = [const_like(name) for name in node.input]
            dynamic = [name for name, v in zip(node.input, values) if v is None]
            if axis == 0 or not dynamic:
                new_nodes.append(node)
                continue
            for k, (name, value) in enumerate(zip(node.input, values)):
                if value is None or value.ndim < 2 or value.shape[0] != 1:
                    continue
                # shape = concat(shape(dynamic input)[0:1], value.shape[1:]); Expand to it.
                shp, first, full, out = (fresh('shape'), fresh('batch'), fresh('target'),
                                         fresh(name))
                starts = add_init('zero', np.array([0], np.int64))
                ends = add_init('one', np.array([1], np.int64))
                rest = add_init('rest', np.array(value.shape[1:], np.int64))
                new_nodes += [
                    onnx.helper.make_node('Shape', [dynamic[0]], [shp], name=fresh('Shape')),
                    onnx.helper.make_node('Slice', [shp, starts, ends], [first],
                                          name=fresh('Slice')),
                    onnx.helper.make_node('Concat', [first, rest], [full], axis=0,
                                          name=fresh('Concat')),
                    onnx.helper.make_node('Expand', [name, full], [out], name=fresh('Expand'))]
                node.input[k] = out
                fixed += 1
        new_nodes.append(node)
    del graph.node[:]
    graph.node.extend(new_nodes)
    used = {name for node in graph.node for name in node.input}
    used |= {value.name for value in graph.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    onnx.checker.check_model(model)
    LOG.info('dynamic batch: input and output dim 0 symbolic, %d batch-1 constants fixed',
             fixed)
    return model


def dynamic_batch_bytes(path: Union[str, Path]) -> bytes:
    """Return the serialized dynamic-batch version of the ONNX file ``path``."""
    onnx = _onnx()
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - OSError, protobuf DecodeError, ...
        raise ModelContractError(f'{path}: cannot read the ONNX model: {exc}') from exc
    return make_dynamic_batch(model).SerializeToString()


def check_dynamic_batch(model: Any, batch: int = 4, seed: int = 0) -> float:
    """Return max |batched - single| of ``model`` (dynamic) on ``batch`` random images."""
    ort = require('onnxruntime', 'checking a dynamic-batch model', 'pip install onnxruntime')
    data = model if isinstance(model, bytes) else model.SerializeToString()
    session = ort.InferenceSession(data, providers=['CPUExecutionProvider'])
    meta = session.get_inputs()[0]
    _, channels, height, width = meta.shape
    dtype = np.float16 if meta.type == 'tensor(float16)' else np.float32
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (batch, channels, height, width)).astype(dtype)
    batched = session.run(None, {meta.name: images})[0]
    single = np.concatenate([session.run(None, {meta.name: images[i:i + 1]})[0]
                             for i in range(batch)])
    if batched.shape != single.shape:
        raise ModelContractError(f'batched output {batched.shape} != stacked single outputs '
                                 f'{single.shape}')
    return float(np.abs(batched.astype(np.float64) - single.astype(np.float64)).max())
