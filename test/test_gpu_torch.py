"""GPU: the torch backend on CUDA, the device-buffer handoff, batching, and the bag equality.

Skipped cleanly without a CUDA GPU that torch can use, or without CUDA preprocessing
(cuda-python + NVRTC). References are independent: ONNX Runtime on the CPU for the model
output, the CPU path (OpenCV preprocessing + ONNX Runtime) for detections. The issue's check:
on the bundled bag, the GPU path (fused CUDA kernel -> device buffer -> torch CUDA fp32)
gives the CPU path's detections: same count, matched boxes IoU >= 0.99, scores within 1e-2.
Where rosbags cannot be installed (the GPU machine), the bag's frames come from
``bag_frames.npz`` (``benchmarks/bag_frames.py``, written on a development machine).
"""

import time

import numpy as np
import pytest

from tensorrt_yolox_py.cuda.preprocess import cuda_unavailable_reason

torch = pytest.importorskip('torch')

_REASON = cuda_unavailable_reason() or ('' if torch.cuda.is_available()
                                        else 'torch sees no CUDA GPU')
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(bool(_REASON), reason=_REASON or 'ok')]

from tensorrt_yolox_py.backends.onnxruntime_backend import OnnxRuntimeBackend  # noqa: E402
from tensorrt_yolox_py.batching import BatchScheduler  # noqa: E402
from tensorrt_yolox_py.errors import InputError  # noqa: E402
from tensorrt_yolox_py.image import SourceImage  # noqa: E402
from tensorrt_yolox_py.params import DEFAULT_MODEL_PATH, make_config  # noqa: E402
from tensorrt_yolox_py.pipeline import Detector  # noqa: E402
from tensorrt_yolox_py.stages.postprocess import pairwise_iou  # noqa: E402
from tensorrt_yolox_py.tensors import DeviceTensor  # noqa: E402

BAG = DEFAULT_MODEL_PATH.parents[1] / 'data' / 'sample' / 'demo_bag'


def bag_frames():
    """The bundled bag's frames as SourceImages: through rosbags, or ./bag_frames.npz."""
    return [SourceImage.from_array(image, encoding) for image, encoding in _bag_arrays()]


def _bag_arrays():
    """The bundled bag's [(image, encoding)]: through rosbags, or ./bag_frames.npz.

    The GPU machine has no rosbags (it needs binary compression wheels): there the frames come
    from ``bag_frames.npz`` in the repository root, written on a development machine by
    ``.venv/bin/python benchmarks/bag_frames.py``.
    """
    try:
        from tensorrt_yolox_py.data.rosbag_io import read_images

        return [(f.image, f.encoding) for f in read_images(BAG)]
    except ImportError:
        from benchmarks.bag_frames import DEFAULT_OUT, load

        if not DEFAULT_OUT.is_file():
            pytest.skip('rosbags is not importable and bag_frames.npz is missing: run '
                        '.venv/bin/python benchmarks/bag_frames.py where rosbags is installed')
        return load(DEFAULT_OUT)


def _torch_backend(**kwargs):
    from tensorrt_yolox_py.backends.torch_backend import TorchBackend

    return TorchBackend(DEFAULT_MODEL_PATH, device='cuda:0', **kwargs)


def _images(count, seed=0, hw=(1280, 1920)):
    rng = np.random.default_rng(seed)
    return [SourceImage.from_array(rng.integers(0, 256, hw + (3,), dtype=np.uint8))
            for _ in range(count)]


@pytest.fixture(scope='module')
def ort():
    backend = OnnxRuntimeBackend(DEFAULT_MODEL_PATH, max_batch=4,
                                 providers=['CPUExecutionProvider'])
    yield backend
    backend.close()


def test_cuda_fp32_matches_onnxruntime(ort):
    with _torch_backend(precision='fp32', max_batch=4) as backend:
        assert backend.capabilities.device_memory and backend.input_dtype == np.float32
        assert backend.device_id == 0
        x = np.random.default_rng(1).uniform(0, 255, (3,) + ort.input_shape[1:])
        x = x.astype(np.float32)
        got, want = backend.infer(x), ort.infer(x)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-3)


def test_device_tensor_is_wrapped_without_a_copy_on_its_stream():
    from tensorrt_yolox_py.cuda.preprocess import CudaPreprocessor

    with _torch_backend(precision='fp32') as backend, \
            CudaPreprocessor(backend.input_hw, dtype=backend.input_dtype) as pre:
        tensor, _ = pre.run(_images(1, seed=2))
        assert isinstance(tensor, DeviceTensor) and tensor.stream == pre.stream_handle
        view = torch.as_tensor(tensor, device='cuda:0')         # its __cuda_array_interface__
        assert view.data_ptr() == tensor.ptr                     # the same memory, no copy
        on_device = backend.infer(tensor)
        host = tensor.to_host()                                  # same kernel output, D2H
        np.testing.assert_allclose(on_device, backend.infer(host), rtol=0, atol=1e-4)
        # a second frame written into the same buffer changes the answer (read in place)
        second, _ = pre.run(_images(1, seed=3))
        assert second.ptr == tensor.ptr
        assert not np.allclose(backend.infer(second), on_device)


def test_batched_device_input_equals_single_runs():
    from tensorrt_yolox_py.cuda.preprocess import CudaPreprocessor

    with _torch_backend(precision='fp32', max_batch=4) as backend, \
            CudaPreprocessor(backend.input_hw, dtype=backend.input_dtype) as pre:
        images = _images(3, seed=4)
        tensor, _ = pre.run(images)
        batched = backend.infer(tensor)
        too_big = DeviceTensor(tensor.ptr, (5,) + tensor.shape[1:], tensor.dtype,
                               stream=tensor.stream)
        with pytest.raises(InputError, match=r'batch 1\.\.4'):
            backend.infer(too_big)
        for k, image in enumerate(images):
            single = backend.infer(pre.run([image])[0])
            np.testing.assert_allclose(batched[k:k + 1], single, rtol=0, atol=1e-3)


def test_cuda_graph_replays_equal_eager_runs():
    """FP32 graph replays equal eager runs of the same converted network."""
    from tensorrt_yolox_py.cuda.preprocess import CudaPreprocessor

    with _torch_backend(precision='fp32', cuda_graph=False) as eager, \
            _torch_backend(precision='fp32', cuda_graph=True) as graphed, \
            CudaPreprocessor(eager.input_hw) as pre:
        for seed in range(3):          # capture on the first frame, replay on the next ones
            tensor, _ = pre.run(_images(1, seed=10 + seed))
            want = eager.infer(tensor)
            got = graphed.infer(tensor)
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
        assert graphed.captured(1) and not eager.captured(1)


def _splus_small(tmp_path_factory):
    from tensorrt_yolox_py.devkit.export import export_variant

    try:
        import onnxsim  # noqa: F401
        simplify = True
    except ImportError:
        simplify = False
    path = tmp_path_factory.mktemp('splus') / 'splus.onnx'
    export_variant('yolox-s+-opt', str(path), (320, 320), num_classes=8, simplify=simplify)
    return path


@pytest.mark.parametrize('precision', ['fp32', 'fp16'])
@pytest.mark.parametrize('which', ['demo', 'splus'])
def test_capture_succeeds_for_the_package_models(which, precision, tmp_path_factory):
    """The package's models (the bundled demo, the YOLOX-S+-Opt family) must be captured:
    static conversion, one CUDA graph per batch size, no fallback; this FAILS on a fallback."""
    from tensorrt_yolox_py.backends.torch_backend import TorchBackend

    path = DEFAULT_MODEL_PATH if which == 'demo' else _splus_small(tmp_path_factory)
    with TorchBackend(path, device='cuda:0', precision=precision, max_batch=4) as backend:
        assert backend.converter == 'static', backend.converter_fallback_reason
        backend.configure_decode(0.3, 'auto')
        assert backend.output_format == 'raw'
        captured = backend.prepare()
        assert captured == {1: True, 2: True, 3: True, 4: True}, backend.graph_fallback_reason
        assert backend.graph_fallback_reason == ''
        assert backend.input_layout == ('NHWC' if precision == 'fp16' else 'NCHW')


def test_compiled_capture_succeeds_for_the_demo_model_and_keeps_its_detections(tmp_path):
    """torch.compile (inductor) + CUDA graph for the bundled model: compiled AND captured (this
    FAILS on a fallback), and its fp16 detections on the bag are the graph path's (at most one
    box per frame without a counterpart, matched boxes IoU >= 0.98)."""
    def detector(compile_mode):
        return Detector.from_config(make_config({
            'backend': 'torch', 'device': 'gpu', 'precision': 'fp16', 'preprocess_on_gpu': True,
            'torch_compile': compile_mode, 'engine_cache_dir': str(tmp_path)}))

    with detector('default') as compiled, detector('off') as graphed:
        assert compiled.backend.compile_mode == 'default'
        assert compiled.backend.captured(1), compiled.backend.graph_fallback_reason
        assert compiled.backend.graph_fallback_reason == ''
        assert any(tmp_path.rglob('*.py')), 'no inductor code in the cache folder'
        for source in bag_frames():
            a = compiled.detect(source).detections
            b = graphed.detect(source).detections
            _assert_close_detections(a, b, 'compiled', 'graph')


def test_nhwc_kernel_writes_the_nchw_kernels_values_transposed():
    from tensorrt_yolox_py.cuda.preprocess import CudaPreprocessor

    images = _images(2, seed=21)
    with CudaPreprocessor((640, 960), dtype=np.float16) as pre:
        nchw = pre.run(images)[0].to_host()
        out = torch.empty((2, 640, 960, 3), dtype=torch.float16, device='cuda:0')
        target = DeviceTensor(out.data_ptr(), out.shape, np.float16, 'NHWC', owner=out)
        tensor, _ = pre.run(images, out=target)
        assert tensor.ptr == out.data_ptr() and tensor.layout == 'NHWC'
        nhwc = tensor.to_host()
    np.testing.assert_array_equal(nhwc.transpose(0, 3, 1, 2), nchw)


@pytest.mark.parametrize('select', ['compact', 'topk'])
def test_gpu_decode_candidates_equal_the_cpu_postprocess(select):
    """Decode + candidate selection inside the captured work, NMS on the host = the CPU
    postprocess of the same raw output (fp32), frame by frame; the copy back is
    detection-sized."""
    from tensorrt_yolox_py.cuda.preprocess import CudaPreprocessor
    from tensorrt_yolox_py.stages.postprocess import Postprocessor

    with _torch_backend(precision='fp32', max_batch=2, decode_select=select) as backend, \
            CudaPreprocessor(backend.input_hw, dtype=backend.input_dtype) as pre:
        backend.configure_decode(0.05, 'raw')         # a low threshold: many candidates
        post = Postprocessor(backend.input_hw, 0.05, 0.45, 100, 'raw')
        for source in bag_frames()[:4] + _images(2, seed=30):
            tensor, (lb,) = pre.run([source])
            decoded = backend.infer_decoded(tensor)
            raw = backend.infer(tensor)
            want = post(raw[0], lb)
            got = (post(decoded.raw[0], lb) if 0 in decoded.raw
                   else post.from_candidates(decoded.candidates[0], decoded.counts[0], lb))
            assert len(got) == len(want)
            np.testing.assert_array_equal(got.class_ids, want.class_ids)
            np.testing.assert_allclose(got.boxes, want.boxes, rtol=0, atol=1e-3)
            np.testing.assert_allclose(got.scores, want.scores, rtol=0, atol=1e-5)
        assert decoded.candidates.nbytes < raw.nbytes / 10


def test_fp16_writes_half_input_and_stays_close(ort):
    with _torch_backend(precision='fp16') as backend:
        assert backend.input_dtype == np.float16 and backend.precision == 'fp16'
        x = np.random.default_rng(5).uniform(0, 255, ort.input_shape).astype(np.float32)
        got = backend.infer(x.astype(np.float16))
        want = ort.infer(x)
        # objectness / class scores (sigmoid outputs) within 5e-2 in half precision
        np.testing.assert_allclose(got[..., 4:], want[..., 4:], rtol=0, atol=5e-2)


def _gpu_and_cpu_detectors(**values):
    gpu = Detector.from_config(make_config({'backend': 'torch', 'device': 'gpu',
                                            'precision': 'fp32', 'preprocess_on_gpu': True,
                                            **values}))
    cpu = Detector.from_config(make_config({'backend': 'onnxruntime', 'device': 'cpu',
                                            'preprocess_on_gpu': False, **values}))
    assert gpu.preprocessor.name == 'cuda' and gpu.backend.capabilities.device_memory
    assert cpu.preprocessor.name == 'cpu'
    assert gpu._device_decode and gpu.backend.converter == 'static'
    seen = gpu.seen_tensors = []           # what the GPU backend is given: device tensors
    infer = gpu.backend.infer_decoded      # (its own static input, written by the kernel)
    gpu.backend.infer_decoded = lambda tensor: seen.append(
        (type(tensor), tensor.ptr == gpu.backend.input_tensor(tensor.batch).ptr)) or \
        infer(tensor)
    return gpu, cpu


def _assert_same_detections(a, b):
    """Same count; each box matched (same class) with IoU >= 0.99, score within 1e-2."""
    assert len(a) == len(b), f'{len(a)} GPU detections vs {len(b)} CPU'
    if not len(a):
        return
    iou = pairwise_iou(a.boxes, b.boxes)
    iou[a.class_ids[:, None] != b.class_ids[None, :]] = -1.0
    used = set()
    for i in np.argsort(-a.scores):
        j = int(np.argmax(np.where([k in used for k in range(len(b))], -1.0, iou[i])))
        assert iou[i, j] >= 0.99, f'box {a.boxes[i]} best IoU {iou[i, j]:.4f}'
        assert abs(float(a.scores[i]) - float(b.scores[j])) <= 1e-2
        used.add(j)


def _assert_close_detections(a, b, name_a, name_b):
    """At most one box without a counterpart (same class, IoU > 0.5); matched IoU >= 0.98."""
    assert abs(len(a) - len(b)) <= 1, f'{len(a)} {name_a} vs {len(b)} {name_b} detections'
    if len(a) and len(b):
        small, big = (a, b) if len(a) <= len(b) else (b, a)
        iou = pairwise_iou(small.boxes, big.boxes)
        iou[small.class_ids[:, None] != big.class_ids[None, :]] = -1.0
        best = iou.max(axis=1)
        matched = best[best > 0.5]            # a box and its counterpart
        assert len(best) - len(matched) <= 1, f'unmatched: {best}'
        assert matched.min(initial=1.0) >= 0.98, f'matched IoUs {matched}'


def test_bundled_bag_gpu_path_equals_cpu_path():
    frames = bag_frames()
    assert len(frames) == 18
    gpu, cpu = _gpu_and_cpu_detectors()
    with gpu, cpu:
        total = 0
        for source in frames:
            a = gpu.detect(source).detections
            b = cpu.detect(source).detections
            _assert_same_detections(a, b)
            total += len(a)
    assert total > 0
    assert gpu.seen_tensors == [(DeviceTensor, True)] * len(frames)   # no host round trip


def test_bundled_bag_fp16_matches_the_cpu_fp32_path():
    """FP16 captured path (channels_last, GPU decode) vs the CPU FP32 path on the bag: at
    most one box per frame without a counterpart, matched boxes IoU >= 0.98."""
    frames = bag_frames()
    gpu, cpu = _gpu_and_cpu_detectors(precision='fp16')
    assert gpu.backend.precision == 'fp16' and gpu.backend.input_layout == 'NHWC'
    with gpu, cpu:
        for source in frames:
            a = gpu.detect(source).detections
            b = cpu.detect(source).detections
            _assert_close_detections(a, b, 'fp16', 'fp32')
        assert gpu.backend.captured(1)


def test_detect_batch_and_scheduler_on_the_gpu():
    frames = bag_frames()[:4]
    gpu, cpu = _gpu_and_cpu_detectors(max_batch=4)
    with gpu, cpu:
        assert gpu.backend.capabilities.max_batch == 4
        batched = gpu.detect_batch(frames)
        assert all(r.batch_size == len(frames) for r in batched)
        for source, result in zip(frames, batched):
            _assert_same_detections(result.detections, cpu.detect(source).detections)
        outcomes = {}
        with BatchScheduler(gpu, lambda o: outcomes.__setitem__(o.header, o),
                            max_wait_s=0.05) as sched:
            for k, source in enumerate(frames):
                sched.submit(f'cam{k}', source, header=k)
            deadline = time.monotonic() + 60
            while len(outcomes) < len(frames) and time.monotonic() < deadline:
                time.sleep(0.01)
        assert sorted(outcomes) == list(range(len(frames)))
        for k in range(len(frames)):
            assert outcomes[k].error is None
            _assert_same_detections(outcomes[k].result.detections, batched[k].detections)


def test_staged_batches_equal_sequential_runs_bit_exactly():
    """Host frames overlap: staged ahead (two pinned slots) == one slot, one batch at a time."""
    from tensorrt_yolox_py.cuda.preprocess import CudaPreprocessor

    batches = [_images(4, seed=31 + k) for k in range(3)]
    with CudaPreprocessor((640, 960)) as pre, \
            CudaPreprocessor((640, 960), staging_slots=1) as one:
        sequential = [one.run(batch)[0].to_host() for batch in batches]
        a, b, c = batches
        staged_a, staged_b = pre.stage(a), pre.stage(b)
        overlapped = [pre.run(a, staged=staged_a)[0].to_host()]
        staged_c = pre.stage(c)              # A's slot again, while B's copy may still run
        overlapped.append(pre.run(b, staged=staged_b)[0].to_host())
        overlapped.append(pre.run(c, staged=staged_c)[0].to_host())
    for got, want in zip(overlapped, sequential):
        assert got.tobytes() == want.tobytes()


def test_pipelined_detector_equals_sequential_on_the_captured_path():
    """A producer thread stages batch n + 1 while batch n infers: same detections, bit exact."""
    from concurrent.futures import ThreadPoolExecutor

    frames = bag_frames()[:12]
    batches = [frames[k:k + 4] for k in range(0, 12, 4)]
    det = Detector.from_config(make_config({'backend': 'torch', 'device': 'gpu',
                                            'precision': 'fp16', 'preprocess_on_gpu': True,
                                            'max_batch': 4}))
    with det:
        assert det.can_stage and det._device_decode
        sequential = [det.detect_batch(batch) for batch in batches]
        pipelined = []
        with ThreadPoolExecutor(1) as pool:
            ahead = pool.submit(det.stage, batches[0])
            for k, batch in enumerate(batches):
                staged = ahead.result()
                if k + 1 < len(batches):
                    ahead = pool.submit(det.stage, batches[k + 1])
                pipelined.append(det.detect_batch(batch, staged=staged))
    for seq, pip in zip(sequential, pipelined):
        for a, b in zip(seq, pip):
            assert len(a.detections) == len(b.detections)
            np.testing.assert_array_equal(a.detections.boxes, b.detections.boxes)
            np.testing.assert_array_equal(a.detections.scores, b.detections.scores)
            np.testing.assert_array_equal(a.detections.class_ids, b.detections.class_ids)
    assert sum(len(r.detections) for seq in sequential for r in seq) > 0
