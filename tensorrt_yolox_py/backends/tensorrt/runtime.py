"""The TensorRT ``Backend``: deserialize a plan, bind buffers, run on a CUDA stream.

Contract (see ``backends.base`` for the array contract):

- ``TensorRTBackend(engine_path, dla_core=-1, gpu_id=0, memory=None, profile_per_layer=False)``
  deserializes the plan (``trt.Runtime.deserialize_cuda_engine``, with ``Runtime.DLA_core`` set
  for DLA engines), checks the I/O contract (one input (1, 3, H, W) float32/float16, one output
  (1, N, 5 + C)), and allocates: the output in device memory + a pinned host copy, an input
  device buffer and pinned staging buffer for ``infer()``, and one stream of its own.
- ``infer(tensor)`` (``Backend.infer``, the one entry; ``capabilities.device_memory`` is true):
  a host tensor is copied into pinned staging, then H2D on the backend's own stream; a
  ``tensors.DeviceTensor`` (the CUDA preprocessor's output) is bound in place with
  ``set_tensor_address`` (no copy) and the engine runs with ``execute_async_v3`` on the
  tensor's ``stream``, after the kernel that filled it. Then D2H into pinned memory and ONE
  stream sync; returns a fresh (B, N, 5 + C) float32 array. The caller keeps a device
  tensor's memory alive and unchanged until the call returns.
- Batch: an engine built with a batch profile (``max_batch`` > 1) has input dimension 0
  dynamic; ``input_shape`` / ``output_shape`` are then the one-image shapes, buffers hold
  ``capabilities.max_batch`` images (the profile's max), and every call with another batch
  size than the last sets it first (``IExecutionContext.set_input_shape``).
- ``profile_per_layer``: an ``IProfiler`` collects per-layer times of every run;
  ``profile_report()`` returns the table (TensorRT synchronizes per layer while profiling, so
  this slows inference: development only). ``engine_layer_info()`` returns the engine
  inspector's layers parsed from TensorRT's DETAILED JSON (``inspector.parse_layer``: name,
  kernel type, precision from the tensor formats, GPU or DLA).
- Exceptions inside the logger / profiler callbacks (a Ctrl-C included) are recorded and
  raised once the TensorRT call returns (``common.CallbackErrors``).
- ``from_config(config)`` prepares the engine through the cache (``builder.prepare_engine``)
  and, if TensorRT still refuses a cached plan, invalidates it and rebuilds once.
- Calls are serialized by a lock (one execution context); ``close()`` frees everything and is
  idempotent. Memory/stream calls go through the ``memory`` object (``cuda.memory``), which
  tests replace with a host-memory implementation.
"""

import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from ...errors import ModelContractError
from ...params import DetectorConfig
from ...tensors import DeviceTensor
from ..base import Backend, BackendCapabilities, check_io_contract
from .builder import BuildProgress, EngineSettings, prepare_engine
from .common import (CallbackErrors, check_supported, import_tensorrt, make_logger,
                     TensorRTError, trt_version, version_text)
from .inspector import parse_layer
from ...cuda.memory import CudaMemory

LOGGER = logging.getLogger(__name__)


class EngineLoadError(TensorRTError):
    """TensorRT refused to deserialize a plan (stale, corrupt or for other hardware)."""


def make_layer_profiler(trt: Any, errors: Optional[CallbackErrors] = None) -> Any:
    """Return a ``trt.IProfiler`` that accumulates per-layer times (ms)."""
    errors = errors if errors is not None else CallbackErrors()

    class LayerProfiler(trt.IProfiler):
        """Collects ``report_layer_time`` calls; ``report()`` renders a table."""

        def __init__(self) -> None:
            trt.IProfiler.__init__(self)
            self.times: Dict[str, List[float]] = {}
            self.order: List[str] = []
            self._lock = threading.Lock()

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            try:
                with self._lock:
                    if layer_name not in self.times:
                        self.times[layer_name] = []
                        self.order.append(layer_name)
                    self.times[layer_name].append(float(ms))
            except BaseException as exc:  # noqa: B902 - TensorRT would swallow it
                errors.record('report_layer_time', exc)

        def rows(self) -> List[Tuple[str, float, int]]:
            with self._lock:
                return [(name, float(np.mean(self.times[name])), len(self.times[name]))
                        for name in self.order]

        def report(self, top: int = 0) -> str:
            rows = self.rows()
            if not rows:
                return 'no per-layer timings recorded (run inference first)'
            total = sum(mean for _, mean, _ in rows)
            ranked = sorted(rows, key=lambda r: -r[1])
            if top:
                ranked = ranked[:top]
            width = max(len(name) for name, _, _ in ranked)
            lines = [f'{"layer":<{width}}  {"mean ms":>9}  {"share":>6}  runs',
                     '-' * (width + 27)]
            for name, mean, runs in ranked:
                share = 100.0 * mean / total if total else 0.0
                lines.append(f'{name:<{width}}  {mean:9.4f}  {share:5.1f}%  {runs}')
            lines.append(f'{"total (all layers)":<{width}}  {total:9.4f}  100.0%')
            return '\n'.join(lines)

    return LayerProfiler()


class TensorRTBackend(Backend):
    """YOLOX inference with a TensorRT engine; see the module contract."""

    name = 'tensorrt'
    capabilities = BackendCapabilities(device_memory=True, max_batch=1,
                                       precisions=('fp32', 'fp16', 'int8'),
                                       devices=('gpu', 'dla0', 'dla1'))

    def __init__(self, engine_path: Union[str, Path], dla_core: int = -1, gpu_id: int = 0,
                 memory: Any = None, profile_per_layer: bool = False, trt: Any = None) -> None:
        super().__init__()
        self._trt = trt or import_tensorrt()
        check_supported(trt_version(self._trt))
        self.engine_path = Path(engine_path)
        self.device_id = int(gpu_id)
        self._memory = memory or CudaMemory(gpu_id)
        self._lock = threading.Lock()
        self._buffers: List[Tuple[str, Any]] = []
        self._stream = 0
        self._context = None
        self._engine = None
        try:
            self._load(dla_core, profile_per_layer)
        except BaseException:
            self._release()
            raise

    def _load(self, dla_core: int, profile_per_layer: bool) -> None:
        trt = self._trt
        self._errors = CallbackErrors()
        self._logger = make_logger(trt, self._errors)
        self._runtime = trt.Runtime(self._logger)
        if dla_core >= 0:
            self._runtime.DLA_core = int(dla_core)
        try:
            data = self.engine_path.read_bytes()
        except OSError as exc:
            raise EngineLoadError(f'cannot read engine {self.engine_path}: {exc}') from exc
        engine = self._runtime.deserialize_cuda_engine(data)
        self._errors.raise_pending()
        if engine is None:
            raise EngineLoadError(f'TensorRT {version_text(trt_version(trt))} cannot '
                                  f'deserialize {self.engine_path}: '
                                  f'{self._logger.take_errors() or "no error text"}')
        self._engine = engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        in_shape = tuple(int(d) for d in engine.get_tensor_shape(inputs[0])) if inputs else ()
        out_shape = tuple(int(d) for d in engine.get_tensor_shape(outputs[0])) \
            if outputs else ()
        max_batch = 1
        self._dynamic = bool(in_shape) and in_shape[0] < 0 and len(outputs) == 1
        if self._dynamic:   # a batch profile: (1..max, 3, H, W)
            low, _, high = [tuple(int(d) for d in dims)
                            for dims in engine.get_tensor_profile_shape(inputs[0], 0)]
            if low[0] != 1 or high[0] < 1:
                raise ModelContractError(f'{self.engine_path}: batch profile must start at 1, '
                                         f'got {low[0]}..{high[0]}')
            max_batch = high[0]
            in_shape, out_shape = (1,) + in_shape[1:], (1,) + out_shape[1:]
        check_io_contract(in_shape, out_shape, str(self.engine_path), len(inputs),
                          len(outputs), inputs[0] if inputs else None)
        in_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(inputs[0])))
        out_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(outputs[0])))
        if in_dtype not in (np.float32, np.float16) or out_dtype not in (np.float32,
                                                                         np.float16):
            raise ModelContractError(f'{self.engine_path}: I/O must be float32 or float16, got '
                                     f'input {in_dtype} and output {out_dtype}')
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.input_shape, self.output_shape = in_shape, out_shape
        self.input_dtype = in_dtype
        self.capabilities = replace(self.capabilities, max_batch=max_batch)
        self._bound_batch = 0 if self._dynamic else 1
        memory = self._memory
        self._stream = memory.stream_create()
        self._h_in = self._pinned((max_batch,) + in_shape[1:], in_dtype)
        self._h_out = self._pinned((max_batch,) + out_shape[1:], out_dtype)
        self._d_in = self._device(self._h_in.nbytes)
        self._d_out = self._device(self._h_out.nbytes)
        context = engine.create_execution_context()
        if context is None:
            raise TensorRTError(f'cannot create an execution context for {self.engine_path}: '
                                f'{self._logger.take_errors()}')
        self._context = context
        if not context.set_tensor_address(self.output_name, int(self._d_out)):
            raise TensorRTError(f'set_tensor_address({self.output_name}) failed: '
                                f'{self._logger.take_errors()}')
        self._profiler = None
        if profile_per_layer:
            self._profiler = make_layer_profiler(trt, self._errors)
            context.profiler = self._profiler
            LOGGER.warning('per-layer profiling is on: inference is slower (development only)')
        LOGGER.info('TensorRT %s: %s', version_text(trt_version(trt)), self.describe())
        if dla_core >= 0:
            placed = self.placement()
            LOGGER.info('engine layers by device (inspector): %s',
                        ', '.join(f'{k} {v}' for k, v in sorted(placed.items())) or 'unknown')

    def _pinned(self, shape: Tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        array = self._memory.pinned_empty(shape, dtype)
        self._buffers.append(('pinned', array))
        return array

    def _device(self, nbytes: int) -> int:
        ptr = self._memory.malloc(nbytes)
        self._buffers.append(('device', ptr))
        return ptr

    @classmethod
    def from_config(cls, config: DetectorConfig, memory: Any = None, trt: Any = None,
                    progress: Optional[BuildProgress] = None) -> 'TensorRTBackend':
        """Prepare (build or load from the cache) the engine for ``config`` and open it."""
        trt = trt or import_tensorrt()
        settings = EngineSettings.from_config(config)
        memory = memory or CudaMemory(config.gpu_id)
        prepared = prepare_engine(settings, trt, memory, progress)
        try:
            return cls(prepared.path, config.dla_core_id, config.gpu_id, memory,
                       config.profile_per_layer, trt)
        except EngineLoadError as exc:
            if not prepared.built:
                LOGGER.warning('cached engine %s was refused (%s); rebuilding it once',
                               prepared.path, exc)
                prepared.cache.invalidate(prepared.name)
                prepared = prepare_engine(settings, trt, memory, progress)
                return cls(prepared.path, config.dla_core_id, config.gpu_id, memory,
                           config.profile_per_layer, trt)
            raise

    def _infer_impl(self, tensor: Union[np.ndarray, DeviceTensor]) -> np.ndarray:
        batch = int(tensor.shape[0])
        with self._lock:
            if isinstance(tensor, DeviceTensor):   # bound in place, run on its stream
                return self._run(tensor.ptr, tensor.stream, batch)
            staging = self._h_in[:batch]
            np.copyto(staging, tensor)
            self._memory.htod_async(self._d_in, staging, self._stream)
            return self._run(self._d_in, self._stream, batch)

    def _run(self, input_ptr: int, stream: int, batch: int = 1) -> np.ndarray:
        activate = getattr(self._memory, 'activate', None)
        if activate is not None:
            activate()  # the CUDA device is per thread: the worker thread may be a new one
        context = self._context
        if batch != self._bound_batch:
            shape = self._trt.Dims([batch] + [int(d) for d in self.input_shape[1:]])
            if not context.set_input_shape(self.input_name, shape):
                raise TensorRTError(f'set_input_shape({self.input_name}, batch {batch}) '
                                    f'failed: {self._logger.take_errors()}')
            self._bound_batch = batch
        if not context.set_tensor_address(self.input_name, int(input_ptr)):
            raise TensorRTError(f'set_tensor_address({self.input_name}) failed: '
                                f'{self._logger.take_errors()}')
        ok = context.execute_async_v3(int(stream))
        self._errors.raise_pending()
        if not ok:
            raise TensorRTError(f'execute_async_v3 failed: {self._logger.take_errors()}')
        output = self._h_out[:batch]
        self._memory.dtoh_async(output, self._d_out, stream)
        self._memory.synchronize(stream)
        return np.array(output, dtype=np.float32, copy=True)

    def profile_report(self, top: int = 0) -> str:
        """Return the per-layer timing table (``profile_per_layer`` must be on)."""
        if self._profiler is None:
            return 'per-layer profiling is off (set profile_per_layer: true)'
        return self._profiler.report(top)

    def engine_layer_info(self) -> List[Dict[str, Any]]:
        """Return the engine's layers as ``inspector.parse_layer`` dicts (see there)."""
        inspector = self._engine.create_engine_inspector()
        fmt = self._trt.LayerInformationFormat.JSON
        return [parse_layer(inspector.get_layer_information(i, fmt))
                for i in range(self._engine.num_layers)]

    def placement(self) -> Dict[str, int]:
        """Return {device: number of engine layers} from the inspector ({} below DETAILED)."""
        counts: Dict[str, int] = {}
        for layer in self.engine_layer_info():
            if layer['detailed']:
                counts[layer['device']] = counts.get(layer['device'], 0) + 1
        return counts

    def _release(self) -> None:
        memory = self._memory
        if self._stream:
            memory.synchronize(self._stream)
        for kind, buffer in reversed(self._buffers):
            if kind == 'device':
                memory.free(buffer)
            else:
                memory.free_pinned(buffer)
        self._buffers = []
        if self._stream:
            memory.stream_destroy(self._stream)
            self._stream = 0
        self._context = None
        self._engine = None

    def close(self) -> None:
        """Free the buffers, the stream, the context and the engine (idempotent)."""
        if self._closed:
            return
        with self._lock:
            self._release()
        super().close()
