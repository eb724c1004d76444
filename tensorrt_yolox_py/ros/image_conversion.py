"""sensor_msgs/Image <-> the package's SourceImage, without cv_bridge (and without rclpy).

Contract:

- ``image_msg_to_source(msg)``: the zero-copy, validated ``image.SourceImage`` of a received
  Image (``image.source_from_message``: the one owner of the encodings, their layout and the
  checks; a malformed message raises ``ImageFormatError`` whose ``kind`` says which rule it
  broke, before any buffer is touched).
- ``array_to_image_fields(image, encoding)`` is the inverse for publishing: a dict of Image
  fields (``height``, ``width``, ``encoding``, ``is_bigendian``, ``step``, ``data``) with
  ``step = width * channels`` and ``data`` an ``array.array('B')`` (the type rclpy stores, so
  assigning it does not trigger a per-byte check).
"""

import array
from typing import Any, Dict

import numpy as np

from ..image import ImageFormatError, source_from_message, SourceImage

__all__ = ['ImageFormatError', 'array_to_image_fields', 'fill_image_msg', 'image_msg_to_source']


def image_msg_to_source(msg: Any) -> SourceImage:
    """Return the zero-copy SourceImage of a sensor_msgs/Image message (see the contract)."""
    return source_from_message(msg)


def array_to_image_fields(image: np.ndarray, encoding: str = 'bgr8') -> Dict[str, Any]:
    """Return sensor_msgs/Image field values for an (H, W, C) uint8 image (one copy)."""
    source = SourceImage.from_array(image, encoding)
    pixels = np.ascontiguousarray(source.pixels)
    data = array.array('B')
    data.frombytes(memoryview(pixels).cast('B'))
    return {'height': source.height, 'width': source.width, 'encoding': encoding,
            'is_bigendian': 0, 'step': source.row_bytes, 'data': data}


def fill_image_msg(msg: Any, image: np.ndarray, encoding: str = 'bgr8') -> Any:
    """Set the image fields of a sensor_msgs/Image ``msg`` from ``image``; return ``msg``."""
    for name, value in array_to_image_fields(image, encoding).items():
        setattr(msg, name, value)
    return msg
