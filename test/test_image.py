"""The source image: one encoding table, zero-copy views of Image messages, validation once.

References: OpenCV's conversions (cv2.cvtColor) for every encoding's BGR image; the fields of
sensor_msgs/Image for the views; bad fields and bad arrays each give a reason.
"""

import array
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from tensorrt_yolox_py.errors import InputError
from tensorrt_yolox_py.image import (ENCODINGS, ImageFormatError, MAX_SOURCE_PIXELS,
                                     source_from_message, SourceImage)
from tensorrt_yolox_py.ros.image_conversion import array_to_image_fields, image_msg_to_source

OPENCV = {'bgr8': None, 'rgb8': cv2.COLOR_RGB2BGR, 'bgra8': cv2.COLOR_BGRA2BGR,
          'rgba8': cv2.COLOR_RGBA2BGR, 'mono8': cv2.COLOR_GRAY2BGR,
          'yuv422': cv2.COLOR_YUV2BGR_UYVY, 'yuv422_yuy2': cv2.COLOR_YUV2BGR_YUYV}


def _padded(image: np.ndarray, pad: int, fill: int = 77) -> array.array:
    """Rows of ``image`` each followed by ``pad`` bytes of ``fill``, built row by row."""
    out = array.array('B')
    for row in image:
        out.frombytes(row.tobytes())
        out.frombytes(bytes([fill]) * pad)
    return out


def _pixels(encoding: str, h: int = 37, w: int = 54, seed: int = 0) -> np.ndarray:
    channels = ENCODINGS[encoding].channels
    return np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)


def _msg(pixels: np.ndarray, encoding: str, pad: int = 0) -> SimpleNamespace:
    h, w, c = pixels.shape
    return SimpleNamespace(height=h, width=w, encoding=encoding, step=w * c + pad,
                           data=_padded(pixels, pad))


def test_the_table_is_the_one_list_of_encodings():
    assert list(ENCODINGS) == ['bgr8', 'rgb8', 'bgra8', 'rgba8', 'mono8', 'yuv422',
                               'yuv422_yuy2']
    assert len({e.kernel_format for e in ENCODINGS.values()}) == len(ENCODINGS)


@pytest.mark.parametrize('encoding', list(ENCODINGS))
@pytest.mark.parametrize('pad', [0, 1, 64])
def test_view_honours_step_and_converts_like_opencv(encoding: str, pad: int) -> None:
    pixels = _pixels(encoding)
    source = source_from_message(_msg(pixels, encoding, pad))
    assert source.encoding.name == encoding and source.shape == (37, 54)
    np.testing.assert_array_equal(source.pixels, pixels)    # padding skipped
    code = OPENCV[encoding]
    want = pixels if code is None else cv2.cvtColor(np.ascontiguousarray(pixels), code)
    np.testing.assert_array_equal(source.to_bgr(), want)


def test_view_is_zero_copy_and_read_only() -> None:
    pixels = _pixels('bgr8')
    msg = _msg(pixels, 'bgr8', 3)
    source = image_msg_to_source(msg)
    assert np.shares_memory(source.pixels, np.frombuffer(msg.data, np.uint8))
    msg.data[0] = 255 - msg.data[0]
    assert source.pixels[0, 0, 0] == msg.data[0]
    with pytest.raises(ValueError):
        source.pixels[0, 0, 0] = 1


def test_bytes_and_list_data() -> None:
    pixels = _pixels('rgb8')
    raw = pixels.tobytes()
    for data in (raw, list(raw)):
        source = SourceImage.from_buffer(37, 54, 'rgb8', 54 * 3, data)
        np.testing.assert_array_equal(source.pixels, pixels)


@pytest.mark.parametrize('height, width, encoding, step, size, kind, text', [
    (4, 4, '16UC1', 8, 32, 'encoding', "unsupported encoding '16UC1'"),
    (4, 4, 'bgr16', 24, 96, 'encoding', 'supported: bgr8, rgb8, bgra8, rgba8, mono8'),
    (4, 4, '', 12, 48, 'encoding', "unsupported encoding ''"),
    (0, 0, 'bgr8', 0, 0, 'empty', 'empty image (0x0)'),
    (4, 0, 'mono8', 0, 0, 'empty', 'empty image'),
    (8000, 8000, 'bgr8', 24000, 0, 'too_large', 'exceeds the largest accepted size'),
    (4, 4, 'bgr8', 11, 44, 'step', 'step 11 is shorter than a row'),
    (4, 4, 'bgra8', 15, 60, 'step', 'shorter than a row of 4 bgra8 pixels (16 bytes)'),
    (4, 4, 'bgr8', 12, 47, 'size', 'data has 47 bytes but step * height = 12 * 4 = 48'),
    (4, 4, 'rgb8', 13, 53, 'size', 'data has 53 bytes'),
    (4, 5, 'yuv422', 10, 40, 'width', 'even width'),
    (4, 3, 'yuv422_yuy2', 6, 24, 'width', 'even width'),
])
def test_bad_fields_give_a_reason(height: int, width: int, encoding: str, step: int,
                                  size: int, kind: str, text: str) -> None:
    with pytest.raises(ImageFormatError) as info:
        SourceImage.from_buffer(height, width, encoding, step, bytes(size))
    assert info.value.kind == kind
    assert text in str(info.value)
    assert isinstance(info.value, InputError)


def test_size_limit() -> None:
    side = int(np.sqrt(MAX_SOURCE_PIXELS))
    with pytest.raises(ImageFormatError, match='exceeds'):
        SourceImage.from_buffer(side + 1, side + 1, 'mono8', side + 1, b'')


@pytest.mark.parametrize('bad, encoding, kind', [
    (np.zeros((4, 4), np.uint8), 'bgr8', 'shape'),
    (np.zeros((4, 4, 3), np.float32), 'bgr8', 'dtype'),
    (np.zeros((4, 4, 4), np.uint8), 'bgr8', 'shape'),
    (np.zeros((4, 4, 3), np.uint8), 'bgra8', 'shape'),
    (np.zeros((4, 4, 2), np.uint8), 'mono8', 'shape'),
    (np.zeros((0, 4, 3), np.uint8), 'bgr8', 'empty'),
    (np.zeros((4, 3, 2), np.uint8), 'yuv422', 'width'),
    ([[1, 2, 3]], 'bgr8', 'shape'),
])
def test_arrays_are_validated_once_with_a_reason(bad, encoding, kind) -> None:
    with pytest.raises(ImageFormatError) as info:
        SourceImage.from_array(bad, encoding)
    assert info.value.kind == kind


def test_from_array_keeps_strided_rows_and_compacts_strided_pixels() -> None:
    base = _pixels('bgr8', 20, 40)
    rows = base[::2]                       # strided rows, packed pixels: kept as a view
    assert np.shares_memory(SourceImage.from_array(rows).pixels, base)
    cols = base[:, ::2]                    # strided pixels: one contiguous copy
    source = SourceImage.from_array(cols)
    assert source.pixels.strides[1:] == (3, 1)
    np.testing.assert_array_equal(source.pixels, cols)
    mono = SourceImage.from_array(np.zeros((5, 6), np.uint8), 'mono8')
    assert mono.pixels.shape == (5, 6, 1)


@pytest.mark.parametrize('encoding', list(ENCODINGS))
def test_fields_round_trip(encoding: str) -> None:
    pixels = _pixels(encoding, 9, 14)[::2]
    fields = array_to_image_fields(pixels, encoding)
    assert fields['height'] == pixels.shape[0] and fields['width'] == pixels.shape[1]
    assert fields['step'] == pixels.shape[1] * pixels.shape[2]
    assert fields['encoding'] == encoding and fields['is_bigendian'] == 0
    assert isinstance(fields['data'], array.array) and fields['data'].typecode == 'B'
    back = SourceImage.from_buffer(fields['height'], fields['width'], encoding, fields['step'],
                                   fields['data'])
    np.testing.assert_array_equal(back.pixels, pixels)
