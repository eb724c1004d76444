"""Preprocessing stage: the CPU reference (OpenCV + NumPy) of the letterbox contract.

Contract (YOLOX semantics; every implementation, CPU or CUDA, must follow it):

- Input: ``image.SourceImage`` only (made and validated once by the adapter: any encoding of
  ``image.ENCODINGS``, rows possibly strided; wrapping an array with its encoding is the
  adapter's job, ``SourceImage.from_array``). The CPU reference converts the pixels to BGR
  with OpenCV
  (``Encoding.to_bgr``; bgr8 / rgb8 are resized as they are and their planes picked in BGR
  order), the CUDA kernels convert inside the sampling; both follow the geometry below.
- ``scale = min(in_w / W, in_h / H)``; resized size ``(rw, rh) = (round(W*scale),
  round(H*scale))`` clamped to [1, in_w] x [1, in_h]. Bilinear resize with OpenCV INTER_LINEAR
  sampling (half-pixel centres, clamped edges, per-axis factors W/rw and H/rh).
- The resized image sits at the TOP-LEFT of the (in_h, in_w) canvas; the rest is PAD_VALUE (114).
- Output: (1, 3, in_h, in_w) float32 (or float16) NCHW, channel order BGR (the model's), values
  0-255, no mean/std normalisation.
- Boxes map back to the source frame by dividing by ``scale`` (see ``LetterboxParams``).

The one preprocessor interface (``Preprocessor``), which every implementation follows:
``run(sources) -> (tensor, letterboxes)`` letterboxes a non-empty sequence of SourceImages
into one (B, 3, in_h, in_w) tensor of ``dtype`` (image i in row i) and returns it with one
``LetterboxParams`` per image; ``close()`` releases what the instance holds (idempotent; also
a context manager). The tensor is the instance's own memory, overwritten by its next ``run``.
``CpuPreprocessor`` returns a ``tensors.HostTensor``; ``cuda.preprocess.CudaPreprocessor`` a
``tensors.DeviceTensor`` written on its stream.
"""

import abc
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError
from ..image import MAX_SOURCE_PIXELS, SourceImage, SUPPORTED_ENCODINGS
from ..tensors import HostTensor, Tensor

PAD_VALUE = 114
__all__ = ['CpuPreprocessor', 'LetterboxParams', 'MAX_SOURCE_PIXELS', 'PAD_VALUE',
           'Preprocessor', 'SUPPORTED_ENCODINGS', 'check_sources', 'compute_letterbox',
           'preprocess_cpu']


@dataclass(frozen=True)
class LetterboxParams:
    """Geometry of one letterbox: source size, model input size, scale and resized size."""

    src_h: int
    src_w: int
    in_h: int
    in_w: int
    scale: float
    resized_h: int
    resized_w: int


def compute_letterbox(src_h: int, src_w: int, in_h: int, in_w: int) -> LetterboxParams:
    """Return the letterbox geometry for a (src_h, src_w) image into an (in_h, in_w) input."""
    if min(src_h, src_w) < 1 or min(in_h, in_w) < 1:
        raise InputError(f'letterbox needs positive sizes, got source {src_w}x{src_h} '
                         f'and input {in_w}x{in_h}')
    scale = min(in_w / src_w, in_h / src_h)
    resized_w = min(max(int(round(src_w * scale)), 1), in_w)
    resized_h = min(max(int(round(src_h * scale)), 1), in_h)
    return LetterboxParams(src_h, src_w, in_h, in_w, scale, resized_h, resized_w)


def check_sources(sources: Sequence[Any]) -> List[SourceImage]:
    """Return ``sources`` as a list, or raise InputError (empty, or not all SourceImages)."""
    sources = list(sources)
    if not sources:
        raise InputError('preprocessing needs at least one image')
    for index, source in enumerate(sources):
        if not isinstance(source, SourceImage):
            raise InputError(f'image {index}: expected a SourceImage, got '
                             f'{type(source).__name__} (adapters wrap arrays with '
                             'SourceImage.from_array(array, encoding))')
    return sources


def preprocess_cpu(source: SourceImage, input_hw: Tuple[int, int], dtype: type = np.float32,
                   out: Optional[np.ndarray] = None) -> Tuple[np.ndarray, LetterboxParams]:
    """Letterbox ``source`` into a (1, 3, in_h, in_w) tensor; see the module contract.

    ``out``, when given, must be a C-contiguous (1, 3, in_h, in_w) array of ``dtype``; it is
    filled in place (no allocation) and returned.
    """
    import cv2

    check_sources([source])
    in_h, in_w = int(input_hw[0]), int(input_hw[1])
    lb = compute_letterbox(source.height, source.width, in_h, in_w)
    if source.encoding.packed_bgr:
        image = source.pixels
        planes = (2, 1, 0) if source.encoding.swap_rb else (0, 1, 2)
    else:
        image = source.to_bgr()
        planes = (0, 1, 2)
    if (lb.resized_w, lb.resized_h) != (lb.src_w, lb.src_h):
        resized = cv2.resize(image, (lb.resized_w, lb.resized_h),
                             interpolation=cv2.INTER_LINEAR)
    else:
        resized = image
    shape = (1, 3, in_h, in_w)
    if out is None:
        out = np.empty(shape, dtype=dtype)
    elif out.shape != shape or out.dtype != np.dtype(dtype) or not out.flags.c_contiguous:
        raise InputError(f'out must be a C-contiguous {shape} {np.dtype(dtype)} array, got '
                         f'{out.shape} {out.dtype}')
    out[0, :, lb.resized_h:, :] = PAD_VALUE
    out[0, :, :lb.resized_h, lb.resized_w:] = PAD_VALUE
    for plane, src_channel in enumerate(planes):
        out[0, plane, :lb.resized_h, :lb.resized_w] = resized[:, :, src_channel]
    return out, lb


class Preprocessor(abc.ABC):
    """The one preprocessor interface (see the module contract)."""

    #: Short name for logs ('cpu', 'cuda').
    name = 'preprocessor'
    #: Whether ``run`` can write a caller's device tensor (``out``): a backend's static input.
    writes_device_tensors = False

    def __init__(self, input_hw: Tuple[int, int], dtype: type = np.float32) -> None:
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        if min(self.input_hw) < 1:
            raise InputError(f'input size must be positive, got {self.input_hw}')
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float16):
            raise ValueError(f'output dtype must be float32 or float16, got {self.dtype}')

    @abc.abstractmethod
    def run(self, sources: Sequence[SourceImage], out: Optional[Any] = None
            ) -> Tuple[Tensor, List[LetterboxParams]]:
        """Letterbox ``sources`` into one (B, 3, in_h, in_w) tensor; see the module contract.

        ``out`` (only where ``writes_device_tensors``): a ``tensors.DeviceTensor`` to write.
        """

    def close(self) -> None:
        """Release what the instance holds (idempotent)."""

    def __enter__(self) -> 'Preprocessor':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CpuPreprocessor(Preprocessor):
    """The CPU reference (OpenCV); ``run`` returns a ``HostTensor`` (see the module contract).

    Reuses one output buffer per instance (grown to the largest batch seen), so the returned
    tensor is overwritten by the next call (copy it if you keep it).
    """

    name = 'cpu'

    def __init__(self, input_hw: Tuple[int, int], dtype: type = np.float32) -> None:
        super().__init__(input_hw, dtype)
        self._out = np.empty((1, 3) + self.input_hw, dtype=self.dtype)

    def run(self, sources: Sequence[SourceImage], out: Optional[Any] = None
            ) -> Tuple[HostTensor, List[LetterboxParams]]:
        """Preprocess SourceImages into the instance's (B, 3, in_h, in_w) host buffer."""
        if out is not None:
            raise InputError('the CPU preprocessor writes host memory only (out must be None)')
        sources = check_sources(sources)
        count = len(sources)
        if self._out.shape[0] < count:
            self._out = np.empty((count, 3) + self.input_hw, dtype=self.dtype)
        letterboxes = []
        for index, source in enumerate(sources):
            _, lb = preprocess_cpu(source, self.input_hw, self.dtype,
                                   out=self._out[index:index + 1])
            letterboxes.append(lb)
        return HostTensor(self._out[:count]), letterboxes
