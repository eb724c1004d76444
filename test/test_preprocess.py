"""CPU preprocessing reference against hand-computed letterbox cases and bad inputs."""

import cv2
import numpy as np
import pytest

from tensorrt_yolox_py.errors import InputError
from tensorrt_yolox_py.image import SourceImage
from tensorrt_yolox_py.stages.preprocess import (
    compute_letterbox, CpuPreprocessor, PAD_VALUE, preprocess_cpu)
from tensorrt_yolox_py.tensors import HostTensor


def _solid(h, w, bgr):
    img = np.empty((h, w, 3), np.uint8)
    img[:] = bgr
    return img


def _pre(img, in_hw, encoding='bgr8', **kwargs):
    """The CPU reference of an array in ``encoding`` (wrapped as the adapters do)."""
    return preprocess_cpu(SourceImage.from_array(img, encoding), in_hw, **kwargs)


@pytest.mark.parametrize('src_hw, in_hw, scale, resized_hw', [
    ((64, 64), (64, 64), 1.0, (64, 64)),            # exact fit
    ((64, 128), (64, 64), 0.5, (32, 64)),           # landscape, exact halving
    ((100, 50), (64, 64), 0.64, (64, 32)),          # portrait
    ((17, 33), (32, 32), 32 / 33, (16, 32)),        # odd sizes: 17 * 32/33 = 16.48 -> 16
    ((1, 1), (32, 32), 32.0, (32, 32)),             # 1x1 source
    ((1280, 1920), (960, 960), 0.5, (640, 960)),    # the camera case
    ((1280, 1920), (608, 960), 0.475, (608, 912)),  # 960x608: height-limited
])
def test_letterbox_geometry(src_hw, in_hw, scale, resized_hw):
    lb = compute_letterbox(src_hw[0], src_hw[1], in_hw[0], in_hw[1])
    assert lb.scale == pytest.approx(scale)
    assert (lb.resized_h, lb.resized_w) == resized_hw


def test_solid_image_is_placed_top_left_and_padded():
    img = _solid(64, 128, (10, 20, 30))
    out, lb = _pre(img, (64, 64))
    assert out.shape == (1, 3, 64, 64) and out.dtype == np.float32
    assert (lb.resized_h, lb.resized_w) == (32, 64)
    for plane, value in enumerate((10, 20, 30)):
        assert np.all(out[0, plane, :32, :] == value)
    assert np.all(out[0, :, 32:, :] == PAD_VALUE)


def test_portrait_pads_the_right_side():
    img = _solid(100, 50, (1, 2, 3))
    out, _ = _pre(img, (64, 64))
    assert np.all(out[0, :, :, 32:] == PAD_VALUE)
    assert np.all(out[0, 2, :, :32] == 3)


def test_exact_fit_is_a_pure_transpose():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)
    out, lb = _pre(img, (48, 80))
    assert lb.scale == 1.0
    np.testing.assert_array_equal(out[0], img.transpose(2, 0, 1).astype(np.float32))


def test_bilinear_half_pixel_centres_and_clamped_edges():
    # One row [0, 100] upscaled 2x: source x = (x + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25,
    # clamped at the edges -> 0, 25, 75, 100 (OpenCV INTER_LINEAR).
    img = np.zeros((1, 2, 3), np.uint8)
    img[0, 1, :] = 100
    out, lb = _pre(img, (2, 4))
    assert (lb.resized_h, lb.resized_w) == (2, 4)
    for row in range(2):
        np.testing.assert_allclose(out[0, 0, row], [0, 25, 75, 100], atol=0.5)


def test_one_pixel_image_fills_the_canvas():
    img = _solid(1, 1, (7, 8, 9))
    out, _ = _pre(img, (32, 32))
    assert np.all(out[0, 0] == 7) and np.all(out[0, 2] == 9)


def test_rgb8_is_converted_to_bgr_planes():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    bgr, _ = _pre(img, (64, 64), 'bgr8')
    rgb, _ = _pre(img[:, :, ::-1].copy(), (64, 64), 'rgb8')
    np.testing.assert_array_equal(bgr, rgb)


def test_strided_rows_match_contiguous_input():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    padded = np.zeros((37, 53 * 3 + 13), np.uint8)          # ROS step = 172 bytes
    padded[:, :53 * 3] = img.reshape(37, -1)
    view = padded[:, :53 * 3].reshape(37, 53, 3)
    assert not view.flags.c_contiguous
    expected, _ = _pre(img, (64, 96))
    got, _ = _pre(view, (64, 96))
    np.testing.assert_array_equal(got, expected)
    # A column-strided view (not packed pixels) is copied, with the same result.
    wide = np.repeat(img, 2, axis=1)[:, ::2]
    got2, _ = _pre(wide, (64, 96))
    np.testing.assert_array_equal(got2, expected)


def test_float16_output_and_reused_buffer():
    img = SourceImage.from_array(_solid(20, 20, (100, 150, 200)))
    pre = CpuPreprocessor((32, 32), dtype=np.float16)
    first, _ = pre.run([img])
    second, _ = pre.run([SourceImage.from_array(_solid(20, 20, (1, 2, 3)))])
    assert isinstance(first, HostTensor) and first.layout == 'NCHW'
    assert first.dtype == np.float16 and np.shares_memory(first.array, second.array)
    assert np.all(second.array[0, 1] == 2)


def test_run_stacks_a_batch_in_order_with_one_letterbox_each():
    images = [_solid(20, 40, (k, 2 * k, 3 * k)) for k in (5, 6, 7)] + [_solid(50, 10, (9, 9, 9))]
    sources = [SourceImage.from_array(img) for img in images]
    with CpuPreprocessor((32, 32)) as pre:
        tensor, lbs = pre.run(sources)
        assert tensor.shape == (4, 3, 32, 32) and tensor.batch == 4
        for index, img in enumerate(images):
            want, want_lb = _pre(img, (32, 32))
            np.testing.assert_array_equal(tensor.array[index], want[0])
            assert lbs[index] == want_lb
        one, _ = pre.run(sources[3:])           # a smaller batch reuses the same buffer
        assert one.shape == (1, 3, 32, 32)
        np.testing.assert_array_equal(one.array[0], _pre(images[3], (32, 32))[0][0])


def test_run_takes_source_images_only():
    pre = CpuPreprocessor((32, 32))
    with pytest.raises(InputError, match='at least one image'):
        pre.run([])
    with pytest.raises(InputError, match=r'image 1: expected a SourceImage, got ndarray'):
        pre.run([SourceImage.from_array(_solid(4, 4, (0, 0, 0))), _solid(4, 4, (0, 0, 0))])
    with pytest.raises(InputError, match='expected a SourceImage'):
        preprocess_cpu(_solid(4, 4, (0, 0, 0)), (8, 8))


@pytest.mark.parametrize('image, encoding, message', [
    (np.zeros((10, 10, 3), np.float32), 'bgr8', 'dtype'),
    (np.zeros((0, 10, 3), np.uint8), 'bgr8', 'empty'),
    (np.zeros((10, 10, 2), np.uint8), 'bgr8', 'shape'),
    (np.zeros((10, 10), np.uint8), 'bgr8', 'shape'),
    (np.zeros((10, 10, 3), np.uint8), 'mono16', 'unsupported encoding'),
    (np.zeros((10, 10, 3), np.uint8), 'mono8', r'shape \(H, W, 1\)'),
    (np.zeros((10, 9, 2), np.uint8), 'yuv422', 'even width'),
    ([[1, 2, 3]], 'bgr8', 'numpy array'),
])
def test_bad_inputs_raise_clear_errors(image, encoding, message):
    with pytest.raises(InputError, match=message):
        _pre(image, (32, 32), encoding)


def test_huge_image_is_rejected_without_allocating():
    huge = np.lib.stride_tricks.as_strided(np.zeros(3, np.uint8), (8000, 8000, 3), (0, 0, 1))
    with pytest.raises(InputError, match='exceeds'):
        _pre(huge, (32, 32))


def test_wrong_out_buffer_is_rejected():
    with pytest.raises(InputError, match='out must be'):
        _pre(_solid(4, 4, (0, 0, 0)), (8, 8), out=np.zeros((1, 3, 8, 4), np.float32))


@pytest.mark.parametrize('encoding, code', [
    ('bgra8', cv2.COLOR_BGRA2BGR), ('rgba8', cv2.COLOR_RGBA2BGR), ('mono8', cv2.COLOR_GRAY2BGR),
    ('yuv422', cv2.COLOR_YUV2BGR_UYVY), ('yuv422_yuy2', cv2.COLOR_YUV2BGR_YUYV),
    ('rgb8', cv2.COLOR_RGB2BGR)])
def test_every_encoding_equals_opencv_conversion_then_bgr_letterbox(encoding, code):
    """The CPU reference of an encoding = OpenCV's conversion to BGR, then the bgr8 path."""
    from tensorrt_yolox_py.image import ENCODINGS

    channels = ENCODINGS[encoding].channels
    img = np.random.default_rng(7).integers(0, 256, (45, 62, channels), dtype=np.uint8)
    got, lb = _pre(img, (32, 48), encoding)
    want, want_lb = _pre(cv2.cvtColor(img, code), (32, 48), 'bgr8')
    assert lb == want_lb
    np.testing.assert_array_equal(got, want)
