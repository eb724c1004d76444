"""CudaPreprocessor's orchestration on the CPU, over the CUDA-layer double (test/cuda_double.py).

No GPU: the runtime class runs unchanged over a validating host-memory layer and a kernel
double (see cuda_double). The references are the CPU letterbox of the ORIGINAL arrays, so a
wrong staging pitch, offset, descriptor or output buffer shows; the device tensor goes on to
ONNX Runtime (one logged host copy) and, bound in place, to the TensorRT double.
"""

import ctypes
import threading

import numpy as np
import pytest

from cuda_double import KernelDouble, PreprocessMemory
from tensorrt_yolox_py.backends.onnxruntime_backend import OnnxRuntimeBackend
from tensorrt_yolox_py.backends.tensorrt import TensorRTBackend
from tensorrt_yolox_py.cuda import kernels as K, memory as cuda_memory
from tensorrt_yolox_py.cuda import preprocess as cuda_preprocess
from tensorrt_yolox_py.errors import InputError
from tensorrt_yolox_py.image import ENCODINGS, SourceImage
from tensorrt_yolox_py.pipeline import Detector
from tensorrt_yolox_py.stages.preprocess import preprocess_cpu
from tensorrt_yolox_py.tensors import DeviceTensor
from trt_double.helpers import calls_named, config, in_order

pytest_plugins = ['trt_double.fixtures']


def _install(monkeypatch, memory):
    kernels = []

    def loaded(kernel_set, gpu_id=0):
        kernels.append(KernelDouble(kernel_set, memory))
        return kernels[-1]

    def copy_to_host(out, ptr, stream, gpu_id=0):
        memory._stream(stream)
        memory.drain(stream)
        ctypes.memmove(out.ctypes.data, ptr, len(memory.read(ptr, out.nbytes)))

    monkeypatch.setattr(cuda_preprocess, 'cuda_unavailable_reason', lambda gpu_id=0: None)
    monkeypatch.setattr(cuda_preprocess, 'CudaMemory', lambda gpu_id=0: memory)
    monkeypatch.setattr(K, 'LoadedKernels', loaded)
    monkeypatch.setattr(cuda_memory, 'copy_to_host', copy_to_host)
    return kernels


@pytest.fixture
def double(monkeypatch):
    memory = PreprocessMemory()
    return memory, _install(monkeypatch, memory)


def _image(h, w, seed, channels=3):
    return np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)


def _padded(image, extra, offset=0):
    """A view of ``image`` with rows ``extra`` bytes longer, ``offset`` bytes into a buffer."""
    h, w, c = image.shape
    step = c * w + extra
    buf = np.full(offset + h * step, 77, np.uint8)
    view = np.lib.stride_tricks.as_strided(buf[offset:], shape=(h, w, c),
                                           strides=(step, c, 1))
    view[...] = image
    return view


def _want(image, encoding, in_hw, dtype):
    return preprocess_cpu(SourceImage.from_array(np.ascontiguousarray(image), encoding), in_hw,
                          dtype)


@pytest.mark.parametrize('dtype', [np.float32, np.float16], ids=['f32', 'f16'])
def test_run_one_and_a_batch_write_the_reference_tensor(double, dtype):
    memory, kernels = double
    encodings = ['bgr8', 'rgb8', 'yuv422', 'mono8', 'bgra8']
    sizes = [(120, 160), (37, 53), (48, 64), (30, 20), (64, 32)]
    images = [_image(h, w, i, ENCODINGS[e].channels)
              for i, ((h, w), e) in enumerate(zip(sizes, encodings))]
    views = [_padded(images[0], 7, offset=1)] + images[1:]   # ROS step, an unaligned frame
    sources = [SourceImage.from_array(v, e) for v, e in zip(views, encodings)]
    in_hw = (48, 64)
    with cuda_preprocess.CudaPreprocessor(in_hw, dtype) as pre:
        one, (lb,) = pre.run(sources[:1])
        assert isinstance(one, DeviceTensor) and one.shape == (1, 3) + in_hw
        assert one.stream == pre.stream_handle and one.owner is pre and one.dtype == dtype
        want, want_lb = _want(images[0], 'bgr8', in_hw, dtype)
        assert lb == want_lb
        np.testing.assert_array_equal(one.to_host(), want)
        # the frame is staged into an aligned device buffer: the word-load default applies
        assert kernels[0].launches[-1] == (f'fused_c1_{K.dtype_suffix(dtype)}',
                                           pre.stream_handle)
        batch, lbs = pre.run(sources)
        assert batch.shape == (len(sources), 3) + in_hw
        out = batch.to_host()
        for i, (image, encoding) in enumerate(zip(images, encodings)):
            want, want_lb = _want(image, encoding, in_hw, dtype)
            assert lbs[i] == want_lb
            np.testing.assert_array_equal(out[i], want[0], err_msg=encoding)
        assert kernels[0].launches[-1][0] == f'fused_batch_{K.dtype_suffix(dtype)}'
        again, _ = pre.run(sources[3:4])          # the grown buffer is kept and reused
        assert again.ptr == batch.ptr
        np.testing.assert_array_equal(again.to_host(), _want(images[3], 'mono8', in_hw,
                                                             dtype)[0])
        narrow = _image(30, 1, 5)                  # W = 1: word loads do not fit, byte loads
        one_wide, _ = pre.run([SourceImage.from_array(narrow, 'rgb8')])
        assert kernels[0].launches[-1][0] == f'fused_b1_{K.dtype_suffix(dtype)}'
        np.testing.assert_array_equal(one_wide.to_host(), _want(narrow, 'rgb8', in_hw,
                                                                dtype)[0])


@pytest.mark.parametrize('count', [1, 3])
def test_run_writes_a_callers_nhwc_or_nchw_tensor(double, count):
    """``run(sources, out=...)`` writes a caller's device tensor (a backend's static input):
    NHWC through the NHWC batch kernel (also for one image), NCHW as usual."""
    memory, kernels = double
    in_hw = (48, 64)
    images = [_image(40 + 8 * i, 60, i) for i in range(count)]
    sources = [SourceImage.from_array(image, 'bgr8') for image in images]
    want = np.concatenate([_want(image, 'bgr8', in_hw, np.float16)[0] for image in images])
    with cuda_preprocess.CudaPreprocessor(in_hw, np.float16) as pre:
        mem = pre._mem
        nbytes = count * 3 * in_hw[0] * in_hw[1] * 2
        for layout, shape in (('NHWC', (count,) + in_hw + (3,)), ('NCHW', (count, 3) + in_hw)):
            ptr = mem.malloc(nbytes)
            target = DeviceTensor(ptr, shape, np.float16, layout)
            tensor, lbs = pre.run(sources, out=target)
            assert tensor.ptr == ptr and tensor.layout == layout and tensor.shape == shape
            assert tensor.stream == pre.stream_handle and len(lbs) == count
            got = tensor.to_host()
            if layout == 'NHWC':
                assert kernels[0].launches[-1][0] == 'fused_batch_nhwc_f16'
                got = got.transpose(0, 3, 1, 2)
            np.testing.assert_array_equal(got, want)
            mem.free(ptr)
        with pytest.raises(InputError, match='out must be'):
            pre.run(sources, out=DeviceTensor(1024, (count + 1, 3) + in_hw, np.float16))
        with pytest.raises(InputError, match='out must be'):
            pre.run(sources, out=DeviceTensor(1024, (count, 3) + in_hw, np.float32))


def test_new_pixels_same_geometry_reuse_the_batch_plan(double):
    memory, _ = double
    in_hw = (32, 32)
    with cuda_preprocess.CudaPreprocessor(in_hw) as pre:
        for seed in range(3):
            images = [_image(40, 30, seed), _image(20, 50, seed + 10)]
            tensor, _ = pre.run([SourceImage.from_array(i) for i in images])
            out = tensor.to_host()
            for k, image in enumerate(images):
                np.testing.assert_array_equal(out[k], _want(image, 'bgr8', in_hw,
                                                            np.float32)[0][0])
        table_uploads = [c for c in memory.calls if c == ('htod', pre.stream_handle)]
        staging = [c for c in memory.calls if c == ('htod', pre._h2d_stream)]
        assert len(staging) == 3               # one staging copy per batch (the copy stream)
        assert len(table_uploads) == 2         # the table once per staging slot


def test_resources_are_freed_and_other_threads_activate_the_gpu(double):
    memory, _ = double
    pre = cuda_preprocess.CudaPreprocessor((32, 32))
    source = SourceImage.from_array(_image(20, 20, 1))
    pre.run([source])
    before = memory.activations
    done = []
    worker = threading.Thread(target=lambda: done.append(pre.run([source, source])[0]))
    worker.start()
    worker.join(30)
    assert done and memory.activations > before
    with pytest.raises(InputError, match='image 0: expected a SourceImage'):
        pre.run([_image(20, 20, 1)])
    pre.close()
    pre.close()
    assert memory.own_live() == 0 and not memory.device
    with pytest.raises(RuntimeError, match='closed'):
        pre.run([source])


def test_detector_device_tensor_to_onnxruntime(double, planted_model, caplog):
    image = np.random.default_rng(0).integers(40, 200, (240, 320, 3), dtype=np.uint8)
    image[64:128, 96:160] = (0, 0, 255)     # a saturated red square on cells: CAR
    source = SourceImage.from_array(image)
    backend = OnnxRuntimeBackend(planted_model)
    pre = cuda_preprocess.CudaPreprocessor(backend.input_hw, backend.input_dtype)
    with Detector(backend, pre, _post(backend), _labels()) as det, \
            Detector(OnnxRuntimeBackend(planted_model),
                     _cpu(backend), _post(backend), _labels()) as ref:
        with caplog.at_level('INFO', logger='tensorrt_yolox_py.backends.base'):
            got = det.detect(source).detections
            det.detect(source)
        want = ref.detect(source).detections
    assert len(want) >= 1 and len(got) == len(want)
    np.testing.assert_array_equal(got.class_ids, want.class_ids)
    np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-4)
    assert caplog.text.count('copied to the host (to_host)') == 1


def test_device_tensor_bound_in_place_in_the_tensorrt_double(monkeypatch, trt, host_memory,
                                                             planted_model, tmp_path):
    memory = PreprocessMemory(shared=host_memory)     # one device address space with TRT
    _install(monkeypatch, memory)
    cfg = config(planted_model, tmp_path, precision='fp16', score_threshold=0.5)
    image = np.full((240, 320, 3), 40, np.uint8)
    image[64:128, 96:160] = (0, 0, 255)
    source = SourceImage.from_array(image)
    backend = TensorRTBackend.from_config(cfg, memory=host_memory, trt=trt)
    pre = cuda_preprocess.CudaPreprocessor(backend.input_hw, backend.input_dtype)
    with Detector(backend, pre, _post(backend), _labels()) as det, \
            Detector(OnnxRuntimeBackend(planted_model), _cpu(backend), _post(backend),
                     _labels()) as ref:
        trt.CALLS.clear()
        got = det.detect(source).detections
        want = ref.detect(source).detections
        ptr = pre._out_ptr
    assert len(want) >= 1 and len(got) == len(want)
    np.testing.assert_array_equal(got.class_ids, want.class_ids)
    np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-3)
    stream = pre.stream_handle
    assert in_order(trt.CALLS, [('htod', stream),          # the frame, by the preprocessor
                                ('IExecutionContext.set_tensor_address', 'images', ptr),
                                ('IExecutionContext.execute_async_v3', stream),
                                ('dtoh', stream), ('sync', stream)])
    assert calls_named(trt.CALLS, 'htod') == [('htod', stream)]   # no copy of the tensor


def _post(backend):
    from tensorrt_yolox_py.stages.postprocess import Postprocessor

    return Postprocessor(backend.input_hw, 0.5, 0.7, 100, 'raw')


def _cpu(backend):
    from tensorrt_yolox_py.stages.preprocess import CpuPreprocessor

    return CpuPreprocessor(backend.input_hw, backend.input_dtype)


def _labels():
    return [f'c{i}' for i in range(8)]


# ---- host frames overlap: staging slots, ordering on a lazy GPU ----
@pytest.fixture
def lazy(monkeypatch):
    """The double as a lazy GPU: work runs only when a host wait needs it (cuda_double)."""
    memory = PreprocessMemory(deferred=True)
    return memory, _install(monkeypatch, memory)


def _frames(count, seed, h=36, w=52):
    return [SourceImage.from_array(_image(h, w, seed + k)) for k in range(count)]


def _reference(frames, in_hw):
    return np.concatenate([_want(f.pixels, 'bgr8', in_hw, np.float32)[0] for f in frames])


def _overlapped(pre, memory, batches):
    """Stage A, B; run A; stage C (A's slot) while A is queued; then B, C. Outputs in order."""
    a, b, c = batches
    for _ in range(2):                 # warm: both slots grown, their tables uploaded
        pre.run(a)[0].to_host()
    staged_a, staged_b = pre.stage(a), pre.stage(b)
    tensor, _ = pre.run(a, staged=staged_a)
    staged_c = pre.stage(c)            # slot 0 again: A's H2D and kernel must come first
    memory.drain(pre._h2d_stream)      # the copy engine runs ahead of the kernel stream
    outs = [tensor.to_host()]
    outs.append(pre.run(b, staged=staged_b)[0].to_host())
    outs.append(pre.run(c, staged=staged_c)[0].to_host())
    return outs


def test_staged_batches_on_a_lazy_gpu_match_the_reference_and_the_one_slot_path(lazy):
    memory, _ = lazy
    in_hw = (32, 40)
    batches = [_frames(3, 10 * k) for k in range(3)]
    with cuda_preprocess.CudaPreprocessor(in_hw) as pre:
        overlapped = _overlapped(pre, memory, batches)
    with cuda_preprocess.CudaPreprocessor(in_hw, staging_slots=1) as one:
        sequential = [one.run(batch)[0].to_host() for batch in batches]
    for got, seq, batch in zip(overlapped, sequential, batches):
        np.testing.assert_array_equal(got, _reference(batch, in_hw))
        assert got.tobytes() == seq.tobytes()


@pytest.mark.parametrize('dropped', ['event_synchronize', 'stream_wait_event'])
def test_the_lazy_gpu_sees_a_missing_wait(lazy, monkeypatch, dropped):
    """Negative control: without either wait the overlapped run gives wrong pixels."""
    memory, _ = lazy
    monkeypatch.setattr(memory, dropped, lambda *args: None)
    batches = [_frames(2, 10 * k) for k in range(3)]
    with cuda_preprocess.CudaPreprocessor((32, 40)) as pre:
        outs = _overlapped(pre, memory, batches)
    assert any(not np.array_equal(o, _reference(b, (32, 40))) for o, b in zip(outs, batches))


def test_a_slot_is_not_staged_again_before_its_batch_is_launched(double, monkeypatch):
    a, b, c = (_frames(2, 10 * k) for k in range(3))
    with cuda_preprocess.CudaPreprocessor((32, 32)) as pre:
        staged_a, staged_b = pre.stage(a), pre.stage(b)
        got = []
        waiter = threading.Thread(target=lambda: got.append(pre.stage(c)))
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive() and not got      # slot 0 still holds A, not launched
        pre.run(a, staged=staged_a)
        waiter.join(30)
        assert got and got[0].index == staged_a.index == 0
        np.testing.assert_array_equal(pre.run(c, staged=got[0])[0].to_host(),
                                      _reference(c, (32, 32)))
        with pytest.raises(InputError, match='not pending'):
            pre.run(a, staged=staged_a)            # launched once already
        with pytest.raises(InputError, match='sources that were staged'):
            pre.run(c, staged=staged_b)            # other sources: refused, slot given back
        monkeypatch.setattr(cuda_preprocess, 'STAGE_WAIT_S', 0.05)
        pre.stage(a)
        pre.stage(b)
        with pytest.raises(RuntimeError, match='staging slot busy'):
            pre.stage(c)                           # one thread, more ahead than slots
    assert memory_live(double) == 0


def memory_live(double):
    return double[0].own_live()


def test_steady_state_batch_one_copy_no_sync_no_allocation(lazy):
    """Per batch: one staging H2D, one launch, two event waits, one host event wait."""
    memory, kernels = lazy
    batch = _frames(4, 0)
    with cuda_preprocess.CudaPreprocessor((32, 32)) as pre:
        for _ in range(4):                         # every slot planned, table uploaded
            pre.run(batch)
        start, launched = len(memory.calls), len(kernels[0].launches)
        for _ in range(6):
            pre.run(batch)
        calls = memory.calls[start:]
        assert calls.count(('htod', pre._h2d_stream)) == 6
        assert calls.count(('htod', pre.stream_handle)) == 0      # the tables: unchanged
        assert len(kernels[0].launches) - launched == 6
        assert calls.count(('wait', pre.stream_handle)) == 6      # kernel after its copy
        assert calls.count(('wait', pre._h2d_stream)) == 6        # copy after last reader
        assert calls.count(('event_sync',)) == 6                  # pinned slot reusable
        assert not [c for c in calls if c[0] in ('sync', 'malloc', 'pinned', 'free',
                                                 'free_pinned')]
        one = SourceImage.from_array(_image(36, 52, 3))
        pre.run([one])
        start = len(memory.calls)
        for _ in range(3):                         # one frame, NCHW: direct H2D, no packing
            pre.run([one])
        calls = memory.calls[start:]
        assert calls.count(('htod', pre.stream_handle)) == 3 and len(calls) == 3 * 4
        assert not [c for c in calls if c[0] in ('sync', 'malloc', 'pinned')]


def test_scheduler_stages_the_next_batch_while_one_runs(double, planted_model):
    from tensorrt_yolox_py.batching import BatchScheduler

    backend = OnnxRuntimeBackend(planted_model)
    pre = cuda_preprocess.CudaPreprocessor(backend.input_hw, backend.input_dtype)
    staged, threads = [], set()
    stage = pre.stage
    pre.stage = lambda sources: staged.append(len(sources)) or stage(sources)
    frames = [SourceImage.from_array(_image(60 + 8 * k, 80, k)) for k in range(6)]
    with Detector(backend, pre, _post(backend), _labels()) as det, \
            Detector(OnnxRuntimeBackend(planted_model), _cpu(backend), _post(backend),
                     _labels()) as ref:
        assert det.can_stage and not ref.can_stage
        results = {}
        done = threading.Event()

        def on_result(result):
            threads.add(threading.current_thread().name)
            results[result.header] = result
            if len(results) == len(frames):
                done.set()

        with BatchScheduler(det, on_result, max_wait_s=0.0) as scheduler:
            for k, frame in enumerate(frames):
                scheduler.submit(f'cam{k}', frame, header=k)
            assert done.wait(60)
        for k, frame in enumerate(frames):
            assert results[k].error is None
            want = ref.detect(frame).detections
            got = results[k].result.detections
            np.testing.assert_array_equal(got.class_ids, want.class_ids)
            np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-4)
    assert sum(staged) == len(frames) and threads == {'yolox-batch-run'}


@pytest.mark.parametrize('overlap', [False, True], ids=['sequential', 'pipelined'])
def test_the_benchmarks_pipelined_rows_run_on_the_lazy_gpu(lazy, planted_model, overlap):
    from benchmarks.bench_gpu_captured import run_pipelined

    backend = OnnxRuntimeBackend(planted_model)
    pre = cuda_preprocess.CudaPreprocessor(backend.input_hw, backend.input_dtype)
    staged = []
    stage = pre.stage
    pre.stage = lambda sources: staged.append(1) or stage(sources)
    with Detector(backend, pre, _post(backend), _labels()) as det:
        row = run_pipelined(det, _frames(1, 5, 60, 80), 0.3, overlap, warmup=1)
    assert row['frames'] >= 1 and row['fps'] > 0 and row['host_cpu_ms_per_frame'] > 0
    assert row['p99_ms'] >= row['p50_ms'] > 0
    assert (len(staged) >= row['frames']) if overlap else not staged
