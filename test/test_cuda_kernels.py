"""CPU-side tests of the CUDA preprocessing code: no GPU needed (NVRTC tests need NVRTC only).

Launch geometry, kernel-argument packing, the batch-descriptor layout (checked against the C
struct by compiling static_asserts with NVRTC), the staging-copy plan for ROS-style strided
rows, device-image parsing, the error helper, and ``cuda_available()`` without a GPU.
"""

import re
import sys

import numpy as np
import pytest

from benchmarks.cuda_lab import as_device_image, DeviceImage, LabPreprocessor
from benchmarks.cuda_variants.variants import BENCH_KERNELS
from tensorrt_yolox_py.cuda import check, kernels as K
from tensorrt_yolox_py.cuda.preprocess import (
    _flat_bytes, cuda_available, cuda_unavailable_reason, CudaPreprocessor,
    CudaUnavailableError, host_copy_plan)
from tensorrt_yolox_py.errors import InputError
from tensorrt_yolox_py.image import ENCODINGS
from tensorrt_yolox_py.stages.preprocess import compute_letterbox


def _nvrtc_usable() -> bool:
    try:
        from cuda.bindings import nvrtc
        return int(nvrtc.nvrtcVersion()[0]) == 0
    except Exception:  # noqa: BLE001 - library missing or broken: skip those tests
        return False


needs_nvrtc = pytest.mark.skipif(not _nvrtc_usable(), reason='NVRTC is not installed')


# ---- launch geometry ----
@pytest.mark.parametrize('width, height, ppt', [
    (960, 960, 1), (960, 608, 1), (960, 960, 4), (960, 608, 8), (1, 1, 1), (129, 3, 1),
    (17, 33, 1), (640, 1, 8)])
def test_launch_geometry_covers_every_pixel_once(width, height, ppt):
    grid, block = K.launch_geometry(width, height, ppt)
    assert block == (K.BLOCK[0], K.BLOCK[1], 1) and block[0] * block[1] == 256
    threads_x, threads_y = grid[0] * block[0], grid[1] * block[1]
    # enough threads to cover the image, and not a whole spare block row/column
    assert threads_x * ppt >= width and (threads_x - block[0]) * ppt < width
    assert threads_y >= height and threads_y - block[1] < height
    assert grid[2] == 1


def test_launch_geometry_depth_rows_and_errors():
    assert K.launch_geometry(960, 960, 1, depth=4)[0][2] == 4
    # 4 rows per thread: 608 rows -> 152 thread rows -> 76 blocks of 2 thread rows
    assert K.launch_geometry(960, 608, rows_per_thread=4)[0] == (8, 76, 1)
    assert K.launch_geometry(960, 607, rows_per_thread=4)[0] == (8, 76, 1)
    assert K.launch_geometry(960, 609, rows_per_thread=4)[0] == (8, 77, 1)
    with pytest.raises(ValueError, match='multiple'):
        K.launch_geometry(962, 960, 4)
    with pytest.raises(ValueError):
        K.launch_geometry(0, 960)
    assert K.linear_geometry(3 * 960 * 960) == ((10800, 1, 1), (256, 1, 1))
    assert K.linear_geometry(1) == ((1, 1, 1), (256, 1, 1))
    with pytest.raises(ValueError):
        K.linear_geometry(0)


# ---- argument packing ----
def test_fused_args_types_and_order():
    lb = compute_letterbox(1280, 1920, 960, 960)
    args = K.fused_args(0x7f0000001000, 5760, 0x7f0000200000, lb, swap_rb=True)
    assert len(args) == 12
    assert args[0] == 0x7f0000001000 and type(args[0]) is int      # const u8* src
    assert args[4] == 0x7f0000200000 and type(args[4]) is int      # OUT_T* dst
    ints = [args[i] for i in (1, 2, 3, 5, 6, 7, 8, 11)]
    assert all(type(v) is np.int32 for v in ints)
    assert [int(v) for v in ints] == [1920, 1280, 5760, 960, 960, 960, 640, 1]
    assert type(args[9]) is np.float32 and type(args[10]) is np.float32
    assert float(args[9]) == pytest.approx(1920 / 960) and float(args[10]) == pytest.approx(2.0)


def test_axis_factors_are_per_axis_not_one_over_scale():
    # 17x33 -> 32x32 input: scale 32/33, resized 16x32; the y factor is 17/16, not 33/32.
    lb = compute_letterbox(17, 33, 32, 32)
    sx, sy = K.axis_factors(lb)
    assert (lb.resized_h, lb.resized_w) == (16, 32)
    assert float(sx) == pytest.approx(33 / 32) and float(sy) == pytest.approx(17 / 16)
    assert float(sy) != pytest.approx(1 / lb.scale)


def test_fused_args_rejects_short_pitch():
    lb = compute_letterbox(10, 10, 32, 32)
    with pytest.raises(ValueError, match='pitch'):
        K.fused_args(256, 29, 512, lb, False)


def test_batch_descriptor_packing():
    table = np.zeros(2, K.BATCH_DESC_DTYPE)
    assert K.BATCH_DESC_DTYPE.itemsize == 56
    lb = compute_letterbox(720, 1280, 608, 960)
    K.pack_batch_descriptor(table[1], 0x1000, 3840, 0x9000, lb, ENCODINGS['rgb8'])
    rec = table[1]
    assert (int(rec['src']), int(rec['dst']), int(rec['pitch'])) == (0x1000, 0x9000, 3840)
    assert (int(rec['src_w']), int(rec['src_h'])) == (1280, 720)
    assert (int(rec['rw']), int(rec['rh'])) == (lb.resized_w, lb.resized_h)
    assert int(rec['swap_rb']) == 1 and int(rec['use_words']) == 1 and int(rec['fmt']) == 1
    K.pack_batch_descriptor(table[0], 0x1001, 3, 0x9000, compute_letterbox(1, 1, 8, 8),
                            ENCODINGS['bgr8'])
    assert int(table[0]['use_words']) == 0  # unaligned pointer / 1-pixel-wide image: byte loads
    K.pack_batch_descriptor(table[0], 0x1000, 2560, 0x9000, lb, ENCODINGS['yuv422'])
    assert int(table[0]['use_words']) == 0 and int(table[0]['fmt']) == 5  # taps of its format
    with pytest.raises(ValueError, match='pitch'):
        K.pack_batch_descriptor(table[0], 0x1000, 5119, 0x9000, lb, ENCODINGS['bgra8'])


# ---- variant choice ----
def test_choose_variant_falls_back_when_requirements_fail():
    f32, f16 = np.dtype(np.float32), np.dtype(np.float16)

    def pick(dtype, *args, **kw):
        return K.choose_variant(dtype, *args, kernels=BENCH_KERNELS, **kw).name

    assert pick(f32, 1920, 0x1000, 960, 0x2000, 'w4') == 'w4'
    assert pick(f32, 1920, 0x1000, 960, 0x2004, 'w4') == 'w1'   # dst unaligned
    assert pick(f32, 1920, 0x1000, 962, 0x2000, 'b4') == 'w1'   # width % 4
    assert pick(f32, 1920, 0x1001, 960, 0x2000, 'w1') == 'b1'   # src unaligned
    assert pick(f32, 1, 0x1000, 960, 0x2000, 'w1') == 'b1'      # 1 px wide
    assert pick(f16, 1920, 0x1000, 960, 0x2000, 'w8') == 'w8'
    assert pick(f16, 1920, 0x1000, 964, 0x2000, 'w8') == 'w1'
    assert pick(f16, 1920, 0x1002, 964, 0x2000, 'w1r4') == 'b1'
    assert pick(f32, 1920, 0x1000, 962, 0x2002, 'w1r2') == 'w1r2'
    assert K.choose_variant(f32, 1920, 0x1000, 960, 0x2000).name == K.DEFAULT_VARIANT['float32']
    assert pick(f32, 1920, 0x1000, 960, 0x2000, 's1', sx=2.0) == 's1'
    assert pick(f16, 3840, 0x1000, 960, 0x2000, 's1', sx=4.0) == 's1'
    assert pick(f16, 7680, 0x1000, 960, 0x2000, 's1', sx=8.0) == 'w1'
    assert pick(f16, 7680, 0x1002, 960, 0x2000, 's1', sx=2.0) == 'b1'
    assert K.smem_span_fits(5.3) and not K.smem_span_fits(5.4)
    with pytest.raises(ValueError, match='unknown'):
        pick(f16, 1920, 0x1000, 960, 0x2000, 'w4')   # w4 is float32 only
    with pytest.raises(ValueError, match='unknown'):
        K.choose_variant(f32, 1920, 0x1000, 960, 0x2000, 'w4')   # benchmark-only variant
    for kernels in (K.RUNTIME_KERNELS, BENCH_KERNELS):
        for dtype in (f32, f16):
            for variant in kernels.variants[dtype.name]:
                assert variant.kernel_name(dtype) in kernels.kernel_names
    with pytest.raises(ValueError):
        K.dtype_suffix(np.uint8)


def test_runtime_source_has_only_runtime_kernels_and_one_bilinear_blend():
    runtime = K.RUNTIME_KERNELS.source()
    assert 'unfused_' not in runtime and 'fused_s1' not in runtime and 'busy_wait' not in runtime
    bench = BENCH_KERNELS.source()
    assert bench.count('struct BatchDesc') == 1            # the header is included once
    for source in (runtime, bench):
        assert source.count('__device__ __forceinline__ Px blend(') == 1
        assert 'lerp2(bytef' not in source                 # no hand-written blend left


# ---- NVRTC (no GPU needed) ----
@needs_nvrtc
def test_kernels_compile_for_hopper_and_orin_and_are_cached():
    for arch in ('sm_90', 'sm_87'):
        module = K.compile_kernels(arch)
        for name in K.KERNEL_NAMES:
            assert name.encode() in module.code, f'{name} missing from the {arch} cubin'
        assert K.compile_kernels(arch) is module
        bench = BENCH_KERNELS.compile(arch)
        for name in BENCH_KERNELS.kernel_names:
            assert name.encode() in bench.code, f'{name} missing from the benchmark cubin'
    assert K.cached_modules() >= 2


def test_batch_descriptor_matches_the_c_struct_layout():
    """Lay out ``struct BatchDesc`` from the CUDA source with C alignment rules."""
    body = re.search(r'struct BatchDesc \{(.*?)\};', K.RUNTIME_KERNELS.source(), re.S).group(1)
    sizes = {'const u8*': 8, 'void*': 8, 'int': 4, 'float': 4}
    offset, layout = 0, {}
    for decl in filter(None, (d.strip() for d in body.split(';'))):
        ctype = next(t for t in sizes if decl.startswith(t))
        for name in decl[len(ctype):].split(','):
            size = sizes[ctype]
            offset = -(-offset // size) * size
            layout[name.strip()] = offset
            offset += size
    size = -(-offset // 8) * 8
    assert layout == {name: off for name, (_, off) in K.BATCH_DESC_DTYPE.fields.items()}
    assert size == K.BATCH_DESC_DTYPE.itemsize


# ---- staging copies (ROS step) ----
def test_host_copy_plan_keeps_ros_row_padding():
    rng = np.random.default_rng(3)
    h, w, step = 5, 7, 24  # 21 bytes of pixels + 3 bytes padding per row
    buf = rng.integers(0, 256, h * step, dtype=np.uint8)
    image = np.lib.stride_tricks.as_strided(buf, shape=(h, w, 3), strides=(step, 3, 1))
    pitch, nbytes = host_copy_plan(image)
    assert (pitch, nbytes) == (step, (h - 1) * step + 3 * w)
    flat = _flat_bytes(image, pitch, nbytes)
    np.testing.assert_array_equal(flat, buf[:nbytes])  # one block copy, padding kept


def test_host_copy_plan_compacts_other_layouts():
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    assert host_copy_plan(image) == (27, 6 * 27)
    for view in (image[:, :, ::-1], image[::-1], image[::2], image[:, ::2]):
        pitch, nbytes = host_copy_plan(view)
        assert pitch == 3 * view.shape[1] and nbytes == view.size
        flat = _flat_bytes(view, pitch, nbytes)
        np.testing.assert_array_equal(flat.reshape(view.shape), view)
    one_row = image[2:3]
    pitch, nbytes = host_copy_plan(one_row)
    np.testing.assert_array_equal(_flat_bytes(one_row, pitch, nbytes), one_row.reshape(-1))


# ---- device images ----
class _FakeDeviceArray:
    def __init__(self, shape, typestr='|u1', strides=None, ptr=0x7000):
        self.__cuda_array_interface__ = {'shape': shape, 'typestr': typestr, 'strides': strides,
                                         'data': (ptr, False), 'version': 3}


def test_as_device_image_parses_the_cuda_array_interface():
    assert as_device_image(_FakeDeviceArray((720, 1280, 3))) == DeviceImage(0x7000, 720, 1280,
                                                                            3840)
    padded = as_device_image(_FakeDeviceArray((2, 5, 3), strides=(16, 3, 1)))
    assert padded.row_pitch == 16
    assert DeviceImage(0x7000, 2, 5).row_pitch == 15
    for bad in (_FakeDeviceArray((720, 1280)), _FakeDeviceArray((720, 1280, 4)),
                _FakeDeviceArray((720, 1280, 3), typestr='<f4'),
                _FakeDeviceArray((2, 5, 3), strides=(30, 6, 2)),
                _FakeDeviceArray((0, 5, 3)), _FakeDeviceArray((2, 5, 3), ptr=0),
                DeviceImage(0x7000, 2, 5, pitch=14), np.zeros((2, 5, 3), np.uint8)):
        with pytest.raises(InputError):
            as_device_image(bad)


# ---- error helper ----
def test_cuda_call_returns_values_and_raises_with_the_error_name():
    pytest.importorskip('cuda.bindings')
    from cuda.bindings import driver, runtime

    ok = driver.CUresult.CUDA_SUCCESS
    assert check.cuda_call((ok,)) is None
    assert check.cuda_call((ok, 42)) == 42
    assert check.cuda_call((ok, 1, 2)) == (1, 2)
    with pytest.raises(check.CudaError) as info:
        check.cuda_call((driver.CUresult.CUDA_ERROR_OUT_OF_MEMORY, None), 'cuMemAlloc')
    assert info.value.name == 'CUDA_ERROR_OUT_OF_MEMORY' and info.value.code == 2
    assert 'cuMemAlloc' in str(info.value) and 'CUDA_ERROR_OUT_OF_MEMORY' in str(info.value)
    with pytest.raises(check.CudaError) as info:
        check.cuda_call(runtime.cudaError_t.cudaErrorMemoryAllocation)
    assert info.value.name == 'cudaErrorMemoryAllocation'


# ---- availability ----
def test_cuda_available_never_raises_and_agrees_with_the_reason():
    reason = cuda_unavailable_reason()
    assert cuda_available() is (reason is None)
    assert cuda_available(gpu_id=63) is False


def test_cuda_unavailable_when_cuda_python_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, 'cuda.bindings.driver', None)  # import fails
    assert cuda_available() is False
    assert 'not importable' in cuda_unavailable_reason()
    with pytest.raises(CudaUnavailableError):
        CudaPreprocessor((64, 64))


def test_constructor_rejects_bad_arguments_before_touching_cuda():
    with pytest.raises(ValueError):
        CudaPreprocessor((64, 64), dtype=np.uint8)
    with pytest.raises(InputError):
        CudaPreprocessor((0, 64))
    with pytest.raises(ValueError, match='unknown fused variant'):
        LabPreprocessor((64, 64), dtype=np.float16, variant='w4')
    with pytest.raises(ValueError):
        LabPreprocessor((64, 64), use_graph=True, overlap_h2d=True)
    with pytest.raises(ValueError, match='host_copy'):
        LabPreprocessor((64, 64), host_copy='dma')


def test_the_runtime_class_carries_no_lab_options():
    """Graphs, overlap, staging modes, variants and download live in benchmarks/cuda_lab.py.

    The runtime's own option: ``staging_slots`` (host frames overlap, ``stage``).
    """
    import inspect

    params = set(inspect.signature(CudaPreprocessor.__init__).parameters)
    assert params == {'self', 'input_hw', 'dtype', 'gpu_id', 'kernels', 'staging_slots'}
    for name in ('download', 'alloc_device', 'enqueue', 'enqueue_batch', 'launch_fused',
                 '_replay', 'device_output', 'infer_device'):
        assert not hasattr(CudaPreprocessor, name), name
    assert not hasattr(K, 'FUSED_VARIANTS')
