"""sensor_msgs/Image fields <-> NumPy without ROS: zero copy, step, encodings, bad fields."""

import array

import numpy as np
import pytest

from tensorrt_yolox_py.errors import InputError
from tensorrt_yolox_py.ros.image_conversion import (ImageFormatError, array_to_image_fields,
                                                    check_image_fields, image_to_array)
from tensorrt_yolox_py.stages.preprocess import MAX_SOURCE_PIXELS


def _padded(image: np.ndarray, pad: int, fill: int = 77) -> array.array:
    """Rows of ``image`` each followed by ``pad`` bytes of ``fill``, built row by row."""
    out = array.array('B')
    for row in image:
        out.frombytes(row.tobytes())
        out.frombytes(bytes([fill]) * pad)
    return out


@pytest.fixture()
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)


@pytest.mark.parametrize('encoding', ['bgr8', 'rgb8'])
@pytest.mark.parametrize('pad', [0, 1, 5, 64])
def test_view_honours_step_and_keeps_channels(image: np.ndarray, encoding: str,
                                              pad: int) -> None:
    data = _padded(image, pad)
    view = image_to_array(37, 53, encoding, 53 * 3 + pad, data)
    assert view.shape == (37, 53, 3) and view.dtype == np.uint8
    np.testing.assert_array_equal(view, image)  # padding skipped, channel order untouched


def test_view_is_zero_copy_and_read_only(image: np.ndarray) -> None:
    data = _padded(image, 3)
    view = image_to_array(37, 53, 'bgr8', 53 * 3 + 3, data)
    assert np.shares_memory(view, np.frombuffer(data, np.uint8))
    data[0] = 255 - data[0]  # a change in the message buffer shows through the view
    assert view[0, 0, 0] == data[0]
    with pytest.raises(ValueError):
        view[0, 0, 0] = 1


def test_bytes_and_list_data(image: np.ndarray) -> None:
    raw = image.tobytes()
    np.testing.assert_array_equal(image_to_array(37, 53, 'rgb8', 159, raw), image)
    np.testing.assert_array_equal(image_to_array(37, 53, 'rgb8', 159, list(raw)), image)


@pytest.mark.parametrize('height, width, encoding, step, size, kind, text', [
    (4, 4, 'mono8', 12, 48, 'encoding', "unsupported encoding 'mono8'"),
    (4, 4, 'bgra8', 16, 64, 'encoding', 'supported: bgr8, rgb8'),
    (4, 4, '', 12, 48, 'encoding', "unsupported encoding ''"),
    (0, 0, 'bgr8', 0, 0, 'empty', 'empty image (0x0)'),
    (4, 0, 'bgr8', 0, 0, 'empty', 'empty image'),
    (8000, 8000, 'bgr8', 24000, 0, 'too_large', 'exceeds the largest accepted size'),
    (4, 4, 'bgr8', 11, 44, 'step', 'step 11 is shorter than a row'),
    (4, 4, 'bgr8', 12, 47, 'size', 'data has 47 bytes but step * height = 12 * 4 = 48'),
    (4, 4, 'rgb8', 13, 53, 'size', 'data has 53 bytes'),
])
def test_bad_fields_give_a_reason(height: int, width: int, encoding: str, step: int,
                                  size: int, kind: str, text: str) -> None:
    with pytest.raises(ImageFormatError) as info:
        image_to_array(height, width, encoding, step, bytes(size))
    assert info.value.kind == kind
    assert text in str(info.value)
    assert isinstance(info.value, InputError)


def test_size_limit_is_the_preprocess_one() -> None:
    side = int(np.sqrt(MAX_SOURCE_PIXELS))
    check_image_fields(side, side, 'bgr8', side * 3, side * side * 3)  # at the limit: fine
    with pytest.raises(ImageFormatError, match='exceeds'):
        check_image_fields(side + 1, side + 1, 'bgr8', (side + 1) * 3, 0)


def test_fields_round_trip_and_non_contiguous_input(image: np.ndarray) -> None:
    strided = image[::2, 1::2]  # a non-contiguous view
    fields = array_to_image_fields(strided, 'rgb8')
    height, width = strided.shape[:2]
    assert fields['height'] == height and fields['width'] == width
    assert fields['step'] == width * 3 and fields['encoding'] == 'rgb8'
    assert fields['is_bigendian'] == 0
    assert isinstance(fields['data'], array.array) and fields['data'].typecode == 'B'
    assert fields['data'].tobytes() == np.ascontiguousarray(strided).tobytes()
    back = image_to_array(height, width, 'rgb8', fields['step'], fields['data'])
    np.testing.assert_array_equal(back, strided)


@pytest.mark.parametrize('bad', [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32),
                                 np.zeros((4, 4, 4), np.uint8)])
def test_array_to_fields_rejects_non_images(bad: np.ndarray) -> None:
    with pytest.raises(InputError):
        array_to_image_fields(bad)
