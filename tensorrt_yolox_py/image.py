"""The source image: one camera frame as a validated, zero-copy view plus its encoding.

Contract:

- ``ENCODINGS``: the one table of input encodings (the ``sensor_msgs/Image`` names). Each
  ``Encoding`` says how its bytes are laid out (``channels`` bytes per pixel in the array view;
  ``pixel_align``: the width must be a multiple of it, 2 for the 4:2:2 formats), which id the
  CUDA kernels know it by (``kernel_format``, ``cuda/sampling.cuh``), and how the CPU reference
  turns it into BGR (``to_bgr``: OpenCV's conversions). Adding an encoding = one row here, one
  tap loader in ``cuda/sampling.cuh`` and its test (see docs/architecture.md).
- ``SourceImage`` is made ONCE at the adapter (``from_buffer`` for a ROS / bag message,
  ``from_array`` for an array or file) and validated there: dtype uint8, shape (H, W, C) with
  C = the encoding's channels, H, W >= 1, at most ``MAX_SOURCE_PIXELS``, width a multiple of
  ``pixel_align``, pixels packed inside a row (element strides (C, 1)); rows may be strided
  (ROS ``step``). Every stage takes it and trusts it; nothing re-validates per stage.
- ``source_from_message(msg)``: the one conversion of an Image message (rclpy's or a rosbags
  one: anything with ``height``, ``width``, ``encoding``, ``step``, ``data``).
- ``to_bgr()`` returns an (H, W, 3) BGR uint8 image (the pixels themselves for ``bgr8``):
  what the CPU preprocessing and the annotated-image overlay use.
"""

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from .errors import InputError

#: Largest accepted source image (pixels), to reject absurd sizes with a clear error.
MAX_SOURCE_PIXELS = 7680 * 4320


def _cv2() -> Any:
    import cv2

    return cv2


def _convert(code_name: str) -> Callable[[np.ndarray], np.ndarray]:
    def convert(pixels: np.ndarray) -> np.ndarray:
        cv2 = _cv2()
        return cv2.cvtColor(np.ascontiguousarray(pixels), getattr(cv2, code_name))
    convert.__name__ = f'cvtColor_{code_name}'
    return convert


def _identity(pixels: np.ndarray) -> np.ndarray:
    return pixels


@dataclass(frozen=True)
class Encoding:
    """One input encoding (see the module contract)."""

    name: str
    channels: int
    kernel_format: int
    to_bgr: Callable[[np.ndarray], np.ndarray]
    pixel_align: int = 1
    #: Plain 3-byte BGR / RGB pixels: the fast word-load kernels apply.
    packed_bgr: bool = False
    #: For packed_bgr encodings: R and B are swapped relative to BGR.
    swap_rb: bool = False
    description: str = ''


#: The encodings cameras publish that the detector takes; order = documentation order.
ENCODINGS: Dict[str, Encoding] = {e.name: e for e in (
    Encoding('bgr8', 3, 0, _identity, packed_bgr=True, description='B, G, R bytes'),
    Encoding('rgb8', 3, 1, _convert('COLOR_RGB2BGR'), packed_bgr=True, swap_rb=True,
             description='R, G, B bytes'),
    Encoding('bgra8', 4, 2, _convert('COLOR_BGRA2BGR'), description='B, G, R, A bytes'),
    Encoding('rgba8', 4, 3, _convert('COLOR_RGBA2BGR'), description='R, G, B, A bytes'),
    Encoding('mono8', 1, 4, _convert('COLOR_GRAY2BGR'), description='one gray byte'),
    Encoding('yuv422', 2, 5, _convert('COLOR_YUV2BGR_UYVY'), pixel_align=2,
             description='UYVY 4:2:2: U0 Y0 V0 Y1 per 2 pixels, BT.601 video range'),
    Encoding('yuv422_yuy2', 2, 6, _convert('COLOR_YUV2BGR_YUYV'), pixel_align=2,
             description='YUYV 4:2:2: Y0 U0 Y1 V0 per 2 pixels, BT.601 video range'),
)}
SUPPORTED_ENCODINGS = tuple(ENCODINGS)


def encoding_of(name: str) -> Encoding:
    """Return the Encoding called ``name`` or raise InputError listing the supported ones."""
    encoding = ENCODINGS.get(str(name))
    if encoding is None:
        raise ImageFormatError('encoding', f"unsupported encoding '{name}' (supported: "
                               f"{', '.join(SUPPORTED_ENCODINGS)})")
    return encoding


class ImageFormatError(InputError):
    """An image the detector cannot take; ``kind`` names the rule broken.

    ``kind``: ``encoding``, ``empty``, ``too_large``, ``width``, ``step``, ``size``, ``dtype``,
    ``shape`` (e.g. to rate-limit log lines per kind).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def check_geometry(height: int, width: int, encoding: Encoding) -> None:
    """Raise ImageFormatError unless (height, width) is a valid size for ``encoding``."""
    if height <= 0 or width <= 0:
        raise ImageFormatError('empty', f'empty image ({width}x{height})')
    if height * width > MAX_SOURCE_PIXELS:
        raise ImageFormatError('too_large', f'image {width}x{height} exceeds the largest '
                               f'accepted size ({MAX_SOURCE_PIXELS} pixels)')
    if width % encoding.pixel_align:
        raise ImageFormatError('width', f'{encoding.name} needs an even width (2 pixels share '
                               f'their chroma), got {width}')


@dataclass(frozen=True, eq=False)
class SourceImage:
    """One validated camera frame (see the module contract)."""

    pixels: np.ndarray
    encoding: Encoding

    @classmethod
    def from_array(cls, array: Any, encoding: str = 'bgr8') -> 'SourceImage':
        """Wrap an (H, W, C) uint8 array (C = the encoding's channels; mono8 may be (H, W))."""
        enc = encoding_of(encoding)
        if isinstance(array, SourceImage):
            if array.encoding.name != enc.name:
                raise ImageFormatError('encoding', f'image is {array.encoding.name}, not '
                                       f'{enc.name}')
            return array
        if not isinstance(array, np.ndarray):
            raise ImageFormatError('shape', f'image must be a numpy array, got '
                                   f'{type(array).__name__}')
        if array.dtype != np.uint8:
            raise ImageFormatError('dtype', f'image dtype must be uint8, got {array.dtype}')
        if array.ndim == 2 and enc.channels == 1:
            array = array[:, :, None]
        if array.ndim != 3 or array.shape[2] != enc.channels:
            raise ImageFormatError('shape', f'{enc.name} image must have shape (H, W, '
                                   f'{enc.channels}), got {array.shape}')
        check_geometry(int(array.shape[0]), int(array.shape[1]), enc)
        if array.strides[1:] != (enc.channels, 1) or array.strides[0] < 0:
            array = np.ascontiguousarray(array)
        return cls(array, enc)

    @classmethod
    def from_buffer(cls, height: int, width: int, encoding: str, step: int,
                    data: Any) -> 'SourceImage':
        """Return a READ-ONLY zero-copy view of an Image message's ``data``.

        One copy only when ``data`` has no buffer protocol (e.g. a list). ``step`` = bytes per
        row, padding at the end of each row skipped. The checks run before any buffer is touched.
        """
        enc = encoding_of(encoding)
        height, width, step = int(height), int(width), int(step)
        check_geometry(height, width, enc)
        row = width * enc.channels
        if step < row:
            raise ImageFormatError('step', f'step {step} is shorter than a row of {width} '
                                   f'{enc.name} pixels ({row} bytes)')
        try:
            buffer = np.frombuffer(data, dtype=np.uint8)
        except (TypeError, ValueError):
            buffer = np.asarray(data, dtype=np.uint8).reshape(-1)
        if buffer.size != step * height:
            raise ImageFormatError('size', f'data has {buffer.size} bytes but step * height = '
                                   f'{step} * {height} = {step * height}')
        view = np.lib.stride_tricks.as_strided(buffer, shape=(height, width, enc.channels),
                                               strides=(step, enc.channels, 1),
                                               writeable=False)
        return cls(view, enc)

    @property
    def height(self) -> int:
        """Rows."""
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        """Pixels per row."""
        return int(self.pixels.shape[1])

    @property
    def pitch(self) -> int:
        """Bytes between row starts."""
        return int(self.pixels.strides[0]) if self.height > 1 else self.row_bytes

    @property
    def row_bytes(self) -> int:
        """Bytes of pixels in one row."""
        return self.width * self.encoding.channels

    @property
    def shape(self) -> Tuple[int, int]:
        """(height, width)."""
        return self.height, self.width

    def to_bgr(self) -> np.ndarray:
        """Return the frame as (H, W, 3) BGR uint8 (the pixels themselves for bgr8)."""
        return self.encoding.to_bgr(self.pixels)


def as_source(image: Any, encoding: Optional[str] = None) -> SourceImage:
    """Return ``image`` as a SourceImage (made and validated once if it is an array)."""
    if isinstance(image, SourceImage):
        if encoding is not None and encoding != image.encoding.name:
            raise ImageFormatError('encoding', f'image is {image.encoding.name}, not {encoding}')
        return image
    return SourceImage.from_array(image, encoding or 'bgr8')


def source_from_message(msg: Any) -> SourceImage:
    """Return the zero-copy SourceImage of a sensor_msgs/Image message (see ``from_buffer``)."""
    return SourceImage.from_buffer(msg.height, msg.width, str(msg.encoding), msg.step, msg.data)
