"""sensor_msgs/Image <-> NumPy without cv_bridge (and without importing rclpy).

Contract:

- ``image_to_array(height, width, encoding, step, data)`` takes the fields of a
  sensor_msgs/Image and returns a READ-ONLY (height, width, 3) uint8 view of ``data`` (no copy
  when ``data`` supports the buffer protocol, as rclpy's ``array.array('B')`` does): row stride
  ``step`` bytes (padding at the end of each row is skipped), pixel stride 3, channel order as
  ``encoding`` says (``bgr8`` or ``rgb8``). The view keeps ``data`` alive.
- Anything else raises ``ImageFormatError`` (an ``InputError``) whose message is the reason to
  log when the frame is skipped: unsupported encoding, zero width/height, an image over
  ``MAX_SOURCE_PIXELS``, ``step`` shorter than a row, or ``len(data) != step * height``.
  The checks run before any buffer is touched, so a huge or lying header costs nothing.
- ``array_to_image_fields(image, encoding)`` is the inverse for publishing: a dict of Image
  fields (``height``, ``width``, ``encoding``, ``is_bigendian``, ``step``, ``data``) with
  ``step = width * 3`` and ``data`` an ``array.array('B')`` (the type rclpy stores, so
  assigning it does not trigger a per-byte check).
"""

import array
from typing import Any, Dict

import numpy as np

from ..errors import InputError
from ..stages.preprocess import MAX_SOURCE_PIXELS, SUPPORTED_ENCODINGS, validate_image

CHANNELS = 3


class ImageFormatError(InputError):
    """An Image message that the detector cannot take; the message says why.

    ``kind`` names the rule broken (``encoding``, ``empty``, ``too_large``, ``step``, ``size``),
    e.g. to rate-limit log lines per kind.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def check_image_fields(height: int, width: int, encoding: str, step: int,
                       data_len: int) -> None:
    """Raise ImageFormatError unless the fields describe a valid bgr8/rgb8 image."""
    if encoding not in SUPPORTED_ENCODINGS:
        raise ImageFormatError('encoding', f"unsupported encoding '{encoding}' (supported: "
                               f"{', '.join(SUPPORTED_ENCODINGS)})")
    if height <= 0 or width <= 0:
        raise ImageFormatError('empty', f'empty image ({width}x{height})')
    if height * width > MAX_SOURCE_PIXELS:
        raise ImageFormatError('too_large', f'image {width}x{height} exceeds the largest '
                               f'accepted size ({MAX_SOURCE_PIXELS} pixels)')
    row_bytes = width * CHANNELS
    if step < row_bytes:
        raise ImageFormatError('step', f'step {step} is shorter than a row of {width} {encoding} '
                               f'pixels ({row_bytes} bytes)')
    if data_len != step * height:
        raise ImageFormatError('size', f'data has {data_len} bytes but step * height = '
                               f'{step} * {height} = {step * height}')


def image_to_array(height: int, width: int, encoding: str, step: int, data: Any) -> np.ndarray:
    """Return a read-only (height, width, 3) uint8 view of an Image's ``data``; see contract."""
    height, width, step = int(height), int(width), int(step)
    try:
        buffer = np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError):
        buffer = np.asarray(data, dtype=np.uint8).reshape(-1)  # e.g. a list: one copy
    check_image_fields(height, width, encoding, step, int(buffer.size))
    view = np.lib.stride_tricks.as_strided(buffer, shape=(height, width, CHANNELS),
                                           strides=(step, CHANNELS, 1), writeable=False)
    validate_image(view, encoding)
    return view


def image_msg_to_array(msg: Any) -> np.ndarray:
    """Return the zero-copy view of a sensor_msgs/Image message (see ``image_to_array``)."""
    return image_to_array(msg.height, msg.width, msg.encoding, msg.step, msg.data)


def array_to_image_fields(image: np.ndarray, encoding: str = 'bgr8') -> Dict[str, Any]:
    """Return sensor_msgs/Image field values for an (H, W, 3) uint8 image (one copy)."""
    validate_image(image, encoding)
    height, width = int(image.shape[0]), int(image.shape[1])
    data = array.array('B')
    data.frombytes(memoryview(np.ascontiguousarray(image)).cast('B'))
    return {'height': height, 'width': width, 'encoding': encoding, 'is_bigendian': 0,
            'step': width * CHANNELS, 'data': data}


def fill_image_msg(msg: Any, image: np.ndarray, encoding: str = 'bgr8') -> Any:
    """Set the image fields of a sensor_msgs/Image ``msg`` from ``image``; return ``msg``."""
    for name, value in array_to_image_fields(image, encoding).items():
        setattr(msg, name, value)
    return msg
