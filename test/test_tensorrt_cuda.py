"""GPU tests of the TensorRT backend's CUDA layer (real device memory; TensorRT still the double).

Skipped without a CUDA GPU. What runs for real: ``CudaMemory`` (cudaMalloc, pinned host
buffers, non-blocking streams, async copies), the backend's buffer handling, and the
device-resident path with the CUDA preprocessor's output buffer bound as the engine input.
The engine itself is the double (ONNX Runtime on the CPU), so no TensorRT timing or numerics are
measured here.
"""


import numpy as np
import onnxruntime as ort
import pytest

from tensorrt_yolox_py.backends.onnxruntime_backend import OnnxRuntimeBackend
from tensorrt_yolox_py.backends.tensorrt import TensorRTBackend
from tensorrt_yolox_py.cuda.memory import CudaError, CudaMemory
from tensorrt_yolox_py.errors import MissingDependencyError
from tensorrt_yolox_py.image import SourceImage
from tensorrt_yolox_py.pipeline import Detector
from tensorrt_yolox_py.tensors import DeviceTensor
from trt_double.control import DoubleTensorRT, Hardware
from trt_double.helpers import config

pytest_plugins = ['trt_double.fixtures']


def _gpu_reason() -> str:
    try:
        memory = CudaMemory(0)
    except (MissingDependencyError, CudaError) as exc:
        return str(exc)
    memory.close()
    return ''


REASON = _gpu_reason()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(bool(REASON), reason=f'no CUDA GPU: {REASON}')]


@pytest.fixture
def cuda_trt(monkeypatch):
    from trt_double.cuda_access import CudaAccess

    memory = CudaMemory(0)
    info = memory.device_info()
    double = DoubleTensorRT(memory=CudaAccess(), hardware=Hardware(
        gpu_name=info['name'], compute_capability=tuple(info['compute_capability'])))
    double.install(monkeypatch)
    yield double, memory
    memory.close()


def test_cuda_memory_round_trip():
    memory = CudaMemory(0)
    info = memory.device_info()
    assert info['name'] and info['compute_capability'][0] >= 5
    stream = memory.stream_create()
    src = memory.pinned_empty((3, 5), np.float32)
    src[...] = np.arange(15, dtype=np.float32).reshape(3, 5)
    dst = memory.pinned_empty((3, 5), np.float32)
    dst[...] = -1
    ptr = memory.malloc(src.nbytes)
    memory.htod_async(ptr, src, stream)
    memory.dtoh_async(dst, ptr, stream)
    memory.synchronize(stream)
    np.testing.assert_array_equal(dst, src)
    memory.free(ptr)
    memory.free_pinned(src)
    memory.free_pinned(dst)
    memory.stream_destroy(stream)
    with pytest.raises(CudaError, match='gpu_id 99'):
        CudaMemory(99)
    memory.close()


def test_backend_on_device_memory_matches_onnxruntime(cuda_trt, tiny_model, tmp_path):
    trt, memory = cuda_trt
    x = np.random.default_rng(5).uniform(0, 255, (1, 3, 64, 64)).astype(np.float32)
    ref = ort.InferenceSession(str(tiny_model)).run(None, {'images': x})[0]
    cfg = config(tiny_model, tmp_path, precision='fp16')
    with TensorRTBackend.from_config(cfg, memory=memory, trt=trt) as backend:
        np.testing.assert_allclose(backend.infer(x), ref, rtol=1e-6, atol=1e-5)
        stream = memory.stream_create()
        ptr = memory.malloc(x.nbytes)
        staged = memory.pinned_empty(x.shape, np.float32)
        staged[...] = x
        memory.htod_async(ptr, staged, stream)
        np.testing.assert_allclose(
            backend.infer(DeviceTensor(ptr, x.shape, x.dtype, stream=stream,
                                       device_id=backend.device_id)), ref, rtol=1e-6,
            atol=1e-5)
        memory.free(ptr)
        memory.free_pinned(staged)
        memory.stream_destroy(stream)


def test_cuda_preprocessor_buffer_is_the_engine_input(cuda_trt, planted_model, tmp_path):
    preprocess = pytest.importorskip('tensorrt_yolox_py.cuda.preprocess')
    trt, memory = cuda_trt
    cfg = config(planted_model, tmp_path, precision='fp16', preprocess_on_gpu=True,
                 score_threshold=0.5)
    image = np.full((480, 640, 3), 30, np.uint8)
    image[128:256, 192:320] = (0, 0, 255)
    backend = TensorRTBackend.from_config(cfg, memory=memory, trt=trt)
    with Detector.from_config(cfg, backend=backend) as gpu_det, \
            Detector.from_config(cfg.replace(preprocess_on_gpu=False, device='cpu'),
                                 backend=OnnxRuntimeBackend(planted_model)) as cpu_det:
        assert isinstance(gpu_det.preprocessor, preprocess.CudaPreprocessor)
        seen = []
        infer = backend.infer
        backend.infer = lambda tensor: seen.append(tensor) or infer(tensor)
        got = gpu_det.detect(SourceImage.from_array(image)).detections
        want = cpu_det.detect(SourceImage.from_array(image)).detections
        (tensor,) = seen              # the preprocessor's device tensor, bound in place
        assert isinstance(tensor, DeviceTensor) and tensor.owner is gpu_det.preprocessor
        assert tensor.stream == gpu_det.preprocessor.stream_handle
    assert len(want) >= 1
    np.testing.assert_array_equal(got.class_ids, want.class_ids)
    np.testing.assert_allclose(got.boxes, want.boxes, atol=0.5)
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-3)
