"""PyTorch backend: any YOLOX ONNX converted by onnx2torch, on a CUDA GPU or the CPU.

Contract: see ``backends.base``; this module is imported only when ``backend: torch`` is
chosen (nothing else imports torch at run time).

- ``TorchBackend(model_path, device='cuda:0' | 'cpu', precision='fp32' | 'fp16', max_batch=1,
  cuda_graph=False)``. The ONNX model is checked against the YOLOX contract, made
  batch-dynamic in memory when ``max_batch`` > 1 (``onnx_model.dynamic_batch``), converted with
  ``onnx2torch.convert`` and run under ``torch.inference_mode``.
- Precision: ``fp16`` on a CUDA device (compute capability >= 5.3) converts the module to half
  (``input_dtype`` becomes float16, so the CUDA preprocessor writes half directly); on the CPU
  the backend runs fp32 and says so in the log. ``int8`` is not a torch precision: fp16 on a
  GPU, fp32 on the CPU, with a log line (``resolve_precision``). fp32 on CUDA turns TF32 off
  (process-wide), so fp32 is IEEE fp32. Outputs are always float32 host arrays.
- ``infer(tensor)`` (``Backend.infer``): (B, 3, H, W) in, host (B, N, 5 + C) out. A host
  tensor is copied into a static device input on the backend's own stream. On CUDA
  (``capabilities.device_memory``) a ``tensors.DeviceTensor`` (the preprocessor's output) is
  wrapped without a copy (``torch.as_tensor`` over its ``__cuda_array_interface__``) and the
  model runs on the tensor's stream (``torch.cuda.ExternalStream``), so it is ordered after
  the preprocessing kernel with no host sync in between; the output is copied to the host on
  that stream, then the stream is synchronized. Eager device-tensor calls from several
  cameras' threads may overlap (each on its own stream); host-tensor calls and CUDA graphs are
  serialized by a lock.
- ``cuda_graph``: on CUDA, the first call per (input buffer, batch) captures the model as a
  CUDA graph (after warm-up runs on a side stream) and later calls replay it; the graph reads
  the wrapped input buffer in place, so the preprocessor must keep writing to the same pointer
  (``CudaPreprocessor`` does: one output buffer, moved only when a larger batch comes).
  Host-tensor calls use one static input buffer per batch size.
- ``onnx2torch`` imports ``torchvision`` for two converters YOLOX never uses (NMS, RoiAlign);
  where torchvision cannot be imported (the CPU torch wheel, CUDA machines without it) a
  placeholder module that raises on use stands in for it (``import_onnx2torch``), which also
  registers the opset-18 reductions (``axes`` as an input), Split, Resize and Pad forms that
  onnx2torch 1.5 lacks (``_register_opset18``).
"""

import contextlib
import importlib
import logging
import sys
import threading
import types
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, Tuple, Union

import numpy as np

from .._lazy import require
from ..errors import MissingDependencyError, ModelContractError
from ..tensors import DeviceTensor
from .base import Backend, BackendCapabilities, check_io_contract

LOGGER = logging.getLogger(__name__)
INSTALL = 'pip install torch && pip install --no-deps onnx2torch==1.5.15'
_GRAPH_WARMUP = 3


def _placeholder_torchvision() -> None:
    """Put a ``torchvision`` stand-in into ``sys.modules`` whose ops raise when called."""
    for name in [m for m in sys.modules if m == 'torchvision' or m.startswith('torchvision.')]:
        del sys.modules[name]

    def unavailable(*_args: Any, **_kwargs: Any) -> Any:
        raise MissingDependencyError('this ONNX model uses NMS or RoiAlign, which onnx2torch '
                                     'runs through torchvision: install a torchvision that '
                                     'matches torch')

    package = types.ModuleType('torchvision')
    ops = types.ModuleType('torchvision.ops')
    ops.nms = ops.batched_nms = ops.roi_align = ops.box_convert = unavailable
    package.ops = ops
    package.__version__ = '0+placeholder'
    sys.modules['torchvision'] = package
    sys.modules['torchvision.ops'] = ops


def import_onnx2torch() -> Any:
    """Import onnx2torch (with a torchvision placeholder where torchvision does not import)."""
    require('torch', 'the torch backend', INSTALL)
    if 'onnx2torch' not in sys.modules:
        try:
            importlib.import_module('torchvision.ops')
        except Exception as exc:  # noqa: BLE001 - missing, or built for another torch
            LOGGER.debug('torchvision unusable (%s): onnx2torch gets a placeholder', exc)
            _placeholder_torchvision()
    onnx2torch = require('onnx2torch', 'the torch backend', INSTALL)
    _register_opset18()
    return onnx2torch


#: Reductions whose opset 18 form takes ``axes`` as an input (onnx2torch 1.5 knows up to 13).
_REDUCTIONS_18 = ('ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceMax',
                  'ReduceMean', 'ReduceMin', 'ReduceProd', 'ReduceSumSquare')


def _fold_initializer_identities(model: Any) -> Any:
    """Bypass Identity nodes that only forward an initializer (unsimplified torch exports).

    onnx2torch takes convolution weights and biases only as initializers; torch's exporter,
    without onnxsim, passes many through Identity nodes. Their consumers are pointed at the
    initializer itself (an Identity that is a graph output is kept).
    """
    graph = model.graph
    inits = {init.name for init in graph.initializer}
    outputs = {out.name for out in graph.output}
    alias = {node.output[0]: node.input[0] for node in graph.node
             if node.op_type == 'Identity' and node.input[0] in inits
             and node.output[0] not in outputs}
    if not alias:
        return model
    keep = [node for node in graph.node
            if not (node.op_type == 'Identity' and node.output[0] in alias)]
    for node in keep:
        for index, name in enumerate(node.input):
            if name in alias:
                node.input[index] = alias[name]
    del graph.node[:]
    graph.node.extend(keep)
    return model


def _host_resize_parameters(module: Any) -> None:
    """Give onnx2torch's Resize modules their constant scales / sizes as host tensors.

    onnx2torch reads them with ``.tolist()``; from a CUDA tensor that is a device-to-host copy,
    which stalls every call and cannot be captured in a CUDA graph. Constant inputs (module
    buffers: the same tensor each call) are copied to the host once and reused.
    """
    for sub in module.modules():
        if type(sub).__name__ != 'OnnxResize':
            continue
        original = sub.forward
        cache: Dict[int, Any] = {}

        def host(value: Any, cache: Dict[int, Any] = cache) -> Any:
            if value is None or not getattr(value, 'is_cuda', False):
                return value
            entry = cache.get(id(value))
            if entry is None:
                if len(cache) >= 8:          # not constants after all: no caching
                    return value
                # the cache holds the tensor itself, so its id cannot be reused meanwhile
                entry = cache[id(value)] = (value, value.detach().to('cpu'))
            return entry[1]

        def forward(input_tensor: Any, roi: Any = None, scales: Any = None, sizes: Any = None,
                    original: Any = original, host: Any = host) -> Any:
            return original(input_tensor, roi, host(scales), host(sizes))

        sub.forward = forward


def _register_opset18() -> None:
    """Teach onnx2torch opset-18/19 forms YOLOX graphs may use (idempotent; see module doc).

    Reductions with constant ``axes`` inputs; Split / Resize / Pad through their opset 13
    converters where the node uses none of the newer features (otherwise NotImplementedError).
    """
    registry = importlib.import_module('onnx2torch.node_converters.registry')
    reduce = importlib.import_module('onnx2torch.node_converters.reduce')
    common = importlib.import_module('onnx2torch.utils.common')

    def convert(node: Any, graph: Any) -> Any:
        axes = None
        if len(node.input_values) > 1 and node.input_values[1]:
            try:
                axes = common.get_const_value(node.input_values[1], graph).tolist()
            except KeyError as exc:
                raise NotImplementedError(f'{node.operation_type} with non-constant axes'
                                          ) from exc
        if not axes and node.attributes.get('noop_with_empty_axes', 0):
            raise NotImplementedError(f'{node.operation_type} with noop_with_empty_axes')
        module = reduce.OnnxReduceStaticAxes(operation_type=node.operation_type, axes=axes,
                                             keepdims=node.attributes.get('keepdims', 1))
        mapping = common.OnnxMapping(inputs=(node.input_values[0],),
                                     outputs=node.output_values)
        return common.OperationConverterResult(torch_module=module, onnx_mapping=mapping)

    def alias(op: str, old: int, refuse: Any) -> Any:
        older = registry.get_converter(op, old)

        def converter(node: Any, graph: Any) -> Any:
            why = refuse(node)
            if why:
                raise NotImplementedError(f'{op}: {why}')
            return older(node, graph)
        return converter

    def attr(name: str, bad: Any) -> Any:
        return lambda node: (f'{name}={node.attributes.get(name)!r} is not supported'
                             if node.attributes.get(name, bad[0]) not in bad else '')

    table = [(op, 18, convert) for op in _REDUCTIONS_18]
    # opset 18/19 forms whose new features YOLOX never uses: run the opset 13 converter
    table += [('Split', 18, alias('Split', 13, lambda node: '' if len(node.input_values) > 1
                                  or 'num_outputs' not in node.attributes
                                  or node.attributes['num_outputs'] == len(node.output_values)
                                  else 'num_outputs')),
              ('Resize', 18, alias('Resize', 13, attr('antialias', (0,)))),
              ('Resize', 19, alias('Resize', 13, attr('antialias', (0,)))),
              ('Pad', 18, alias('Pad', 13, lambda node: 'axes' if len(node.input_values) > 3
                                and node.input_values[3] else '')),
              ('Pad', 19, alias('Pad', 13, attr('mode', ('constant', 'reflect', 'edge'))))]
    for op, version, converter in table:
        try:
            registry.add_converter(operation_type=op, version=version)(converter)
        except ValueError:  # registered already (by us, or by a newer onnx2torch)
            pass


def resolve_precision(precision: str, device: str) -> str:
    """Return the precision the torch backend runs for a requested one on ``device``."""
    cuda = device.startswith('cuda')
    if precision == 'int8':
        run = 'fp16' if cuda else 'fp32'
        LOGGER.warning('torch backend: precision int8 is a TensorRT / ONNX Runtime mode; '
                       'running %s on %s instead', run, device)
        return run
    if precision == 'fp16' and not cuda:
        LOGGER.warning('torch backend: fp16 needs a CUDA GPU; running fp32 on %s', device)
        return 'fp32'
    if precision not in ('fp32', 'fp16'):
        raise ValueError(f'unknown precision {precision!r} (fp32 / fp16 / int8)')
    return precision


class _DeviceView:
    """A ``__cuda_array_interface__`` of a device tensor without its stream (for torch).

    The model already runs on the tensor's stream, so torch needs no extra synchronisation.
    """

    def __init__(self, tensor: DeviceTensor) -> None:
        self.__cuda_array_interface__ = tensor.cuda_array_interface(with_stream=False)


def _onnx_dims(value_info: Any) -> Tuple[Union[int, str], ...]:
    return tuple(int(d.dim_value) if d.HasField('dim_value') else d.dim_param
                 for d in value_info.type.tensor_type.shape.dim)


class TorchBackend(Backend):
    """YOLOX inference through PyTorch (onnx2torch); see the module contract."""

    name = 'torch'
    capabilities = BackendCapabilities(device_memory=False, max_batch=1,
                                       precisions=('fp32', 'fp16'), devices=('gpu', 'cpu'))

    def __init__(self, model_path: Union[str, Path], device: str = 'cpu',
                 precision: str = 'fp32', max_batch: int = 1, cuda_graph: bool = False,
                 num_threads: int = 0) -> None:
        super().__init__()
        onnx = require('onnx', 'the torch backend', 'pip install onnx')
        onnx2torch = import_onnx2torch()
        torch = self._torch = importlib.import_module('torch')
        path = self.model_path = Path(model_path)
        if not path.is_file():
            raise ModelContractError(f'model file not found: {path}')
        try:
            model = onnx.load(str(path))
        except Exception as exc:  # noqa: BLE001 - OSError, protobuf DecodeError, ...
            raise ModelContractError(f'{path}: cannot read the ONNX model: {exc}') from exc
        from ..onnx_model.dynamic_batch import graph_inputs, has_dynamic_batch, make_dynamic_batch

        inputs = graph_inputs(model)
        outputs = list(model.graph.output)
        in_dims = _onnx_dims(inputs[0]) if inputs else ()
        if len(inputs) == 1 and has_dynamic_batch(model):
            in_dims = (1,) + in_dims[1:]
        check_io_contract(in_dims, (1, 1, 6), str(path), len(inputs), len(outputs),
                          inputs[0].name if inputs else None)
        elem = inputs[0].type.tensor_type.elem_type
        if elem != onnx.TensorProto.FLOAT:
            raise ModelContractError(f'{path}: the torch backend takes float32-input models, '
                                     f'got ONNX element type {elem}')
        if max_batch > 1:
            model = make_dynamic_batch(model)
        self.device = torch.device(device)
        if self.device.type == 'cuda' and not torch.cuda.is_available():
            raise ModelContractError(f'torch backend: {device} requested but torch sees no '
                                     'CUDA GPU')
        if self.device.type == 'cuda':
            self.device_id = (self.device.index if self.device.index is not None
                              else torch.cuda.current_device())
        if self.device.type == 'cpu' and num_threads > 0:
            torch.set_num_threads(int(num_threads))
        self.precision = resolve_precision(precision, str(self.device))
        if self.precision == 'fp16' and self.device.type == 'cuda':
            capability = torch.cuda.get_device_capability(self.device)
            if tuple(capability) < (5, 3):
                LOGGER.warning('torch backend: GPU compute capability %s has no fast fp16; '
                               'running fp32', capability)
                self.precision = 'fp32'
        try:
            module = onnx2torch.convert(_fold_initializer_identities(model))
        except Exception as exc:  # onnx2torch raises NotImplementedError, KeyError, ...
            raise ModelContractError(f'{path}: onnx2torch cannot convert the model: '
                                     f'{type(exc).__name__}: {exc}') from exc
        if self.device.type == 'cuda' and self.precision == 'fp32':
            # fp32 means fp32: no TF32 convolutions / matmuls (torch enables TF32 for cuDNN
            # by default, which moves outputs by ~1e-3 relative). Process-wide setting.
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        self._torch_dtype = torch.float16 if self.precision == 'fp16' else torch.float32
        self._module = module.eval().to(self.device, dtype=self._torch_dtype)
        if self.device.type == 'cuda':
            _host_resize_parameters(self._module)
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        self.input_shape = tuple(int(d) for d in in_dims)
        self.input_dtype = np.dtype(np.float16 if self.precision == 'fp16' else np.float32)
        self.cuda_graph = bool(cuda_graph) and self.device.type == 'cuda'
        if cuda_graph and not self.cuda_graph:
            LOGGER.info('torch backend: cuda_graph needs a CUDA device; off on %s', self.device)
        self._lock = threading.Lock()
        self.graph_fallback_reason = ''
        self._graphs: Dict[tuple, Tuple[Any, Any]] = {}
        self._static_in: Dict[int, Any] = {}
        self._stream = torch.cuda.Stream(self.device) if self.device.type == 'cuda' else None
        with torch.inference_mode():
            probe = torch.zeros(self.input_shape, dtype=self._torch_dtype, device=self.device)
            out = self._forward(probe)
        self.output_shape = tuple(int(d) for d in out.shape)
        check_io_contract(self.input_shape, self.output_shape, str(path))
        self.capabilities = replace(self.capabilities,
                                    device_memory=self.device.type == 'cuda',
                                    max_batch=max(1, int(max_batch)),
                                    precisions=(('fp32', 'fp16') if self.device.type == 'cuda'
                                                else ('fp32',)))
        LOGGER.info('torch %s on %s, %s%s: %s', torch.__version__, self.device, self.precision,
                    ', CUDA graphs' if self.cuda_graph else '', self.describe())

    def _forward(self, tensor: Any) -> Any:
        out = self._module(tensor)
        if isinstance(out, (list, tuple)):
            out = out[0]
        return out

    def _to_host(self, out: Any) -> np.ndarray:
        return out.float().cpu().numpy()

    def _infer_impl(self, tensor: Union[np.ndarray, DeviceTensor]) -> np.ndarray:
        if isinstance(tensor, DeviceTensor):
            return self._infer_device(tensor)
        torch = self._torch
        with self._lock, torch.inference_mode():
            host = torch.from_numpy(tensor)
            if self.device.type == 'cpu':
                return self._to_host(self._forward(host))
            batch = int(tensor.shape[0])
            with torch.cuda.device(self.device), torch.cuda.stream(self._stream):
                static = self._static_in.get(batch)
                if static is None:
                    static = self._static_in[batch] = torch.empty(
                        tensor.shape, dtype=self._torch_dtype, device=self.device)
                static.copy_(host)
                out = self._run(static, ('host', batch), self._stream)
                return self._to_host(out)

    def _infer_device(self, tensor: DeviceTensor) -> np.ndarray:
        """Run on a checked device tensor in place, on its stream (see the module contract)."""
        torch = self._torch
        # eager runs of several cameras may overlap on their own streams; graph capture and
        # replay (shared graphs and outputs) take the lock
        lock = self._lock if self.cuda_graph else contextlib.nullcontext()
        with lock, torch.inference_mode(), torch.cuda.device(self.device):
            external = torch.cuda.ExternalStream(tensor.stream, device=self.device)
            with torch.cuda.stream(external):
                view = torch.as_tensor(_DeviceView(tensor), device=self.device)
                out = self._run(view, ('device', tensor.ptr, tensor.batch), external)
                return self._to_host(out)

    def _run(self, tensor: Any, key: tuple, stream: Any) -> Any:
        """Run the module on ``tensor`` on the current stream (a CUDA graph replay if on)."""
        if not self.cuda_graph:
            return self._forward(tensor)
        torch = self._torch
        cached = self._graphs.get(key)
        if cached is None:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(stream)
            with torch.cuda.stream(side):
                for _ in range(_GRAPH_WARMUP):
                    self._forward(tensor)
            stream.wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            try:
                # thread_local: other cameras' threads may allocate / launch while capturing
                with torch.cuda.graph(graph, stream=side, capture_error_mode='thread_local'):
                    static_out = self._forward(tensor)
            except RuntimeError as exc:   # an operator that cannot be captured: run eagerly
                stream.wait_stream(side)
                LOGGER.warning('torch backend: CUDA graph capture failed (%s); running this '
                               'model without CUDA graphs', exc)
                self.cuda_graph = False
                self.graph_fallback_reason = str(exc).splitlines()[0]
                return self._forward(tensor)
            stream.wait_stream(side)
            cached = self._graphs[key] = (graph, static_out)
            LOGGER.info('torch backend: captured a CUDA graph for %s', key)
        graph, static_out = cached
        graph.replay()
        return static_out

    def close(self) -> None:
        """Drop the module, graphs and buffers (the CUDA caching allocator keeps the memory)."""
        if self._closed:
            return
        with self._lock:
            if self._stream is not None:
                self._stream.synchronize()
            self._graphs.clear()
            self._static_in.clear()
            self._module = None
        super().close()
