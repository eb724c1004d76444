"""GPU tests of CudaPreprocessor (and its benchmark lab) against the CPU reference.

Skipped cleanly where there is no CUDA driver / GPU / NVRTC. On a GPU: the fused kernel (every
runtime and benchmark variant), the unfused 4-kernel chain (benchmarks/cuda_variants), every input
encoding (bgr8, rgb8, bgra8, rgba8, mono8, yuv422, yuv422_yuy2, converted inside the kernel),
the batch launch, every host staging mode, graphs and overlapped H2D all match the CPU
reference (OpenCV) within 1.0 for many source sizes, both model sizes, float32 and float16, and
write every output element (the output is poisoned with NaN first). The runtime class's one
interface (``run(sources) -> (DeviceTensor, letterboxes)``) is tested here directly; the kernel
variants, staging modes, graphs, overlap and device-resident sources through the lab subclass
(``benchmarks/cuda_lab.py``), which shares the runtime's staging and launches. Runs with plain
``python3 -m pytest`` (no ROS needed).
"""

import numpy as np
import pytest

from benchmarks.cuda_lab import DeviceImage, HOST_COPY_MODES, LabPreprocessor
from benchmarks.cuda_variants.variants import BENCH_KERNELS, launch_unfused
from tensorrt_yolox_py.cuda import kernels as K
from tensorrt_yolox_py.cuda.check import cuda_call, CudaError
from tensorrt_yolox_py.cuda.preprocess import cuda_available, CudaPreprocessor
from tensorrt_yolox_py.errors import InputError
from tensorrt_yolox_py.image import ENCODINGS, SourceImage
from tensorrt_yolox_py.stages.preprocess import compute_letterbox, preprocess_cpu
from tensorrt_yolox_py.tensors import DeviceTensor

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not cuda_available(), reason='no CUDA GPU / driver / NVRTC')]

MODEL_SIZES = [(960, 960), (608, 960)]  # (in_h, in_w): 960x960 and 960x608
SOURCE_SIZES = [  # (h, w)
    (1280, 1920), (720, 1280), (1920, 1080), (481, 641), (1279, 1917), (17, 33), (1, 1),
    (2, 3), (300, 200), (100, 50), (961, 959), (608, 960)]
DTYPES = [np.float32, np.float16]
TOL = 1.0


def _image(h, w, seed, channels=3):
    return np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)


def _padded(image, extra):
    """Return a view of ``image`` whose rows are ``extra`` bytes longer (ROS step padding)."""
    h, w, c = image.shape
    step = c * w + extra
    buf = np.full(h * step, 77, np.uint8)
    view = np.lib.stride_tricks.as_strided(buf, shape=(h, w, c), strides=(step, c, 1))
    view[...] = image
    return view, buf


def _poison(pre, ptr, n=1):
    from cuda.bindings import driver

    count = n * 3 * pre.input_hw[0] * pre.input_hw[1]
    if pre.dtype == np.float32:
        cuda_call(driver.cuMemsetD32Async(ptr, 0x7FC00000, count, pre.stream_handle))
    else:
        cuda_call(driver.cuMemsetD16Async(ptr, 0x7E00, count, pre.stream_handle))


def _check(out, image, input_hw, encoding, dtype):
    ref, _ = preprocess_cpu(SourceImage.from_array(np.ascontiguousarray(image), encoding),
                            input_hw, np.float32)
    out = np.asarray(out, np.float32).reshape(ref.shape)
    assert not np.isnan(out).any(), 'some output elements were not written'
    diff = np.abs(out - ref)
    where = np.unravel_index(diff.argmax(), diff.shape)
    assert diff.max() <= TOL, f'max |gpu - cpu| = {diff.max()} at {where}'
    return float(diff.max())


@pytest.fixture(scope='module')
def pres():
    """One preprocessor per (input size, dtype, options), created once (kernels compile once)."""
    made = {}

    def get(input_hw, dtype, **kw):
        key = (input_hw, np.dtype(dtype).name, tuple(sorted((k, str(v)) for k, v in kw.items())))
        if key not in made:
            made[key] = LabPreprocessor(input_hw, dtype, **kw)
        return made[key]

    yield get
    for pre in made.values():
        pre.close()


def _unfused(pre, image, encoding):
    """Run the seed's unfused chain (benchmark kernels) on ``image``; return the output."""
    dev = _to_device(image)
    try:
        _poison(pre, pre.device_ptr)
        launch_unfused(pre, dev.ptr, dev.row_pitch, _lb(image.shape[:2], pre.input_hw),
                       encoding == 'rgb8', pre.device_ptr)
        return pre.download()[0]
    finally:
        _free(dev)


@pytest.mark.parametrize('impl', ['fused', 'unfused'])
@pytest.mark.parametrize('dtype', DTYPES, ids=['f32', 'f16'])
@pytest.mark.parametrize('input_hw', MODEL_SIZES, ids=['960x960', '960x608'])
@pytest.mark.parametrize('src_hw', SOURCE_SIZES, ids=lambda s: f'{s[1]}x{s[0]}')
def test_matches_cpu_reference(pres, src_hw, input_hw, dtype, impl):
    image = _image(*src_hw, seed=src_hw[0] * 7919 + src_hw[1])
    if impl == 'unfused':
        pre = pres(input_hw, dtype, kernels=BENCH_KERNELS)
        _check(_unfused(pre, image, 'bgr8'), image, input_hw, 'bgr8', dtype)
        return
    pre = pres(input_hw, dtype)
    _poison(pre, pre.device_ptr)
    pre.enqueue(image, 'bgr8')
    _check(pre.download()[0], image, input_hw, 'bgr8', dtype)


@pytest.mark.parametrize('encoding', [e for e in ENCODINGS if e not in ('bgr8', 'rgb8')])
@pytest.mark.parametrize('dtype', DTYPES, ids=['f32', 'f16'])
@pytest.mark.parametrize('input_hw', MODEL_SIZES, ids=['960x960', '960x608'])
def test_every_encoding_converted_inside_the_kernel(pres, encoding, input_hw, dtype):
    """GPU within 1.0 of OpenCV's conversion + the CPU letterbox, for each encoding."""
    pre = pres(input_hw, dtype)
    channels = ENCODINGS[encoding].channels
    for i, (h, w, extra) in enumerate([(1280, 1920, 0), (721, 1282, 6), (17, 34, 3), (2, 2, 0),
                                       (1080, 1920, 64)]):
        image = _image(h, w, seed=300 + i, channels=channels)
        view, _buf = _padded(image, extra)
        _poison(pre, pre.device_ptr)
        out, lb = pre(SourceImage.from_array(view, encoding))
        assert (lb.src_h, lb.src_w) == (h, w)
        _check(out, image, input_hw, encoding, dtype)
    dev = _to_device(_image(721, 1282, seed=9, channels=channels), extra=8, encoding=encoding)
    try:
        _poison(pre, pre.device_ptr)
        pre.enqueue(dev)
        _check(pre.download()[0], _image(721, 1282, seed=9, channels=channels), input_hw,
               encoding, dtype)
    finally:
        _free(dev)


@pytest.mark.parametrize('mode', HOST_COPY_MODES)
@pytest.mark.parametrize('overlap', [False, True])
def test_every_host_staging_mode(mode, overlap):
    """Chunked and threaded staging deliver the same tensor, frame after frame."""
    from cuda.bindings import driver

    with LabPreprocessor((960, 960), np.float16, host_copy=mode, overlap_h2d=overlap) as pre:
        n = 4
        base = int(cuda_call(driver.cuMemAlloc(n * pre.output_nbytes)))
        try:
            images = [_image(1280, 1920, 60 + i) for i in range(n)]
            images[2] = _padded(_image(721, 1281, 7), 5)[0]
            _poison(pre, base, n)
            for i, image in enumerate(images):
                pre.enqueue(image, 'bgr8', dst_ptr=base + i * pre.output_nbytes)
            out = pre.download(base, n)
            for i, image in enumerate(images):
                _check(out[i], image, (960, 960), 'bgr8', np.float16)
        finally:
            cuda_call(driver.cuMemFree(base))


@pytest.mark.parametrize('impl', ['fused', 'unfused'])
@pytest.mark.parametrize('dtype', DTYPES, ids=['f32', 'f16'])
@pytest.mark.parametrize('input_hw', MODEL_SIZES, ids=['960x960', '960x608'])
def test_rgb8_and_padded_rows_through_the_host_api(pres, input_hw, dtype, impl):
    if impl == 'unfused':
        pre = pres(input_hw, dtype, kernels=BENCH_KERNELS)
        image = _image(500, 333, seed=100)
        _check(_unfused(pre, image, 'rgb8'), image, input_hw, 'rgb8', dtype)
        return
    pre = pres(input_hw, dtype)
    for i, (h, w, extra, encoding) in enumerate([(1280, 1920, 64, 'rgb8'),
                                                 (721, 1281, 5, 'bgr8'),
                                                 (500, 333, 3, 'rgb8')]):
        image = _image(h, w, seed=100 + i)
        view, _buf = _padded(image, extra)
        _poison(pre, pre.device_ptr)
        out, lb = pre(view, encoding)
        assert out.shape == (1, 3) + input_hw and out.dtype == np.dtype(dtype)
        assert (lb.src_h, lb.src_w) == (h, w)
        _check(out, image, input_hw, encoding, dtype)


@pytest.mark.parametrize('dtype', DTYPES, ids=['f32', 'f16'])
@pytest.mark.parametrize('input_hw', MODEL_SIZES, ids=['960x960', '960x608'])
def test_every_fused_variant(pres, input_hw, dtype):
    pre = pres(input_hw, dtype, kernels=BENCH_KERNELS)
    for variant in BENCH_KERNELS.variants[np.dtype(dtype).name]:
        for src_hw, encoding in (((1280, 1920), 'bgr8'), ((481, 641), 'rgb8'), ((3, 1), 'bgr8')):
            image = _image(*src_hw, seed=src_hw[1])
            dev = _to_device(image, extra=3)
            try:
                _poison(pre, pre.device_ptr)
                used = pre.launch_fused(dev.ptr, dev.row_pitch, _lb(src_hw, input_hw),
                                        encoding == 'rgb8', pre.device_ptr, variant.name)
                one_wide = src_hw[1] == 1 and variant.loads != 'bytes'
                assert used == ('b1' if one_wide else variant.name)
                _check(pre.download()[0], image, input_hw, encoding, dtype)
            finally:
                _free(dev)


@pytest.mark.parametrize('dtype', DTYPES, ids=['f32', 'f16'])
def test_row_blocked_and_staged_variants_on_partial_blocks(dtype):
    with LabPreprocessor((37, 52), dtype, kernels=BENCH_KERNELS) as pre:  # partial row block
        for variant in ('w1r2', 'w1r4', 'w1', 's1'):
            for src_hw in ((23, 52), (75, 53), (37, 2), (300, 200), (128, 300)):
                image = _image(*src_hw, seed=src_hw[0])
                dev = _to_device(image)
                try:
                    _poison(pre, pre.device_ptr)
                    lb = _lb(src_hw, (37, 52))
                    used = pre.launch_fused(dev.ptr, dev.row_pitch, lb, False, pre.device_ptr,
                                            variant)
                    staged_too_wide = (variant == 's1'
                                       and not K.smem_span_fits(lb.src_w / lb.resized_w))
                    assert used == ('w1' if staged_too_wide else variant)
                    _check(pre.download()[0], image, (37, 52), 'bgr8', dtype)
                finally:
                    _free(dev)


@pytest.mark.parametrize('dtype', DTYPES, ids=['f32', 'f16'])
def test_staged_variant_falls_back_when_the_span_does_not_fit(dtype):
    with LabPreprocessor((20, 256), dtype, variant='s1', kernels=BENCH_KERNELS) as pre:
        for src_hw, expected in (((64, 2000), 'w1'), ((64, 600), 's1')):  # x factor 7.8 / 2.3
            image = _image(*src_hw, seed=src_hw[1])
            dev = _to_device(image)
            try:
                _poison(pre, pre.device_ptr)
                assert pre.launch_fused(dev.ptr, dev.row_pitch, _lb(src_hw, (20, 256)), True,
                                        pre.device_ptr) == expected
                _check(pre.download()[0], image, (20, 256), 'rgb8', dtype)
            finally:
                _free(dev)


def _lb(src_hw, input_hw):
    return compute_letterbox(src_hw[0], src_hw[1], input_hw[0], input_hw[1])


def _to_device(image, extra=0, encoding='bgr8'):
    from cuda.bindings import driver

    view, buf = _padded(image, extra)
    ptr = int(cuda_call(driver.cuMemAlloc(buf.nbytes)))
    cuda_call(driver.cuMemcpyHtoD(ptr, buf.ctypes.data, buf.nbytes))
    return DeviceImage(ptr, image.shape[0], image.shape[1], view.strides[0], encoding)


def _free(dev):
    from cuda.bindings import driver

    cuda_call(driver.cuMemFree(dev.ptr))


def test_device_image_input_skips_h2d(pres):
    pre = pres((608, 960), np.float16)
    image = _image(1080, 1920, seed=5)
    dev = _to_device(image, extra=128)
    try:
        _poison(pre, pre.device_ptr)
        lb = pre.enqueue(dev, 'rgb8')
        assert (lb.src_h, lb.src_w) == (1080, 1920)
        _check(pre.download()[0], image, (608, 960), 'rgb8', np.float16)
    finally:
        _free(dev)


def test_cuda_array_interface_input(pres):
    cupy = pytest.importorskip('cupy')
    pre = pres((960, 960), np.float32)
    image = _image(720, 1280, seed=6)
    _poison(pre, pre.device_ptr)
    pre.enqueue(cupy.asarray(image), 'bgr8')
    _check(pre.download()[0], image, (960, 960), 'bgr8', np.float32)


@pytest.mark.parametrize('dtype', DTYPES, ids=['f32', 'f16'])
def test_external_destination_even_unaligned(pres, dtype):
    from cuda.bindings import driver

    pre = pres((608, 960), dtype)
    nbytes = pre.output_nbytes
    base = int(cuda_call(driver.cuMemAlloc(nbytes + 64)))
    try:
        for offset in (0, 4):  # 4: not 16-byte aligned -> a scalar-store variant is chosen
            dst = base + offset
            image = _image(1280, 1920, seed=offset)
            _poison(pre, dst)
            pre.enqueue(image, 'bgr8', dst_ptr=dst)
            _check(pre.download(dst)[0], image, (608, 960), 'bgr8', dtype)
    finally:
        cuda_call(driver.cuMemFree(base))


@pytest.mark.parametrize('dtype', DTYPES, ids=['f32', 'f16'])
def test_batch_launch_of_several_cameras(pres, dtype):
    pre = pres((608, 960), dtype)
    encodings = ['bgr8', 'rgb8', 'bgr8', 'rgb8', 'bgra8', 'mono8', 'yuv422', 'yuv422_yuy2']
    sizes = [(1280, 1920), (720, 1280), (1920, 1080), (17, 33), (720, 1280), (480, 640),
             (1080, 1920), (601, 802)]
    images = [_image(h, w, i + 1, ENCODINGS[e].channels)
              for i, ((h, w), e) in enumerate(zip(sizes, encodings))]
    n = len(images)
    views = [_padded(images[0], 32)[0]] + images[1:3] + [None] + images[4:]
    dev = _to_device(images[3], encoding='rgb8')
    views[3] = dev
    try:
        dst = pre.batch_device_ptr(n)
        _poison(pre, dst, n)
        lbs = pre.enqueue_batch(views, encodings)
        out = pre.download(dst, n)
        for i in range(n):
            assert (lbs[i].src_h, lbs[i].src_w) == images[i].shape[:2]
            _check(out[i], images[i], (608, 960), encodings[i], dtype)
        # same geometry again (descriptor table cached), new pixels
        images2 = [_image(h, w, 20 + i, ENCODINGS[e].channels)
                   for i, ((h, w), e) in enumerate(zip(sizes, encodings))]
        _poison(pre, dst, n)
        pre.enqueue_batch(images2[:3] + [dev] + images2[4:], encodings)
        out = pre.download(dst, n)
        for i in (0, 1, 2, 4, 5, 6, 7):
            _check(out[i], images2[i], (608, 960), encodings[i], dtype)
    finally:
        _free(dev)


@pytest.mark.parametrize('mode', ['graph', 'overlap'])
def test_graph_and_overlapped_h2d_stay_correct_frame_after_frame(mode):
    from cuda.bindings import driver

    kw = {'use_graph': True} if mode == 'graph' else {'overlap_h2d': True}
    with LabPreprocessor((960, 960), np.float16, **kw) as pre:
        n = 5
        base = int(cuda_call(driver.cuMemAlloc(n * pre.output_nbytes)))
        try:
            images = [_image(1280, 1920, 40 + i) for i in range(n)]
            images[3] = _image(720, 1280, 99)  # a size change mid-stream
            _poison(pre, base, n)
            for i, image in enumerate(images):  # back to back, no host sync in between
                pre.enqueue(image, 'bgr8', dst_ptr=base + i * pre.output_nbytes)
            out = pre.download(base, n)
            for i, image in enumerate(images):
                _check(out[i], image, (960, 960), 'bgr8', np.float16)
        finally:
            cuda_call(driver.cuMemFree(base))


def test_bad_inputs_raise_clear_errors(pres):
    pre = pres((608, 960), np.float32)
    with pytest.raises(InputError):
        pre.enqueue(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(InputError):
        pre.enqueue(np.zeros((10, 10, 4), np.uint8))
    with pytest.raises(InputError):
        pre.enqueue(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(InputError, match='encoding'):
        pre.enqueue(np.zeros((10, 10, 3), np.uint8), 'mono16')
    with pytest.raises(InputError, match='even width'):
        pre.enqueue(np.zeros((10, 9, 2), np.uint8), 'yuv422')
    with pytest.raises(InputError):
        pre.enqueue(DeviceImage(0, 10, 10))
    with pytest.raises(InputError):
        pre.enqueue_batch([])


@pytest.mark.parametrize('dtype', DTYPES, ids=['f32', 'f16'])
def test_runtime_run_writes_one_device_tensor_for_one_or_a_batch(dtype):
    """The runtime class's one interface: run(sources) -> (DeviceTensor, letterboxes)."""
    import threading

    encodings = ['bgr8', 'rgb8', 'yuv422', 'mono8']
    sizes = [(1280, 1920), (721, 1281), (480, 640), (17, 33)]
    images = [_image(h, w, 70 + i, ENCODINGS[e].channels)
              for i, ((h, w), e) in enumerate(zip(sizes, encodings))]
    padded = _padded(images[1], 5)[0]                     # ROS row padding
    sources = [SourceImage.from_array(padded if i == 1 else image, encoding)
               for i, (image, encoding) in enumerate(zip(images, encodings))]
    in_hw = (608, 960)
    with CudaPreprocessor(in_hw, dtype) as pre:
        tensor, lbs = pre.run(sources[:1])
        assert isinstance(tensor, DeviceTensor) and tensor.layout == 'NCHW'
        assert tensor.shape == (1, 3) + in_hw and tensor.dtype == np.dtype(dtype)
        assert tensor.stream == pre.stream_handle and tensor.device_id == pre.gpu_id
        assert tensor.owner is pre and (lbs[0].src_h, lbs[0].src_w) == sizes[0]
        _poison(pre, tensor.ptr)
        again, _ = pre.run(sources[:1])                     # the same buffer, rewritten
        assert again.ptr == tensor.ptr
        _check(again.to_host()[0], images[0], in_hw, 'bgr8', dtype)
        batch, lbs = pre.run(sources)
        _poison(pre, batch.ptr, len(sources))
        batch, lbs = pre.run(sources)                       # cached batch plan, new output
        assert batch.shape == (len(sources), 3) + in_hw
        out = batch.to_host()
        for i, image in enumerate(images):
            assert (lbs[i].src_h, lbs[i].src_w) == sizes[i]
            _check(out[i], image, in_hw, encodings[i], dtype)
        one, _ = pre.run(sources[2:3])                      # the grown buffer is kept
        assert one.ptr == batch.ptr
        _check(one.to_host()[0], images[2], in_hw, 'yuv422', dtype)
        got = []
        worker = threading.Thread(target=lambda: got.append(pre.run(sources[3:])[0].to_host()))
        worker.start()                                      # another thread: GPU made current
        worker.join(60)
        _check(got[0][0], images[3], in_hw, 'mono8', dtype)
        with pytest.raises(InputError, match='image 0: expected a SourceImage'):
            pre.run([images[0]])
        with pytest.raises(InputError, match='at least one image'):
            pre.run([])
    assert pre.closed
    with pytest.raises(RuntimeError, match='closed'):
        pre.run(sources[:1])


def test_cuda_errors_carry_the_cuda_error_name():
    from cuda.bindings import driver

    LabPreprocessor((64, 64)).close()  # makes sure the context exists
    with pytest.raises(CudaError) as info:
        cuda_call(driver.cuMemAlloc(1 << 60), 'cuMemAlloc')
    assert info.value.name in ('CUDA_ERROR_OUT_OF_MEMORY', 'CUDA_ERROR_INVALID_VALUE')
    assert 'cuMemAlloc' in str(info.value)


def test_close_is_explicit_idempotent_and_final():
    pre = LabPreprocessor((64, 64), np.float32)
    out, _ = pre(_image(48, 80, 1))
    assert out.shape == (1, 3, 64, 64)
    pre.close()
    pre.close()
    assert pre.closed
    with pytest.raises(RuntimeError, match='closed'):
        pre.enqueue(_image(48, 80, 1))
    with LabPreprocessor((64, 64), np.float16) as ctx:
        ctx(_image(8, 8, 2))
    assert ctx.closed
