"""Static ONNX -> PyTorch conversion of YOLOX-contract graphs (capturable, compilable).

Why not onnx2torch: its Reshape / Slice / Resize / Shape modules read their shape arguments
from tensors at every call (``.tolist()``), a device-to-host copy that stalls the GPU and
cannot be captured in a CUDA graph, and its one-module-per-node dispatch costs host time. Why
not the package's own ``model.yolox`` definition: the shipped ONNX files have BatchNorm folded
into the convolutions and onnx-simplified names, so their weights map onto that module only by
guessing; and foreign models of the same contract would be left out. This converter reads any
graph made of the operators below, for ONE fixed input shape (batch included):

Contract of ``convert_static(model, batch, device, dtype, channels_last)``:

- ``model``: an ONNX ``ModelProto`` with one float input (B or 1, 3, H, W) and one output; a
  batch other than the model's own needs the model batch-dynamic (``onnx_model.dynamic_batch``).
- Every value that does not depend on the input (initializers, ``Constant``, ``Shape`` of an
  input-dependent tensor, arithmetic on those) is computed once, here, on the host (the ONNX
  reference evaluator). Shapes are propagated by one eager run on a zero probe input.
- What remains is a fixed list of PyTorch calls with constant arguments: ``StaticGraph``'s
  ``forward(x)`` reads nothing back to the host, so it can be captured in a CUDA graph and
  traced by ``torch.compile`` without graph breaks.
- ``dtype`` float16 converts floating weights and constants to half; ``channels_last`` stores
  4-D convolution weights (and expects the input) in NHWC memory order.
- Device operators: Conv, Relu, Clip, LeakyRelu, HardSigmoid, HardSwish, Sigmoid, Tanh, Exp,
  Sqrt, Neg, Abs, Add, Sub, Mul, Div, Pow, Max, Min, Concat, Resize (nearest, asymmetric /
  floor; linear, half_pixel or align_corners), MaxPool, AveragePool, BatchNormalization,
  Reshape, Flatten, Transpose, Slice (positive steps), Split, Squeeze, Unsqueeze, Gather
  (constant indices), Expand, Softmax, Identity, Cast (floating), ReduceMax / Min / Mean /
  Sum (constant axes). Anything else, or a form of
  these that the list does not cover, raises ``UnsupportedGraph`` with the reason (the caller
  falls back and logs it once).
- ``graph_digest(model)``: a SHA-256 of the graph and weights (keys of compile caches).
"""

import hashlib
import logging
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .._lazy import require

LOGGER = logging.getLogger(__name__)


class UnsupportedGraph(Exception):
    """The graph uses an operator (or a form of one) the static converter does not cover."""


def graph_digest(model: Any) -> str:
    """Return the SHA-256 (hex) of ``model``'s graph, weights included."""
    return hashlib.sha256(model.graph.SerializeToString()).hexdigest()


def _attrs(node: Any) -> Dict[str, Any]:
    onnx = require('onnx', 'the static ONNX converter', 'pip install onnx')
    out = {}
    for attr in node.attribute:
        value = onnx.helper.get_attribute_value(attr)
        out[attr.name] = value.decode() if isinstance(value, bytes) else value
    return out


def _host_eval(node: Any, values: Sequence[Optional[np.ndarray]], opset: int
               ) -> List[np.ndarray]:
    """Evaluate one node on host (numpy) inputs with the ONNX reference implementation."""
    onnx = require('onnx', 'the static ONNX converter', 'pip install onnx')
    reference = require('onnx.reference', 'the static ONNX converter', 'pip install onnx')
    helper = onnx.helper
    inputs = [helper.make_tensor_value_info(name, onnx.TensorProto.UNDEFINED, None)
              for name in node.input if name]
    outputs = [helper.make_tensor_value_info(name, onnx.TensorProto.UNDEFINED, None)
               for name in node.output if name]
    graph = helper.make_graph([node], 'host', inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', opset)])
    feeds = {name: value for name, value in zip(node.input, values) if name}
    try:
        results = reference.ReferenceEvaluator(model).run(None, feeds)
    except Exception as exc:  # noqa: BLE001 - any reference failure: not convertible
        raise UnsupportedGraph(f'{node.op_type} {node.name!r}: host evaluation failed: '
                               f'{type(exc).__name__}: {exc}') from exc
    return [np.asarray(r) for r in results]


class StaticGraph:
    """A converted graph: ``forward(x)`` runs its fixed list of torch calls (module contract).

    Not an ``nn.Module`` on purpose: it holds no trainable state, its constants live on one
    device in one dtype, and ``torch.compile`` traces the plain Python ``forward``.
    """

    def __init__(self, steps: List[Tuple[Callable, Tuple[str, ...], Tuple[str, ...],
                                         Tuple[str, ...]]],
                 input_name: str, output_name: str, input_shape: Tuple[int, ...],
                 output_shape: Tuple[int, ...], op_counts: Dict[str, int]) -> None:
        self.steps = steps
        self.input_name = input_name
        self.output_name = output_name
        self.input_shape = input_shape
        self.output_shape = output_shape
        self.op_counts = op_counts

    def forward(self, x: Any) -> Any:
        """Run the graph on ``x`` (the converted input shape, dtype and memory format)."""
        env = {self.input_name: x}
        for fn, ins, outs, dead in self.steps:
            result = fn(*[env[name] for name in ins])
            if len(outs) == 1:
                env[outs[0]] = result
            else:
                for name, value in zip(outs, result):
                    env[name] = value
            for name in dead:
                del env[name]
        return env[self.output_name]

    __call__ = forward


def _pads2d(pads: Sequence[int], kind: str) -> Tuple[int, int]:
    pads = list(pads) or [0, 0, 0, 0]
    if len(pads) != 4 or pads[0] != pads[2] or pads[1] != pads[3]:
        raise UnsupportedGraph(f'{kind} with asymmetric or non-2-D pads {pads}')
    return int(pads[0]), int(pads[1])


def convert_static(model: Any, batch: int, device: Any, dtype: Any,
                   channels_last: bool = False, shared: Optional[Dict[str, Any]] = None
                   ) -> StaticGraph:
    """Convert ``model`` for input (batch, 3, H, W); see the module contract.

    ``shared``: a dict that keeps the device copies of the initializers between conversions
    of the same model for other batch sizes (one copy of the weights for all of them).
    """
    torch = require('torch', 'the torch backend', 'pip install torch')
    numpy_helper = require('onnx.numpy_helper', 'the static ONNX converter', 'pip install onnx')
    F = torch.nn.functional
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')), 17)
    device = torch.device(device)
    host: Dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in host]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise UnsupportedGraph(f'{len(inputs)} inputs and {len(graph.output)} outputs')
    dims = [d.dim_value if d.HasField('dim_value') else 0
            for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or not all(dims[1:]):
        raise UnsupportedGraph(f'input dims {dims} are not (B, C, H, W) with static C, H, W')
    in_shape = (int(batch),) + tuple(int(d) for d in dims[1:])
    # device values: name -> its value for a probe input (shape propagation; one eager run)
    probe = torch.zeros(in_shape, dtype=dtype, device=device)
    if channels_last:
        probe = probe.contiguous(memory_format=torch.channels_last)
    meta: Dict[str, Any] = {inputs[0].name: probe}
    steps: List[Tuple[Callable, Tuple[str, ...], Tuple[str, ...]]] = []
    counts: Dict[str, int] = {}

    shared = {} if shared is None else shared
    by_id = {id(value): name for name, value in host.items()}

    def const(array: np.ndarray) -> Any:
        """Return a host constant as a device tensor (floating -> the compute dtype)."""
        name = by_id.get(id(array))
        if name is not None and name in shared:
            return shared[name]
        tensor = torch.from_numpy(np.array(array))
        if tensor.is_floating_point():
            tensor = tensor.to(dtype)
        tensor = tensor.to(device)
        if name is not None:
            shared[name] = tensor
        return tensor

    def scalar_or_const(array: np.ndarray) -> Any:
        if array.size == 1 and array.dtype.kind == 'f':
            return float(array.reshape(()))
        return const(array)

    def binary(fn: Callable) -> Callable:
        def make(node: Any, refs: List[Any], attrs: Dict[str, Any]) -> Tuple[Callable, list]:
            a, b = refs
            if isinstance(a, np.ndarray):
                ca = scalar_or_const(a)
                return (lambda y, ca=ca: fn(ca, y) if not isinstance(ca, float)
                        else fn(torch.full((), ca, dtype=y.dtype, device=y.device), y)), [b]
            if isinstance(b, np.ndarray):
                cb = scalar_or_const(b)
                return (lambda x, cb=cb: fn(x, cb)), [a]
            return fn, [a, b]
        return make

    def unary(fn: Callable) -> Callable:
        return lambda node, refs, attrs: (fn, refs[:1])

    def conv(node: Any, refs: List[Any], attrs: Dict[str, Any]) -> Tuple[Callable, list]:
        if attrs.get('auto_pad', 'NOTSET') not in ('NOTSET', 'VALID'):
            raise UnsupportedGraph(f"Conv auto_pad={attrs['auto_pad']}")
        weight = refs[1]
        if not isinstance(weight, np.ndarray) or weight.ndim != 4:
            raise UnsupportedGraph('Conv with a non-constant or non-2-D weight')
        w = const(weight)
        if channels_last and not w.is_contiguous(memory_format=torch.channels_last):
            w = w.contiguous(memory_format=torch.channels_last)
            name = by_id.get(id(weight))
            if name is not None:
                shared[name] = w
        b = const(refs[2]) if len(refs) > 2 and refs[2] is not None else None
        if b is not None and not isinstance(refs[2], np.ndarray):
            raise UnsupportedGraph('Conv with a non-constant bias')
        pad = _pads2d(attrs.get('pads', []), 'Conv')
        stride = tuple(attrs.get('strides', [1, 1]))
        dilation = tuple(attrs.get('dilations', [1, 1]))
        groups = int(attrs.get('group', 1))
        return (lambda x, w=w, b=b: F.conv2d(x, w, b, stride, pad, dilation, groups)), refs[:1]

    def clip(node: Any, refs: List[Any], attrs: Dict[str, Any]) -> Tuple[Callable, list]:
        lo, hi = attrs.get('min'), attrs.get('max')
        for index, ref in ((1, refs[1] if len(refs) > 1 else None),
                           (2, refs[2] if len(refs) > 2 else None)):
            if ref is None:
                continue
            if not isinstance(ref, np.ndarray):
                raise UnsupportedGraph('Clip with non-constant bounds')
            if index == 1:
                lo = float(ref)
            else:
                hi = float(ref)
        if lo == 0.0 and hi is None:
            return F.relu, refs[:1]
        if lo is not None and hi is not None:
            return (lambda x: F.hardtanh(x, lo, hi)), refs[:1]
        return (lambda x: torch.clamp(x, lo, hi)), refs[:1]

    def concat(node: Any, refs: List[Any], attrs: Dict[str, Any]) -> Tuple[Callable, list]:
        axis = int(attrs['axis'])
        parts = [const(r) if isinstance(r, np.ndarray) else None for r in refs]
        dev = [r for r in refs if not isinstance(r, np.ndarray)]

        def run(*xs: Any) -> Any:
            it = iter(xs)
            return torch.cat([p if p is not None else next(it) for p in parts], axis)
        return run, dev

    def resize(node: Any, refs: List[Any], attrs: Dict[str, Any]) -> Tuple[Callable, list]:
        x = meta[refs[0]]
        mode = attrs.get('mode', 'nearest')
        ctm = attrs.get('coordinate_transformation_mode', 'half_pixel')
        sizes = refs[3] if len(refs) > 3 else None
        scales = refs[2] if len(refs) > 2 else None
        if any(r is not None and not isinstance(r, np.ndarray) for r in (sizes, scales)):
            raise UnsupportedGraph('Resize with non-constant scales / sizes')
        if sizes is not None and sizes.size:
            out_hw = tuple(int(v) for v in sizes[-2:])
        elif scales is not None and scales.size:
            if scales[0] != 1 or scales[1] != 1:
                raise UnsupportedGraph(f'Resize scales {scales.tolist()} on N or C')
            out_hw = tuple(int(np.floor(s * f)) for s, f in zip(x.shape[2:], scales[2:]))
        else:
            raise UnsupportedGraph('Resize without scales or sizes')
        if attrs.get('antialias', 0):
            raise UnsupportedGraph('Resize with antialias')
        if mode == 'nearest':
            if ctm != 'asymmetric' or attrs.get('nearest_mode', 'round_prefer_floor') != 'floor':
                raise UnsupportedGraph(f'Resize nearest with {ctm} / '
                                       f"{attrs.get('nearest_mode')}")
            return (lambda t: F.interpolate(t, size=out_hw, mode='nearest')), refs[:1]
        if mode == 'linear' and ctm in ('half_pixel', 'pytorch_half_pixel', 'align_corners'):
            corners = ctm == 'align_corners'
            return (lambda t: F.interpolate(t, size=out_hw, mode='bilinear',
                                            align_corners=corners)), refs[:1]
        raise UnsupportedGraph(f'Resize mode {mode} / {ctm}')

    def pool(kind: str) -> Callable:
        def make(node: Any, refs: List[Any], attrs: Dict[str, Any]) -> Tuple[Callable, list]:
            if attrs.get('auto_pad', 'NOTSET') not in ('NOTSET', 'VALID'):
                raise UnsupportedGraph(f"{kind} auto_pad={attrs['auto_pad']}")
            kernel = tuple(attrs['kernel_shape'])
            stride = tuple(attrs.get('strides', [1, 1]))
            pad = _pads2d(attrs.get('pads', []), kind)
            ceil = bool(attrs.get('ceil_mode', 0))
            if kind == 'MaxPool':
                if len(node.output) > 1 and node.output[1]:
                    raise UnsupportedGraph('MaxPool with indices')
                dil = tuple(attrs.get('dilations', [1, 1]))
                return (lambda x: F.max_pool2d(x, kernel, stride, pad, dil, ceil)), refs[:1]
            include = bool(attrs.get('count_include_pad', 0))
            return (lambda x: F.avg_pool2d(x, kernel, stride, pad, ceil, include)), refs[:1]
        return make

    def batchnorm(node: Any, refs: List[Any], attrs: Dict[str, Any]) -> Tuple[Callable, list]:
        if not all(isinstance(r, np.ndarray) for r in refs[1:5]):
            raise UnsupportedGraph('BatchNormalization with non-constant statistics')
        scale, bias, mean, var = (const(r) for r in refs[1:5])
        eps = float(attrs.get('epsilon', 1e-5))
        return (lambda x: F.batch_norm(x, mean, var, scale, bias, False, 0.0, eps)), refs[:1]

    def reshape(node: Any, refs: List[Any], attrs: Dict[str, Any]) -> Tuple[Callable, list]:
        x = meta[refs[0]]
        if not isinstance(refs[1], np.ndarray):
            raise UnsupportedGraph('Reshape with a non-constant shape')
        shape = [int(v) for v in refs[1]]
        if not attrs.get('allowzero', 0):
            shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
        out = tuple(x.reshape(shape).shape)
        return (lambda t: t.reshape(out)), refs[:1]

    def flatten(node: Any, refs: List[Any], attrs: Dict[str, Any]) -> Tuple[Callable, list]:
        x = meta[refs[0]]
        axis = int(attrs.get('axis', 1)) % max(x.dim(), 1)
        lead = int(np.prod(x.shape[:axis])) if axis else 1
        return (lambda t: t.reshape(lead, -1)), refs[:1]

    def transpose(node: Any, refs: List[Any], attrs: Dict[str, Any]) -> Tuple[Callable, list]:
        perm = tuple(attrs.get('perm', range(meta[refs[0]].dim() - 1, -1, -1)))
        return (lambda t: t.permute(perm)), refs[:1]

    def slice_(node: Any, refs: List[Any], attrs: Dict[str, Any]) -> Tuple[Callable, list]:
        x = meta[refs[0]]
        if not all(isinstance(r, np.ndarray) for r in refs[1:] if r is not None):
            raise UnsupportedGraph('Slice with non-constant bounds')
        starts, ends = refs[1].tolist(), refs[2].tolist()
        axes = refs[3].tolist() if len(refs) > 3 and refs[3] is not None else \
            list(range(len(starts)))
        steps_ = refs[4].tolist() if len(refs) > 4 and refs[4] is not None else \
            [1] * len(starts)
        index: List[Any] = [slice(None)] * x.dim()
        for start, end, axis, step in zip(starts, ends, axes, steps_):
            if step <= 0:
                raise UnsupportedGraph('Slice with a non-positive step')
            size = x.shape[axis]
            start = max(0, min(size, start + size if start < 0 else start))
            end = max(0, min(size, end + size if end < 0 else end))
            index[axis % x.dim()] = slice(start, end, step)
        index_t = tuple(index)
        return (lambda t: t[index_t]), refs[:1]

    def split(node: Any, refs: List[Any], attrs: Dict[str, Any]) -> Tuple[Callable, list]:
        x = meta[refs[0]]
        axis = int(attrs.get('axis', 0))
        count = len(node.output)
        if len(refs) > 1 and refs[1] is not None:
            if not isinstance(refs[1], np.ndarray):
                raise UnsupportedGraph('Split with non-constant sizes')
            sizes = [int(v) for v in refs[1]]
        elif 'split' in attrs:
            sizes = [int(v) for v in attrs['split']]
        else:
            total = x.shape[axis]
            chunk = -(-total // count)
            sizes = [min(chunk, total - i * chunk) for i in range(count)]
        return (lambda t: torch.split(t, sizes, axis)), refs[:1]

    def axes_of(node: Any, refs: List[Any], attrs: Dict[str, Any]) -> Optional[List[int]]:
        if len(refs) > 1 and refs[1] is not None:
            if not isinstance(refs[1], np.ndarray):
                raise UnsupportedGraph(f'{node.op_type} with non-constant axes')
            return [int(v) for v in refs[1]]
        return list(attrs['axes']) if 'axes' in attrs else None

    def squeeze(node: Any, refs: List[Any], attrs: Dict[str, Any]) -> Tuple[Callable, list]:
        x = meta[refs[0]]
        axes = axes_of(node, refs, attrs)
        out = tuple(x.squeeze(tuple(axes)).shape if axes else x.squeeze().shape)
        return (lambda t: t.reshape(out)), refs[:1]

    def unsqueeze(node: Any, refs: List[Any], attrs: Dict[str, Any]) -> Tuple[Callable, list]:
        x = meta[refs[0]]
        shape = list(x.shape)
        rank = len(shape) + len(axes_of(node, refs, attrs) or [])
        for axis in sorted(a % rank for a in axes_of(node, refs, attrs) or []):
            shape.insert(axis, 1)
        out = tuple(shape)
        return (lambda t: t.reshape(out)), refs[:1]

    def gather(node: Any, refs: List[Any], attrs: Dict[str, Any]) -> Tuple[Callable, list]:
        if not isinstance(refs[1], np.ndarray):
            raise UnsupportedGraph('Gather with non-constant indices')
        axis = int(attrs.get('axis', 0))
        size = meta[refs[0]].shape[axis]
        idx = refs[1].astype(np.int64)
        idx = np.where(idx < 0, idx + size, idx)
        if idx.ndim == 0:
            i = int(idx)
            return (lambda t: t.select(axis, i)), refs[:1]
        flat = torch.from_numpy(idx.reshape(-1)).to(device)
        lead = tuple(meta[refs[0]].shape[:axis])
        tail = tuple(meta[refs[0]].shape[axis + 1:])
        out = lead + tuple(idx.shape) + tail
        return (lambda t: t.index_select(axis, flat).reshape(out)), refs[:1]

    def expand(node: Any, refs: List[Any], attrs: Dict[str, Any]) -> Tuple[Callable, list]:
        if not isinstance(refs[1], np.ndarray):
            raise UnsupportedGraph('Expand with a non-constant shape')
        x = meta[refs[0]]
        out = tuple(torch.broadcast_shapes(tuple(x.shape), tuple(int(v) for v in refs[1])))
        return (lambda t: t.expand(out)), refs[:1]

    def softmax(node: Any, refs: List[Any], attrs: Dict[str, Any]) -> Tuple[Callable, list]:
        axis = int(attrs.get('axis', -1))
        return (lambda t: torch.softmax(t, axis)), refs[:1]

    def cast(node: Any, refs: List[Any], attrs: Dict[str, Any]) -> Tuple[Callable, list]:
        onnx = require('onnx', 'the static ONNX converter', 'pip install onnx')
        to = onnx.helper.tensor_dtype_to_np_dtype(int(attrs['to']))
        if np.dtype(to).kind != 'f':
            raise UnsupportedGraph(f'Cast of a device tensor to {np.dtype(to)}')
        return (lambda t: t.to(dtype)), refs[:1]

    def leaky(node: Any, refs: List[Any], attrs: Dict[str, Any]) -> Tuple[Callable, list]:
        slope = float(attrs.get('alpha', 0.01))
        return (lambda t: F.leaky_relu(t, slope)), refs[:1]

    def hard_sigmoid(node: Any, refs: List[Any], attrs: Dict[str, Any]
                     ) -> Tuple[Callable, list]:
        alpha, beta = float(attrs.get('alpha', 0.2)), float(attrs.get('beta', 0.5))
        return (lambda t: torch.clamp(t * alpha + beta, 0.0, 1.0)), refs[:1]

    def reduce(fn: Callable) -> Callable:
        def make(node: Any, refs: List[Any], attrs: Dict[str, Any]) -> Tuple[Callable, list]:
            axes = axes_of(node, refs, attrs)
            keep = bool(attrs.get('keepdims', 1))
            if not axes:
                if attrs.get('noop_with_empty_axes', 0):
                    return (lambda t: t), refs[:1]
                axes = list(range(meta[refs[0]].dim()))
            dims = tuple(int(a) for a in axes)
            return (lambda t: fn(t, dims, keep)), refs[:1]
        return make

    table: Dict[str, Callable] = {
        'ReduceMax': reduce(lambda t, d, k: torch.amax(t, d, k)),
        'ReduceMin': reduce(lambda t, d, k: torch.amin(t, d, k)),
        'ReduceMean': reduce(lambda t, d, k: torch.mean(t, d, k)),
        'ReduceSum': reduce(lambda t, d, k: torch.sum(t, d, k)),
        'Conv': conv, 'Clip': clip, 'Concat': concat, 'Resize': resize,
        'MaxPool': pool('MaxPool'), 'AveragePool': pool('AveragePool'),
        'BatchNormalization': batchnorm, 'Reshape': reshape, 'Flatten': flatten,
        'Transpose': transpose, 'Slice': slice_, 'Split': split, 'Squeeze': squeeze,
        'Unsqueeze': unsqueeze, 'Gather': gather, 'Expand': expand, 'Softmax': softmax,
        'Cast': cast, 'LeakyRelu': leaky, 'HardSigmoid': hard_sigmoid,
        'Relu': unary(F.relu), 'Sigmoid': unary(torch.sigmoid), 'Tanh': unary(torch.tanh),
        'Exp': unary(torch.exp), 'Sqrt': unary(torch.sqrt), 'Neg': unary(torch.neg),
        'Abs': unary(torch.abs), 'HardSwish': unary(F.hardswish),
        'Identity': unary(lambda t: t),
        'Add': binary(torch.add), 'Sub': binary(torch.sub), 'Mul': binary(torch.mul),
        'Div': binary(torch.div), 'Pow': binary(torch.pow), 'Max': binary(torch.maximum),
        'Min': binary(torch.minimum),
    }

    for node in graph.node:
        names = list(node.input)
        if all(not n or n in host for n in names) and node.op_type != 'Shape':
            values = [host[n] if n else None for n in names]
            for name, value in zip(node.output, _host_eval(node, values, opset)):
                host[name] = value
                if node.op_type == 'Identity':   # an initializer passed on: share it by name
                    by_id[id(value)] = name
            continue
        missing = [n for n in names if n and n not in host and n not in meta]
        if missing:
            raise UnsupportedGraph(f'{node.op_type} {node.name!r} reads unknown values '
                                   f'{missing}')
        if node.op_type == 'Shape':
            attrs = _attrs(node)
            shape = np.asarray(meta[names[0]].shape, dtype=np.int64)
            start, end = attrs.get('start', 0), attrs.get('end')
            host[node.output[0]] = shape[start:end]
            continue
        make = table.get(node.op_type)
        if make is None or (node.domain not in ('', 'ai.onnx')):
            raise UnsupportedGraph(f'operator {node.domain or "ai.onnx"}.{node.op_type} '
                                   f'({node.name!r}) is not covered')
        refs: List[Any] = [None if not n else (host[n] if n in host else n) for n in names]
        fn, dev_refs = make(node, refs, _attrs(node))
        dev_names = tuple(dev_refs)
        try:
            with torch.inference_mode():
                result = fn(*[meta[n] for n in dev_names])
        except Exception as exc:  # noqa: BLE001 - shape errors etc.: not convertible
            raise UnsupportedGraph(f'{node.op_type} {node.name!r}: {type(exc).__name__}: '
                                   f'{exc}') from exc
        results = result if isinstance(result, (list, tuple)) else [result]
        outs = tuple(n for n in node.output)
        for name, value in zip(outs, results):
            meta[name] = value
        steps.append((fn, dev_names, outs))
        counts[node.op_type] = counts.get(node.op_type, 0) + 1

    out_name = graph.output[0].name
    if out_name not in meta:
        raise UnsupportedGraph('the output does not depend on the input')
    # free each intermediate after its last use (eager runs keep less memory alive)
    last_use: Dict[str, int] = {}
    for index, (_fn, ins, _outs) in enumerate(steps):
        for name in ins:
            last_use[name] = index
    planned = []
    for index, (fn, ins, outs) in enumerate(steps):
        dead = tuple(sorted({n for n in ins if last_use.get(n) == index and n != out_name}))
        planned.append((fn, ins, outs, dead))
    return StaticGraph(planned, inputs[0].name, out_name, in_shape,
                       tuple(meta[out_name].shape), counts)
