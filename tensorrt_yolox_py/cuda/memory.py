"""The one CUDA memory layer: device buffers, pinned host buffers, streams, device facts.

The TensorRT backend and the CUDA preprocessing allocate through it, and every return code is
checked by ``check.cuda_call`` and raised as the one ``check.CudaError``. The TensorRT code
takes any object with this interface, so tests on machines without a GPU replace it with a
host-memory implementation (test/trt_double) and the rest of the code runs unchanged:

- ``device_info() -> dict``: ``name``, ``compute_capability`` (major, minor), ``uuid``.
- ``malloc(nbytes) -> int`` / ``free(ptr)``: device memory.
- ``pinned_empty(shape, dtype) -> np.ndarray`` / ``free_pinned(array)``: page-locked host memory
  viewed as a NumPy array (so async copies are truly asynchronous).
- ``stream_create() -> int`` / ``stream_destroy(stream)`` / ``synchronize(stream)``.
- ``htod_async(dst_ptr, src_array, stream)`` / ``dtoh_async(dst_array, src_ptr, stream)``.
- ``close()``.

``CudaMemory`` also has what the CUDA preprocessor needs beyond it (not part of the interface
the TensorRT code relies on): ``activate()``, raw-pointer copies ``copy_htod_async(dst_ptr,
src_ptr, nbytes, stream)``, and events ``event_create()`` / ``event_record(event, stream)`` /
``event_synchronize(event)`` / ``stream_wait_event(stream, event)`` / ``event_destroy(event)``.
``copy_to_host(out, ptr, stream, gpu_id)`` copies device memory to a host array and waits
(``tensors.DeviceTensor.to_host``).

``CudaMemory`` implements it with NVIDIA's cuda-python runtime bindings (``cuda.bindings.runtime``,
or ``cuda.cudart`` on older cuda-python 12 installs such as JetPack 6), imported lazily.
``compute_capability_supports`` tells fast FP16 / INT8 by compute capability.
"""

import ctypes
import logging
from typing import Any, Dict, Sequence, Tuple

import numpy as np

from .check import cuda_call, CudaError
from ..errors import MissingDependencyError

LOGGER = logging.getLogger(__name__)
__all__ = ['CudaError', 'CudaMemory', 'compute_capability_supports', 'copy_to_host',
           'import_cudart']


def import_cudart() -> Any:
    """Return the CUDA runtime bindings module (cuda.bindings.runtime or cuda.cudart)."""
    try:
        from cuda.bindings import runtime
        return runtime
    except ImportError as first:
        try:
            from cuda import cudart  # the cuda-python < 12.6 layout (JetPack 6)
            return cudart
        except ImportError:
            raise MissingDependencyError(
                f'CUDA memory (TensorRT backend, CUDA preprocessing) needs the CUDA runtime '
                f'bindings ({first}). Install '
                "them with: pip install 'cuda-bindings>=12.6'") from first


def _check(result: Any, call: str) -> Any:
    """Check a runtime call's result (``check.cuda_call``) and return its values."""
    return cuda_call(result, call)


class CudaMemory:
    """Device/pinned memory and streams of one GPU through the CUDA runtime API."""

    def __init__(self, gpu_id: int = 0) -> None:
        self._rt = import_cudart()
        self.gpu_id = int(gpu_id)
        count = _check(self._rt.cudaGetDeviceCount(), 'cudaGetDeviceCount')
        if not 0 <= self.gpu_id < int(count):
            raise CudaError('cudaErrorInvalidDevice', 101, f'cudaSetDevice({self.gpu_id})',
                            f'gpu_id {self.gpu_id} does not exist: {count} CUDA device(s) '
                            'found')
        _check(self._rt.cudaSetDevice(self.gpu_id), f'cudaSetDevice({self.gpu_id})')
        self._pinned: Dict[int, int] = {}

    def activate(self) -> None:
        """Make this GPU current on the calling thread (CUDA's current device is per thread)."""
        _check(self._rt.cudaSetDevice(self.gpu_id), f'cudaSetDevice({self.gpu_id})')

    def device_info(self) -> Dict[str, Any]:
        """Return the GPU's name, compute capability and UUID."""
        prop = _check(self._rt.cudaGetDeviceProperties(self.gpu_id), 'cudaGetDeviceProperties')
        name = prop.name
        if isinstance(name, (bytes, bytearray)):
            name = bytes(name).split(b'\0', 1)[0].decode(errors='replace')
        uuid = getattr(getattr(prop, 'uuid', None), 'bytes', b'')
        if isinstance(uuid, (bytes, bytearray)):
            uuid = bytes(uuid).hex()
        return {'name': str(name), 'compute_capability': (int(prop.major), int(prop.minor)),
                'uuid': str(uuid)}

    def malloc(self, nbytes: int) -> int:
        """Allocate ``nbytes`` of device memory and return its address."""
        return int(_check(self._rt.cudaMalloc(int(nbytes)), f'cudaMalloc({nbytes})'))

    def free(self, ptr: int) -> None:
        """Free device memory from ``malloc``."""
        _check(self._rt.cudaFree(int(ptr)), 'cudaFree')

    def pinned_empty(self, shape: Sequence[int], dtype: Any) -> np.ndarray:
        """Return an uninitialised array of page-locked host memory."""
        dtype = np.dtype(dtype)
        count = int(np.prod(shape)) if len(shape) else 1
        nbytes = max(1, count * dtype.itemsize)
        ptr = int(_check(self._rt.cudaMallocHost(nbytes), f'cudaMallocHost({nbytes})'))
        buffer = (ctypes.c_byte * nbytes).from_address(ptr)
        array = np.frombuffer(buffer, dtype=dtype, count=count).reshape(tuple(shape))
        self._pinned[array.ctypes.data] = ptr
        return array

    def free_pinned(self, array: np.ndarray) -> None:
        """Free an array from ``pinned_empty``."""
        ptr = self._pinned.pop(array.ctypes.data, None)
        if ptr is not None:
            _check(self._rt.cudaFreeHost(ptr), 'cudaFreeHost')

    def stream_create(self) -> int:
        """Create a non-blocking stream and return its handle."""
        flags = getattr(self._rt, 'cudaStreamNonBlocking', 1)
        stream = _check(self._rt.cudaStreamCreateWithFlags(int(flags)),
                        'cudaStreamCreateWithFlags')
        return int(stream)

    def stream_destroy(self, stream: int) -> None:
        """Destroy a stream from ``stream_create``."""
        _check(self._rt.cudaStreamDestroy(int(stream)), 'cudaStreamDestroy')

    def synchronize(self, stream: int) -> None:
        """Wait until all work queued on ``stream`` is done."""
        _check(self._rt.cudaStreamSynchronize(int(stream)), 'cudaStreamSynchronize')

    def htod_async(self, dst: int, src: np.ndarray, stream: int) -> None:
        """Queue a host-to-device copy of ``src`` (contiguous) to ``dst`` on ``stream``."""
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        _check(self._rt.cudaMemcpyAsync(int(dst), src.ctypes.data, src.nbytes, kind,
                                        int(stream)), 'cudaMemcpyAsync(HtoD)')

    def dtoh_async(self, dst: np.ndarray, src: int, stream: int) -> None:
        """Queue a device-to-host copy from ``src`` into ``dst`` (contiguous) on ``stream``."""
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(self._rt.cudaMemcpyAsync(dst.ctypes.data, int(src), dst.nbytes, kind,
                                        int(stream)), 'cudaMemcpyAsync(DtoH)')

    def copy_htod_async(self, dst: int, src: int, nbytes: int, stream: int) -> None:
        """Queue a copy of ``nbytes`` from host address ``src`` to device ``dst`` on ``stream``.

        From pageable memory the driver stages the bytes and returns once they are read; from
        page-locked memory the copy is a true async DMA (keep the source alive until done).
        """
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        _check(self._rt.cudaMemcpyAsync(int(dst), int(src), int(nbytes), kind, int(stream)),
               'cudaMemcpyAsync(HtoD)')

    def event_create(self) -> Any:
        """Create an event without timing (for ordering and host waits)."""
        flags = getattr(self._rt, 'cudaEventDisableTiming', 2)
        return _check(self._rt.cudaEventCreateWithFlags(int(flags)), 'cudaEventCreateWithFlags')

    def event_record(self, event: Any, stream: int) -> None:
        """Record ``event`` on ``stream``."""
        _check(self._rt.cudaEventRecord(event, int(stream)), 'cudaEventRecord')

    def event_synchronize(self, event: Any) -> None:
        """Wait on the host until ``event`` has completed."""
        _check(self._rt.cudaEventSynchronize(event), 'cudaEventSynchronize')

    def stream_wait_event(self, stream: int, event: Any) -> None:
        """Make later work on ``stream`` wait for ``event`` (no host wait)."""
        _check(self._rt.cudaStreamWaitEvent(int(stream), event, 0), 'cudaStreamWaitEvent')

    def event_destroy(self, event: Any) -> None:
        """Destroy an event from ``event_create``."""
        _check(self._rt.cudaEventDestroy(event), 'cudaEventDestroy')

    def close(self) -> None:
        """Free pinned buffers that are still allocated."""
        for ptr in list(self._pinned.values()):
            _check(self._rt.cudaFreeHost(ptr), 'cudaFreeHost')
        self._pinned.clear()


def copy_to_host(out: np.ndarray, ptr: int, stream: int, gpu_id: int = 0) -> None:
    """Copy ``out.nbytes`` of device memory at ``ptr`` into ``out`` on ``stream``, then wait.

    ``out`` must be C-contiguous. Makes GPU ``gpu_id`` current on the calling thread.
    """
    if not out.flags.c_contiguous:
        raise ValueError('copy_to_host needs a C-contiguous destination')
    rt = import_cudart()
    _check(rt.cudaSetDevice(int(gpu_id)), f'cudaSetDevice({gpu_id})')
    kind = rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
    _check(rt.cudaMemcpyAsync(out.ctypes.data, int(ptr), out.nbytes, kind, int(stream)),
           'cudaMemcpyAsync(DtoH)')
    _check(rt.cudaStreamSynchronize(int(stream)), 'cudaStreamSynchronize')


def compute_capability_supports(capability: Tuple[int, int]) -> Dict[str, bool]:
    """Return {'fp16': ..., 'int8': ...}: fast FP16 / INT8 by compute capability.

    TensorRT 10.5 deprecated ``platform_has_fast_fp16/int8`` ("query data type support from CUDA
    directly"): fast FP16 from sm_53 except sm_61 (consumer Pascal), INT8 (DP4A) from sm_61.
    """
    capability = tuple(capability)
    return {'fp16': capability >= (5, 3) and capability != (6, 1),
            'int8': capability >= (6, 1)}
