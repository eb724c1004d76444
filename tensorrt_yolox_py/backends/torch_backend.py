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
- ``infer(tensor)``: host (B, 3, H, W) in, host (B, N, 5 + C) out.
- ``infer_device(input_ptr, stream, batch)`` (CUDA only): the preprocessor's device buffer is
  wrapped as a tensor without a copy (``torch.as_tensor`` over ``__cuda_array_interface__``),
  and the model runs on the caller's stream (``torch.cuda.ExternalStream``), so it is ordered
  after the preprocessing kernel with no host sync in between; the output is copied to the host
  on that stream, then the stream is synchronized. Eager calls from several cameras' threads
  may overlap (each on its own stream); host-path calls and CUDA graphs are serialized by a
  lock.
- ``cuda_graph``: on CUDA, the first call per (input buffer, batch) captures the model as a
  CUDA graph (after warm-up runs on a side stream) and later calls replay it; the graph reads
  the wrapped input buffer in place, so the preprocessor must keep writing to the same pointer
  (``CudaPreprocessor`` does). Host-path calls use one static input buffer per batch size.
- ``onnx2torch`` imports ``torchvision`` for two converters YOLOX never uses (NMS, RoiAlign);
  where torchvision cannot be imported (the CPU torch wheel, CUDA machines without it) a
  placeholder module that raises on use stands in for it (``import_onnx2torch``), which also
  registers the opset-18 reductions (``axes`` as an input), Split, Resize and Pad forms that
  onnx2torch 1.5 lacks (``_register_opset18``).
"""

import importlib
import logging
import os
import sys
import threading
import time
import types
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from .._lazy import require
from ..errors import MissingDependencyError, ModelContractError
from .base import Backend, BackendCapabilities, check_io_contract
from .torch_captured import CapturedModel
from .torch_decode import DecodeHead, DEFAULT_TOP_K
from .torch_graph import convert_static, graph_digest, UnsupportedGraph

LOGGER = logging.getLogger(__name__)
INSTALL = 'pip install torch (onnx2torch for models the static converter does not cover)'
CONVERTERS = ('auto', 'static', 'onnx2torch')
#: torch.compile modes with bounded compile time ('off': CUDA graphs of the eager calls).
COMPILE_MODES = ('off', 'default', 'max-autotune-no-cudagraphs')
DEFAULT_CACHE_DIR = Path('~/.cache/tensorrt_yolox_py').expanduser()


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


class _DeviceBuffer:
    """A ``__cuda_array_interface__`` view of raw device memory (for ``torch.as_tensor``)."""

    def __init__(self, ptr: int, shape: Tuple[int, ...], dtype: np.dtype) -> None:
        self.__cuda_array_interface__ = {
            'shape': tuple(int(d) for d in shape), 'typestr': np.dtype(dtype).str,
            'data': (int(ptr), False), 'version': 2, 'strides': None}


def _onnx_dims(value_info: Any) -> Tuple[Union[int, str], ...]:
    return tuple(int(d.dim_value) if d.HasField('dim_value') else d.dim_param
                 for d in value_info.type.tensor_type.shape.dim)


@dataclass(frozen=True)
class DecodedBatch:
    """What ``infer_device_decoded`` returns: per image candidates or, past top-k, raw rows.

    ``candidates`` (B, K, 7) float32 and ``counts`` (B,) int32 of ``torch_decode``;
    ``raw[i]`` (N, 5 + C) float32 for each image i whose count exceeds K (the full output,
    copied only then).
    """

    candidates: np.ndarray
    counts: np.ndarray
    raw: Dict[int, np.ndarray]


def inductor_cache_dir(root: Path, digest: str, torch: Any, device: Any, precision: str,
                       layout: str) -> Path:
    """Return the inductor cache folder for a model / torch / GPU / precision / layout.

    Inductor keys its own entries by graph and input shapes (so by batch size) inside it.
    """
    gpu = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'
    safe = ''.join(c if c.isalnum() or c in '.-' else '_' for c in gpu)
    return (root / 'torch_inductor' /
            f'{digest[:16]}-torch{torch.__version__}-{safe}-{precision}-{layout}')


class TorchBackend(Backend):
    """YOLOX inference through PyTorch; see the module contract."""

    name = 'torch'
    capabilities = BackendCapabilities(device_input=False, max_batch=1,
                                       precisions=('fp32', 'fp16'), devices=('gpu', 'cpu'))

    def __init__(self, model_path: Union[str, Path], device: str = 'cpu',
                 precision: str = 'fp32', max_batch: int = 1, cuda_graph: bool = True,
                 num_threads: int = 0, converter: str = 'auto',
                 channels_last: Optional[bool] = None, compile_mode: str = 'off',
                 cache_dir: Optional[Union[str, Path]] = None,
                 top_k: int = DEFAULT_TOP_K) -> None:
        super().__init__()
        onnx = require('onnx', 'the torch backend', 'pip install onnx')
        torch = self._torch = require('torch', 'the torch backend', INSTALL)
        if converter not in CONVERTERS:
            raise ValueError(f'converter must be one of {CONVERTERS}, got {converter!r}')
        if compile_mode not in COMPILE_MODES:
            raise ValueError(f'compile_mode must be one of {COMPILE_MODES}, got '
                             f'{compile_mode!r}')
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
        self.metadata = {p.key: p.value for p in model.metadata_props}
        if max_batch > 1:
            model = make_dynamic_batch(model)
        self._proto = model
        self.device = torch.device(device)
        if self.device.type == 'cuda' and not torch.cuda.is_available():
            raise ModelContractError(f'torch backend: {device} requested but torch sees no '
                                     'CUDA GPU')
        if self.device.type == 'cpu' and num_threads > 0:
            torch.set_num_threads(int(num_threads))
        self.precision = resolve_precision(precision, str(self.device))
        if self.precision == 'fp16' and self.device.type == 'cuda':
            capability = torch.cuda.get_device_capability(self.device)
            if tuple(capability) < (5, 3):
                LOGGER.warning('torch backend: GPU compute capability %s has no fast fp16; '
                               'running fp32', capability)
                self.precision = 'fp32'
        if self.device.type == 'cuda' and self.precision == 'fp32':
            # fp32 means fp32: no TF32 convolutions / matmuls (torch enables TF32 for cuDNN
            # by default, which moves outputs by ~1e-3 relative). Process-wide setting.
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        self._torch_dtype = torch.float16 if self.precision == 'fp16' else torch.float32
        if channels_last is None:
            channels_last = self.device.type == 'cuda' and self.precision == 'fp16'
        self.channels_last = bool(channels_last)
        self.top_k = int(top_k)
        self.digest = graph_digest(model)
        self._shared: Dict[str, Any] = {}
        self._graphs: Dict[int, Any] = {}
        self.converter, self.converter_fallback_reason = self._choose_converter(converter, path)
        if self.converter == 'onnx2torch':
            self.channels_last = False
        self.compile_mode = compile_mode if self.device.type == 'cuda' else 'off'
        if compile_mode != 'off' and self.compile_mode == 'off':
            LOGGER.info('torch backend: torch.compile is used on CUDA only; off on %s',
                        self.device)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else DEFAULT_CACHE_DIR
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        self.input_shape = tuple(int(d) for d in in_dims)
        self.input_dtype = np.dtype(np.float16 if self.precision == 'fp16' else np.float32)
        self.cuda_graph = bool(cuda_graph) and self.device.type == 'cuda'
        if cuda_graph and not self.cuda_graph:
            LOGGER.info('torch backend: cuda_graph needs a CUDA device; off on %s', self.device)
        self._lock = threading.RLock()
        self._stream = torch.cuda.Stream(self.device) if self.device.type == 'cuda' else None
        self._decode: Optional[DecodeHead] = None
        self.output_format = ''
        self._runner = self._make_runner()
        with torch.inference_mode():
            probe = torch.zeros(self.input_shape, dtype=self._torch_dtype, device=self.device)
            out = self._plain_fn(1)(self._layout(probe))
            if isinstance(out, (list, tuple)):
                out = out[0]
        self.output_shape = tuple(int(d) for d in out.shape)
        check_io_contract(self.input_shape, self.output_shape, str(path))
        self.capabilities = replace(self.capabilities,
                                    device_input=self.device.type == 'cuda',
                                    device_decode=self.device.type == 'cuda',
                                    max_batch=max(1, int(max_batch)),
                                    precisions=(('fp32', 'fp16') if self.device.type == 'cuda'
                                                else ('fp32',)))
        LOGGER.info('torch %s on %s, %s, %s converter, %s, %s%s: %s', torch.__version__,
                    self.device, self.precision, self.converter, self.layout,
                    'CUDA graphs' if self.cuda_graph else 'eager',
                    f', torch.compile {self.compile_mode}' if self.compile_mode != 'off'
                    else '', self.describe())

    # ---- construction ----
    def _choose_converter(self, wanted: str, path: Path) -> Tuple[str, str]:
        """Convert batch 1 statically ('auto' / 'static'); return (converter, fallback reason)."""
        if wanted in ('auto', 'static'):
            try:
                self._static_graph(1)
                return 'static', ''
            except UnsupportedGraph as exc:
                if wanted == 'static':
                    raise ModelContractError(f'{path}: the static converter cannot convert '
                                             f'the model: {exc}') from exc
                LOGGER.warning('torch backend: %s is not covered by the static converter '
                               '(%s); using onnx2torch (slower, no capture guarantee)',
                               path.name, exc)
                return 'onnx2torch', str(exc)
        return 'onnx2torch', ''

    def _static_graph(self, batch: int) -> Any:
        graph = self._graphs.get(batch)
        if graph is None:
            graph = self._graphs[batch] = convert_static(
                self._proto, batch, self.device, self._torch_dtype, self.channels_last,
                shared=self._shared)
        return graph

    def _plain_fn(self, batch: int) -> Any:
        """Return the uncompiled network for ``batch`` images."""
        if self.converter == 'static':
            return self._static_graph(batch).forward
        return self._onnx2torch_module()

    def _layout(self, tensor: Any) -> Any:
        if self.channels_last:
            return tensor.contiguous(memory_format=self._torch.channels_last)
        return tensor

    @property
    def layout(self) -> str:
        """Memory order of the static inputs: 'nhwc' (channels_last) or 'nchw'."""
        return 'nhwc' if self.channels_last else 'nchw'

    def _network(self, batch: int) -> Any:
        """Return the network for ``batch`` images: static graph (compiled) or onnx2torch."""
        torch = self._torch
        fn = self._plain_fn(batch)
        if self.compile_mode == 'off':
            return fn
        folder = inductor_cache_dir(self.cache_dir, self.digest, torch, self.device,
                                    self.precision, self.layout)
        folder.mkdir(parents=True, exist_ok=True)
        os.environ['TORCHINDUCTOR_CACHE_DIR'] = str(folder)
        LOGGER.info('torch backend: torch.compile (%s) for batch %d, cache %s', self.compile_mode,
                    batch, folder)
        return torch.compile(fn, mode=self.compile_mode, dynamic=False, fullgraph=True)

    def _onnx2torch_module(self) -> Any:
        module = getattr(self, '_o2t_module', None)
        if module is None:
            onnx2torch = import_onnx2torch()
            try:
                module = onnx2torch.convert(_fold_initializer_identities(self._proto))
            except Exception as exc:  # onnx2torch raises NotImplementedError, KeyError, ...
                raise ModelContractError(f'{self.model_path}: onnx2torch cannot convert the '
                                         f'model: {type(exc).__name__}: {exc}') from exc
            module = module.eval().to(self.device, dtype=self._torch_dtype)
            if self.device.type == 'cuda':
                _host_resize_parameters(module)
            self._o2t_module = module
        return module

    def _make_runner(self) -> CapturedModel:
        return CapturedModel(self._network, tuple(self.input_shape[1:]), self._torch_dtype,
                             self.device, self.channels_last, self._decode, self.cuda_graph)

    # ---- decode configuration ----
    def configure_decode(self, score_threshold: float, output_format: str = 'auto') -> str:
        """Put decode + threshold + top-k into the captured work; return the output format.

        ``output_format`` 'auto' takes the model's ``output_format`` metadata, else probes a
        gray (114) image with the postprocess stage's test. Drops captured graphs (they are
        captured again, with the decode, on next use).
        """
        from ..stages.postprocess import DECODED_MEAN_X_THRESHOLD

        torch = self._torch
        key = (float(score_threshold), output_format)
        if self._decode is not None and getattr(self, '_decode_key', None) == key:
            return self.output_format
        fmt = output_format
        if fmt == 'auto':
            fmt = self.metadata.get('output_format', '')
            if fmt not in ('raw', 'decoded'):
                with torch.inference_mode():
                    gray = torch.full(self.input_shape, 114.0, dtype=self._torch_dtype,
                                      device=self.device)
                    out = self._plain_fn(1)(self._layout(gray))
                    if isinstance(out, (list, tuple)):
                        out = out[0]
                    mean_x = float(out[0, :, 0].double().mean())
                fmt = 'decoded' if mean_x > DECODED_MEAN_X_THRESHOLD else 'raw'
                LOGGER.info("torch backend: output format '%s' (probe mean of column 0 = "
                            "%.2f)", fmt, mean_x)
        with self._lock:
            self._decode = DecodeHead(self.input_hw, score_threshold, self.top_k, fmt,
                                      self.device)
            self._runner = self._make_runner()
        self.output_format = fmt
        self._decode_key = key
        return fmt

    def prepare(self, batches: Optional[Sequence[int]] = None) -> Dict[int, bool]:
        """Build (convert, compile, capture) the given batch sizes now; return captured-ness.

        Default: every batch size 1..max_batch (start-up, ``build_only`` and warm starts use
        this); one log line per batch size with its time (compilation can take minutes the
        first time, then comes from the cache).
        """
        batches = list(batches or range(1, self.capabilities.max_batch + 1))
        with self._lock:
            for batch in batches:
                start = time.perf_counter()
                self._runner.slot(batch)
                if self.device.type == 'cuda':
                    self._runner.run(batch, self._stream, decoded=False)
                LOGGER.info('torch backend: batch %d ready in %.1f s (%s)', batch,
                            time.perf_counter() - start,
                            'CUDA graph' if self._runner.captured(batch) else 'eager')
        return {b: self._runner.captured(b) for b in batches}

    @property
    def graph_fallback_reason(self) -> str:
        """Why CUDA graph capture fell back to eager runs ('' when it did not)."""
        return self._runner.fallback_reason

    def captured(self, batch: int = 1) -> bool:
        """Whether ``batch`` replays a CUDA graph (after its first run or ``prepare``)."""
        return self._runner.captured(batch)

    def device_lock(self) -> Any:
        """Return the backend's re-entrant lock (see ``Backend.device_lock``)."""
        return self._lock

    def input_buffer(self, batch: int) -> Tuple[int, str]:
        """Return (device pointer, layout) of the static input the ``batch`` work reads.

        A preprocessing kernel that writes ``input_dtype`` in ``layout`` there needs no copy.
        """
        if self.device.type != 'cuda':
            raise NotImplementedError('the torch backend on the CPU has no device input')
        with self._lock:
            slot = self._runner.slot(self._check_batch(batch))
        return slot.input_ptr, slot.layout

    # ---- inference ----
    def _check_batch(self, batch: int) -> int:
        if not 1 <= int(batch) <= self.capabilities.max_batch:
            raise ValueError(f'batch {batch} is outside 1..{self.capabilities.max_batch}')
        return int(batch)

    def _check_device_call(self, input_ptr: int, batch: int) -> int:
        if self._closed:
            raise RuntimeError(f'{self.name} backend is closed')
        if not self.capabilities.device_input:
            raise NotImplementedError(f'torch backend on {self.device} has no device input')
        if not int(input_ptr):
            raise ValueError('input_ptr is a null device pointer')
        return self._check_batch(batch)

    def _infer_impl(self, tensor: np.ndarray) -> np.ndarray:
        torch = self._torch
        batch = int(tensor.shape[0])
        with self._lock, torch.inference_mode():
            slot = self._runner.slot(batch)
            host = torch.from_numpy(tensor)
            if self.device.type == 'cpu':
                slot.input.copy_(host)
                return self._runner.run(batch, decoded=False).raw.float().numpy()
            with torch.cuda.device(self.device), torch.cuda.stream(self._stream):
                slot.input.copy_(host)
                out = self._runner.run(batch, self._stream, decoded=False).raw
                return out.float().cpu().numpy()

    def _device_run(self, input_ptr: int, stream: int, batch: int, decoded: bool) -> Any:
        """Copy the input into the static one unless it is that buffer, then run (locked)."""
        torch = self._torch
        external = torch.cuda.ExternalStream(int(stream), device=self.device)
        slot = self._runner.slot(batch)
        if int(input_ptr) != slot.input_ptr:     # an NCHW buffer elsewhere: one copy kernel
            shape = (batch,) + tuple(self.input_shape[1:])
            with torch.cuda.stream(external):
                slot.input.copy_(torch.as_tensor(
                    _DeviceBuffer(input_ptr, shape, self.input_dtype), device=self.device))
        return self._runner.run(batch, external, decoded=decoded, copy_stream=self._stream)

    def infer_device(self, input_ptr: int, stream: int, batch: int = 1) -> np.ndarray:
        """Run on ``batch`` preprocessed images at ``input_ptr``, on CUDA stream ``stream``.

        The input is NCHW ``input_dtype``, or the static input of ``input_buffer(batch)``
        itself (then in its layout, read in place). Returns the host (B, N, 5 + C) output.
        """
        batch = self._check_device_call(input_ptr, batch)
        torch = self._torch
        with self._lock, torch.inference_mode(), torch.cuda.device(self.device):
            slot = self._device_run(input_ptr, stream, batch, decoded=False)
            return slot.raw.float().cpu().numpy()

    def infer_device_decoded(self, input_ptr: int, stream: int, batch: int = 1
                             ) -> DecodedBatch:
        """As ``infer_device``, with decode, threshold and top-k on the GPU (``DecodedBatch``).

        ``configure_decode`` first. Only the candidates cross to the host, plus the full
        output of an image with more passing anchors than ``top_k``.
        """
        if self._decode is None:
            raise RuntimeError('configure_decode() before infer_device_decoded()')
        batch = self._check_device_call(input_ptr, batch)
        torch = self._torch
        with self._lock, torch.inference_mode(), torch.cuda.device(self.device):
            slot = self._device_run(input_ptr, stream, batch, decoded=True)
            counts = slot.host_counts.numpy().copy()
            cands = slot.host_candidates.numpy().copy()
            raw = {int(i): slot.raw[int(i)].float().cpu().numpy()
                   for i in np.flatnonzero(counts > cands.shape[1])}
        return DecodedBatch(cands, counts, raw)

    def close(self) -> None:
        """Drop the graphs, networks and buffers (the CUDA caching allocator keeps memory)."""
        if self._closed:
            return
        with self._lock:
            if self._stream is not None:
                self._stream.synchronize()
            self._runner = None
            self._shared.clear()
            self._graphs.clear()
            self._o2t_module = None
        super().close()
