"""A host-memory stand-in for ``cuda.memory.CudaMemory`` (no GPU needed).

"Device" buffers are NumPy byte arrays and pointers are their real addresses, so the TensorRT
double reads exactly the bytes the code under test copied. Every access is validated: a copy or
read that leaves a live allocation, a free of an unknown pointer, a call on an unknown or
destroyed stream raise ``ValueError``. ``calls`` records the memory/stream calls in order
(``('htod', stream)``, ``('sync', stream)`` ...), and ``live()`` counts what is still allocated.
"""

import ctypes
import itertools
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np


class HostMemory:
    """Implements the memory layer interface and the TensorRT double's MEMORY hooks."""

    def __init__(self, name: str = 'Double GPU', capability: Tuple[int, int] = (8, 7)) -> None:
        self.name, self.capability = name, capability
        self.device: Dict[int, np.ndarray] = {}
        self.pinned: Dict[int, np.ndarray] = {}
        self.streams: set = set()
        self.calls: List[Tuple[Any, ...]] = []
        self._ids = itertools.count(0x5000)

    # -- the memory layer interface (what the production code calls)
    def device_info(self) -> Dict[str, Any]:
        return {'name': self.name, 'compute_capability': self.capability, 'uuid': 'host'}

    def malloc(self, nbytes: int) -> int:
        # 256-byte aligned, as cudaMalloc is (TensorRT checks I/O address alignment)
        raw = np.zeros(int(nbytes) + 256, np.uint8)
        offset = (-raw.ctypes.data) % 256
        buffer = raw[offset:offset + int(nbytes)]
        ptr = buffer.ctypes.data
        self.device[ptr] = buffer
        self.calls.append(('malloc', int(nbytes)))
        return ptr

    def free(self, ptr: int) -> None:
        if ptr not in self.device:
            raise ValueError(f'free of unknown device pointer {ptr:#x}')
        del self.device[ptr]
        self.calls.append(('free',))

    def pinned_empty(self, shape: Sequence[int], dtype: Any) -> np.ndarray:
        array = np.zeros(tuple(shape), dtype)
        self.pinned[array.ctypes.data] = array
        self.calls.append(('pinned', tuple(shape)))
        return array

    def free_pinned(self, array: np.ndarray) -> None:
        if self.pinned.pop(array.ctypes.data, None) is None:
            raise ValueError('free of an array that is not pinned memory')
        self.calls.append(('free_pinned',))

    def stream_create(self) -> int:
        stream = next(self._ids)
        self.streams.add(stream)
        self.calls.append(('stream_create', stream))
        return stream

    def stream_destroy(self, stream: int) -> None:
        self._stream(stream)
        self.streams.discard(stream)
        self.calls.append(('stream_destroy', stream))

    def synchronize(self, stream: int) -> None:
        self._stream(stream)
        self.calls.append(('sync', stream))

    def htod_async(self, dst: int, src: np.ndarray, stream: int) -> None:
        self._stream(stream)
        self._region(dst, src.nbytes)
        ctypes.memmove(dst, src.ctypes.data, src.nbytes)
        self.calls.append(('htod', stream))

    def dtoh_async(self, dst: np.ndarray, src: int, stream: int) -> None:
        self._stream(stream)
        self._region(src, dst.nbytes)
        if not dst.flags.c_contiguous:
            raise ValueError('dtoh_async destination must be contiguous')
        ctypes.memmove(dst.ctypes.data, src, dst.nbytes)
        self.calls.append(('dtoh', stream))

    def close(self) -> None:
        self.pinned.clear()

    # -- the TensorRT double's MEMORY hooks
    def read(self, ptr: int, nbytes: int) -> bytes:
        self._region(ptr, nbytes)
        return ctypes.string_at(ptr, nbytes)

    def write(self, ptr: int, data: bytes) -> None:
        self._region(ptr, len(data))
        ctypes.memmove(ptr, data, len(data))

    def engine_sync(self, stream: int) -> None:
        """Check that the engine runs on a live stream."""
        self._stream(stream)

    # -- helpers
    def live(self) -> int:
        return len(self.device) + len(self.pinned) + len(self.streams)

    def _stream(self, stream: int) -> None:
        if stream not in self.streams:
            raise ValueError(f'unknown or destroyed stream {stream:#x}')

    def _region(self, ptr: int, nbytes: int) -> None:
        for base, buffer in self.device.items():
            if base <= ptr and ptr + nbytes <= base + buffer.nbytes:
                return
        raise ValueError(f'{nbytes} bytes at {ptr:#x} are not inside one device allocation')
