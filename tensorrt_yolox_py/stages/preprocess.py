"""Preprocessing stage: the CPU reference (OpenCV + NumPy) of the letterbox contract.

Contract (YOLOX semantics; every implementation, CPU or CUDA, must follow it):

- Input ``image``: ``numpy.ndarray`` of shape (H, W, 3), dtype uint8, encoding ``bgr8`` or
  ``rgb8``, any H, W >= 1. Rows may be strided (a view of a ROS message with padded ``step``);
  pixels inside a row must be packed (element strides (3, 1)), otherwise a contiguous copy is
  made.
- ``scale = min(in_w / W, in_h / H)``; resized size ``(rw, rh) = (round(W*scale),
  round(H*scale))`` clamped to [1, in_w] x [1, in_h]. Bilinear resize with OpenCV INTER_LINEAR
  sampling (half-pixel centres, clamped edges, per-axis factors W/rw and H/rh).
- The resized image sits at the TOP-LEFT of the (in_h, in_w) canvas; the rest is PAD_VALUE (114).
- Output: (1, 3, in_h, in_w) float32 (or float16) NCHW, channel order BGR (the model's), values
  0-255, no mean/std normalisation.
- Boxes map back to the source frame by dividing by ``scale`` (see ``LetterboxParams``).
"""

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from ..errors import InputError

PAD_VALUE = 114
SUPPORTED_ENCODINGS = ('bgr8', 'rgb8')
#: Largest accepted source image (pixels), to reject absurd sizes with a clear error.
MAX_SOURCE_PIXELS = 7680 * 4320


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


def validate_image(image: np.ndarray, encoding: str = 'bgr8') -> None:
    """Raise InputError unless ``image`` is an (H, W, 3) uint8 array in a known encoding."""
    if not isinstance(image, np.ndarray):
        raise InputError(f'image must be a numpy array, got {type(image).__name__}')
    if encoding not in SUPPORTED_ENCODINGS:
        raise InputError(f"unsupported encoding '{encoding}' "
                         f"(supported: {', '.join(SUPPORTED_ENCODINGS)})")
    if image.dtype != np.uint8:
        raise InputError(f'image dtype must be uint8, got {image.dtype}')
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f'image must have shape (H, W, 3), got {image.shape}')
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InputError(f'image is empty: shape {image.shape}')
    if image.shape[0] * image.shape[1] > MAX_SOURCE_PIXELS:
        raise InputError(f'image {image.shape[1]}x{image.shape[0]} exceeds the largest '
                         f'accepted size ({MAX_SOURCE_PIXELS} pixels)')


def channel_order(encoding: str) -> Tuple[int, int, int]:
    """Source channel index feeding output planes (B, G, R) for ``encoding``."""
    return (0, 1, 2) if encoding == 'bgr8' else (2, 1, 0)


def preprocess_cpu(image: np.ndarray, input_hw: Tuple[int, int], encoding: str = 'bgr8',
                   dtype: type = np.float32, out: Optional[np.ndarray] = None
                   ) -> Tuple[np.ndarray, LetterboxParams]:
    """Letterbox ``image`` into a (1, 3, in_h, in_w) tensor; see the module contract.

    ``out``, when given, must be a C-contiguous (1, 3, in_h, in_w) array of ``dtype``; it is
    filled in place (no allocation) and returned.
    """
    import cv2

    validate_image(image, encoding)
    in_h, in_w = int(input_hw[0]), int(input_hw[1])
    lb = compute_letterbox(image.shape[0], image.shape[1], in_h, in_w)
    if image.strides[1:] != (3, 1):
        image = np.ascontiguousarray(image)
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
    for plane, src_channel in enumerate(channel_order(encoding)):
        out[0, plane, :lb.resized_h, :lb.resized_w] = resized[:, :, src_channel]
    return out, lb


class CpuPreprocessor:
    """Preprocessor on the CPU: ``__call__(image, encoding) -> (tensor, LetterboxParams)``.

    Reuses one output buffer per instance, so the returned tensor is overwritten by the next
    call (copy it if you keep it).
    """

    name = 'cpu'
    #: Writes its output to host memory (``__call__``), not to a device buffer.
    device_output = False

    def __init__(self, input_hw: Tuple[int, int], dtype: type = np.float32) -> None:
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.dtype = np.dtype(dtype)
        self._out = np.empty((1, 3) + self.input_hw, dtype=self.dtype)

    def __call__(self, image: np.ndarray, encoding: str = 'bgr8'
                 ) -> Tuple[np.ndarray, LetterboxParams]:
        """Preprocess one image into the instance's buffer."""
        return preprocess_cpu(image, self.input_hw, encoding, self.dtype, out=self._out)

    def close(self) -> None:
        """Nothing to release on the CPU (present for interface symmetry)."""
