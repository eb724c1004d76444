"""PyTorch backend: a YOLOX ONNX as one captured unit per batch size, on a CUDA GPU or the CPU.

Contract: see ``backends.base``; this module is imported only when ``backend: torch`` is
chosen (nothing else imports torch at run time).

- ``TorchBackend(model_path, device='cuda:0' | 'cpu', precision='fp32' | 'fp16', max_batch=1,
  cuda_graph=True, converter='auto', channels_last=None, compile_mode='off', cache_dir=None,
  top_k=1024, decode_select='topk')``. The ONNX model is checked against the YOLOX
  contract, made batch-dynamic in memory when ``max_batch`` > 1 (``onnx_model.dynamic_batch``)
  and converted per batch size by the static converter (``torch_graph``: every shape
  resolved, no host reads, so capturable and compilable); a model it does not cover falls
  back to ``onnx2torch`` with the reason logged once (``converter_fallback_reason``;
  ``converter='static'`` refuses instead). ``decode_select``: the decode head's candidate
  selection (``torch_decode``).
- Precision: ``fp16`` on a CUDA device (compute capability >= 5.3) converts the weights to half
  (``input_dtype`` float16, written directly by the CUDA preprocessor); on the CPU the backend
  runs fp32 and says so in the log. ``int8`` is not a torch precision: fp16 on a GPU, fp32 on
  the CPU, with a log line (``resolve_precision``). fp32 on CUDA turns TF32 off (process-wide),
  so fp32 is IEEE fp32. Outputs are always float32 host arrays.
- Layout: ``channels_last`` (default: on for fp16 on CUDA, measured faster on the H100) keeps
  the weights and the static inputs in NHWC memory order; ``input_layout`` is then 'NHWC'.
- The captured unit (``torch_captured.CapturedModel``): per batch size a static input, the
  network (``torch.compile``-d first when ``compile_mode`` is not 'off': inductor's cache in
  ``cache_dir``/torch_inductor/<model digest>-<torch>-<GPU>-<precision>-<layout>, its own
  keys covering the batch size) and, after ``configure_decode(score_threshold,
  output_format)``, the GPU decode + threshold + top-k (``torch_decode``), captured as one CUDA
  graph with ``cuda_graph``. ``prepare(batches)`` builds them ahead (``build_only``, warm
  starts); ``captured(batch)`` / ``graph_fallback_reason`` tell whether capture worked.
- ``infer(tensor)`` (``Backend.infer``): a host tensor is copied into the static input on the
  backend's stream; a ``tensors.DeviceTensor`` is read on its own stream (no host sync after
  the kernel that wrote it): in place when it IS the static input (``input_tensor(batch)``,
  which a preprocessor writes with ``run(sources, out=...)``), else after one device copy
  into it. Returns the host (B, N, 5 + C) output.
- ``infer_decoded(tensor)``: the same, returning ``base.DecodedBatch``: the device-to-host copy
  is the (B, K, 7) candidates (on the backend's own stream into pinned memory), plus the full
  output of an image with more than K passing anchors.
- One lock (``device_lock()``, re-entrant) serializes the static inputs' writers and the
  replays (graphs share one memory pool and their outputs).
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
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from .._lazy import require
from ..errors import MissingDependencyError, ModelContractError
from ..tensors import DeviceTensor
from .base import Backend, BackendCapabilities, check_io_contract, DecodedBatch
from .torch_captured import CapturedModel
from .torch_decode import DecodeHead, DEFAULT_TOP_K, SELECT_METHODS
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


class _DeviceView:
    """A ``__cuda_array_interface__`` of a device tensor without its stream (for torch).

    The model already runs on the tensor's stream, so torch needs no extra synchronisation.
    """

    def __init__(self, tensor: DeviceTensor) -> None:
        self.__cuda_array_interface__ = tensor.cuda_array_interface(with_stream=False)


def _onnx_dims(value_info: Any) -> Tuple[Union[int, str], ...]:
    return tuple(int(d.dim_value) if d.HasField('dim_value') else d.dim_param
                 for d in value_info.type.tensor_type.shape.dim)


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
    capabilities = BackendCapabilities(device_memory=False, max_batch=1,
                                       precisions=('fp32', 'fp16'), devices=('gpu', 'cpu'))

    def __init__(self, model_path: Union[str, Path], device: str = 'cpu',
                 precision: str = 'fp32', max_batch: int = 1, cuda_graph: bool = True,
                 num_threads: int = 0, converter: str = 'auto',
                 channels_last: Optional[bool] = None, compile_mode: str = 'off',
                 cache_dir: Optional[Union[str, Path]] = None,
                 top_k: int = DEFAULT_TOP_K, decode_select: str = 'topk') -> None:
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
        if decode_select not in SELECT_METHODS:
            raise ValueError(f'decode_select must be one of {SELECT_METHODS}, got '
                             f'{decode_select!r}')
        self.decode_select = decode_select
        self.digest = graph_digest(model)
        self._shared: Dict[str, Any] = {}
        self._graphs: Dict[int, Any] = {}
        self.converter, self.converter_fallback_reason = self._choose_converter(converter, path)
        if self.converter == 'onnx2torch':
            self.channels_last = False
        self.input_layout = 'NHWC' if self.channels_last else 'NCHW'
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
                                    device_memory=self.device.type == 'cuda',
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
                                      self.device, self.decode_select)
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

    def input_tensor(self, batch: int) -> Optional[DeviceTensor]:
        """Return the static device input the ``batch`` work reads, in ``input_layout``.

        A preprocessor that writes it (``Preprocessor.run(sources, out=...)``, under
        ``device_lock()``) leaves nothing to copy: ``infer`` / ``infer_decoded`` then read it
        in place. Its ``stream`` is the backend's own; the writer's tensor carries the writer's.
        """
        if self.device.type != 'cuda':
            return None
        batch = self._check_batch(batch)
        with self._lock:
            slot = self._runner.slot(batch)
        shape = tuple(slot.input.permute(0, 2, 3, 1).shape if self.channels_last
                      else slot.input.shape)
        return DeviceTensor(slot.input_ptr, shape, self.input_dtype, self.input_layout,
                            int(self._stream.cuda_stream), int(self.device_id), owner=self)

    # ---- inference ----
    def _check_batch(self, batch: int) -> int:
        if not 1 <= int(batch) <= self.capabilities.max_batch:
            raise ValueError(f'batch {batch} is outside 1..{self.capabilities.max_batch}')
        return int(batch)

    def _infer_impl(self, tensor: Union[np.ndarray, DeviceTensor]) -> np.ndarray:
        torch = self._torch
        if isinstance(tensor, DeviceTensor):
            with self._lock, torch.inference_mode(), torch.cuda.device(self.device):
                slot = self._device_run(tensor, decoded=False)
                return slot.raw.float().cpu().numpy()
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

    def _device_run(self, tensor: DeviceTensor, decoded: bool) -> Any:
        """Copy the input into the static one unless it is that buffer, then run (locked).

        The work runs on the tensor's stream, after what wrote it (no host sync between).
        """
        torch = self._torch
        external = torch.cuda.ExternalStream(tensor.stream, device=self.device)
        slot = self._runner.slot(tensor.batch)
        if tensor.ptr != slot.input_ptr:     # a buffer elsewhere: one copy (layout-converting)
            with torch.cuda.stream(external):
                view = torch.as_tensor(_DeviceView(tensor), device=self.device)
                if tensor.layout == 'NHWC':
                    view = view.permute(0, 3, 1, 2)
                slot.input.copy_(view)
        return self._runner.run(tensor.batch, external, decoded=decoded,
                                copy_stream=self._stream)

    def _infer_decoded_impl(self, tensor: Any) -> DecodedBatch:
        """Decode, threshold and top-k on the GPU; only candidates come back (module doc)."""
        if self._decode is None:
            raise RuntimeError('configure_decode() before infer_decoded()')
        torch = self._torch
        if not isinstance(tensor, DeviceTensor):   # a host tensor: into the static input
            with self._lock, torch.inference_mode(), torch.cuda.device(self.device), \
                    torch.cuda.stream(self._stream):
                slot = self._runner.slot(int(tensor.shape[0]))
                slot.input.copy_(torch.from_numpy(np.ascontiguousarray(tensor.array)))
            tensor = self.input_tensor(int(tensor.shape[0]))
        with self._lock, torch.inference_mode(), torch.cuda.device(self.device):
            slot = self._device_run(tensor, decoded=True)
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
