"""The tensors between the stages: a host tensor and a device tensor, one entry for either.

The preprocessors return one of them and ``Backend.infer`` takes either (the way Polygraphy's
``DeviceView`` lets one ``infer`` entry take host arrays and device buffers alike).

Contract:

- ``HostTensor(array, layout='NCHW')``: a NumPy array in host memory, rank 4, in ``layout``
  order ('NCHW' or 'NHWC'). Whoever made it may reuse the memory on its next call (the
  preprocessors do): copy it to keep it.
- ``DeviceTensor(ptr, shape, dtype, layout='NCHW', stream=0, device_id=0, owner=None)``:
  ``prod(shape) * dtype.itemsize`` bytes of C-contiguous device memory at ``ptr`` on GPU
  ``device_id``, rank 4 in ``layout`` order, dtype float32 / float16 / uint8. ``stream`` is the
  CUDA stream handle (an int, 0 = the legacy default stream) on which the producer wrote it:
  a consumer orders its own work after that stream (runs on it, or waits on it) and never
  reads the memory from the host. ``owner`` keeps the memory alive (the producing
  preprocessor, a torch tensor, ...); the contents stay valid until the owner's next write
  (for a preprocessor: its next ``run``). ``__cuda_array_interface__`` (version 3, with the
  stream) lets torch / CuPy read it in place; ``to_host()`` copies it to a NumPy array on its
  stream and waits.
- ``as_tensor(x)``: a ``HostTensor`` / ``DeviceTensor`` as is, a NumPy array as an NCHW
  ``HostTensor``; anything else raises ``InputError``.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from .errors import InputError

#: Axis orders a tensor may declare.
LAYOUTS = ('NCHW', 'NHWC')
#: Element types a device tensor may hold.
DEVICE_DTYPES = (np.dtype(np.float32), np.dtype(np.float16), np.dtype(np.uint8))


def _check_layout(layout: str, ndim: int) -> None:
    if layout not in LAYOUTS:
        raise InputError(f"tensor layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if ndim != 4:
        raise InputError(f'a {layout} tensor has rank 4, got rank {ndim}')


@dataclass(frozen=True)
class HostTensor:
    """A rank-4 NumPy array in host memory and its layout (see the module contract)."""

    array: np.ndarray
    layout: str = 'NCHW'

    def __post_init__(self) -> None:
        if not isinstance(self.array, np.ndarray):
            raise InputError(f'a host tensor holds a numpy array, got '
                             f'{type(self.array).__name__}')
        _check_layout(self.layout, self.array.ndim)

    @property
    def shape(self) -> Tuple[int, ...]:
        """The array's shape, in ``layout`` order."""
        return tuple(int(d) for d in self.array.shape)

    @property
    def dtype(self) -> np.dtype:
        """The element type."""
        return self.array.dtype

    @property
    def batch(self) -> int:
        """The first dimension (images in the tensor)."""
        return self.shape[0]

    def to_host(self) -> np.ndarray:
        """Return the array itself (already in host memory)."""
        return self.array


@dataclass(frozen=True)
class DeviceTensor:
    """A rank-4 C-contiguous tensor in CUDA device memory (see the module contract)."""

    ptr: int
    shape: Tuple[int, ...]
    dtype: np.dtype
    layout: str = 'NCHW'
    stream: int = 0
    device_id: int = 0
    #: Keeps the memory alive; never compared (two views of one buffer are equal).
    owner: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, 'ptr', int(self.ptr))
        object.__setattr__(self, 'shape', tuple(int(d) for d in self.shape))
        object.__setattr__(self, 'dtype', np.dtype(self.dtype))
        object.__setattr__(self, 'stream', int(self.stream))
        object.__setattr__(self, 'device_id', int(self.device_id))
        _check_layout(self.layout, len(self.shape))
        if not self.ptr:
            raise InputError('device tensor pointer is null')
        if min(self.shape) < 1:
            raise InputError(f'device tensor shape must be positive, got {self.shape}')
        if self.dtype not in DEVICE_DTYPES:
            raise InputError(f'device tensor dtype must be float32, float16 or uint8, got '
                             f'{self.dtype}')
        if self.device_id < 0:
            raise InputError(f'device id must be >= 0, got {self.device_id}')

    @property
    def batch(self) -> int:
        """The first dimension (images in the tensor)."""
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes of device memory the tensor spans."""
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def cuda_array_interface(self, with_stream: bool = True) -> Dict[str, Any]:
        """Return the ``__cuda_array_interface__`` dict (v3; without the stream if asked).

        A consumer that already runs on ``stream`` passes ``with_stream=False`` (no extra
        synchronisation). CAI v3 spells the legacy default stream 1 (0 is not allowed).
        """
        cai: Dict[str, Any] = {'shape': self.shape, 'typestr': self.dtype.str,
                               'data': (self.ptr, False), 'version': 3, 'strides': None}
        if with_stream:
            cai['stream'] = self.stream or 1
        return cai

    @property
    def __cuda_array_interface__(self) -> Dict[str, Any]:
        """The tensor for torch / CuPy / Numba, with its stream (see ``cuda_array_interface``)."""
        return self.cuda_array_interface()

    def to_host(self, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Copy the tensor to host memory on its stream, wait, and return the array.

        ``out`` (a C-contiguous array of ``shape`` / ``dtype``, e.g. pinned memory) is filled
        instead of a new array.
        """
        from .cuda.memory import copy_to_host

        if out is None:
            out = np.empty(self.shape, self.dtype)
        elif (tuple(out.shape) != self.shape or out.dtype != self.dtype
              or not out.flags.c_contiguous):
            raise InputError(f'out must be a C-contiguous {self.shape} {self.dtype} array, got '
                             f'{tuple(out.shape)} {out.dtype}')
        copy_to_host(out, self.ptr, self.stream, self.device_id)
        return out


#: What ``Backend.infer`` takes.
Tensor = Union[HostTensor, DeviceTensor]


def as_tensor(value: Any) -> Tensor:
    """Return ``value`` as a Tensor (a NumPy array becomes an NCHW HostTensor)."""
    if isinstance(value, (HostTensor, DeviceTensor)):
        return value
    if isinstance(value, np.ndarray):
        return HostTensor(value)
    raise InputError(f'expected a HostTensor, DeviceTensor or numpy array, got '
                     f'{type(value).__name__}')
