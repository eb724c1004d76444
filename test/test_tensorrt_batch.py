"""TensorRT engines with a batch profile (cross-camera batching), on the TensorRT double.

The double holds the calls to the real API (set_shape / add_optimization_profile /
set_calibration_profile / get_tensor_profile_shape / set_input_shape) and runs the engine with
ONNX Runtime at the shape the context was given; the reference is ONNX Runtime on the
original (batch-1) model, one image at a time.
"""

import numpy as np
import onnxruntime as ort
import pytest
from needs import qdq_from_ranges  # noqa: E402

from tensorrt_yolox_py.backends.tensorrt import TensorRTBackend
from tensorrt_yolox_py.errors import InputError, ParameterError
from tensorrt_yolox_py.tensors import DeviceTensor
from trt_double.helpers import calls_named, config

pytest_plugins = ['trt_double.fixtures']


def _singles(model, x):
    session = ort.InferenceSession(str(model), providers=['CPUExecutionProvider'])
    return np.concatenate([session.run(None, {'images': x[i:i + 1]})[0]
                           for i in range(x.shape[0])])


def _inputs(batch, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, 3, 64, 64)).astype(np.float32)


def test_batch_profile_built_and_every_batch_size_runs(trt, host_memory, tiny_model, tmp_path):
    cfg = config(tiny_model, tmp_path, precision='fp16', max_batch=4)
    with TensorRTBackend.from_config(cfg, memory=host_memory, trt=trt) as backend:
        assert backend.capabilities.max_batch == 4
        assert backend.input_shape == (1, 3, 64, 64) and backend.output_shape == (1, 64, 13)
        assert '.b4' in backend.engine_path.name
        profile = calls_named(trt.CALLS, 'IOptimizationProfile.set_shape')
        assert profile == [('IOptimizationProfile.set_shape', 'images', (1, 3, 64, 64),
                            (4, 3, 64, 64), (4, 3, 64, 64))]
        for batch in (3, 3, 1, 4):
            x = _inputs(batch, seed=batch)
            np.testing.assert_allclose(backend.infer(x), _singles(tiny_model, x), rtol=1e-5,
                                       atol=1e-5)
        shapes = [c[2][0] for c in calls_named(trt.CALLS, 'IExecutionContext.set_input_shape')]
        assert shapes == [3, 1, 4]            # set only when the batch size changes
        with pytest.raises(InputError):
            backend.infer(_inputs(5))


def test_batched_device_input_on_the_callers_stream(trt, host_memory, tiny_model, tmp_path):
    cfg = config(tiny_model, tmp_path, precision='fp32', max_batch=3)
    with TensorRTBackend.from_config(cfg, memory=host_memory, trt=trt) as backend:
        x = _inputs(2, seed=7)
        stream = host_memory.stream_create()
        ptr = host_memory.malloc(x.nbytes)
        host_memory.htod_async(ptr, x, stream)
        trt.CALLS.clear()
        out = backend.infer(DeviceTensor(ptr, x.shape, x.dtype, stream=stream))
        np.testing.assert_allclose(out, _singles(tiny_model, x), rtol=1e-5, atol=1e-5)
        assert not calls_named(trt.CALLS, 'htod')
        assert calls_named(trt.CALLS, 'IExecutionContext.execute_async_v3') == [
            ('IExecutionContext.execute_async_v3', stream)]
        with pytest.raises(InputError, match=r'batch 1\.\.3'):
            backend.infer(DeviceTensor(ptr, (4,) + x.shape[1:], x.dtype, stream=stream))
        host_memory.free(ptr)
        host_memory.stream_destroy(stream)


def test_implicit_int8_calibrates_a_batch_dynamic_network_at_batch_1(
        trt, host_memory, tiny_model, calib_images, tmp_path):
    trt.reset('10.0.1', memory=host_memory)
    cfg = config(tiny_model, tmp_path, precision='int8', int8_mode='implicit', max_batch=2,
                 calibration_image_list_path=str(calib_images))
    with TensorRTBackend.from_config(cfg, memory=host_memory, trt=trt) as backend:
        assert backend.capabilities.max_batch == 2
        assert backend.infer(_inputs(2)).shape == (2, 64, 13)
    calibration = calls_named(trt.CALLS, 'IBuilderConfig.set_calibration_profile')
    assert calibration == [('IBuilderConfig.set_calibration_profile',
                            {'images': ((1, 3, 64, 64),) * 3})]
    assert ('IInt8Calibrator.get_batch_size', 1) in trt.CALLS
    assert ('calibration.batches', 6) in trt.CALLS


def test_engine_key_and_name_carry_the_batch(trt, host_memory, tiny_model, tmp_path):
    one = TensorRTBackend.from_config(config(tiny_model, tmp_path, precision='fp16'),
                                      memory=host_memory, trt=trt)
    two = TensorRTBackend.from_config(config(tiny_model, tmp_path, precision='fp16',
                                             max_batch=2), memory=host_memory, trt=trt)
    with one, two:
        assert one.engine_path != two.engine_path
        assert one.capabilities.max_batch == 1 and two.capabilities.max_batch == 2
        assert not calls_named(trt.CALLS, 'IOptimizationProfile.set_shape')[1:]


def test_double_refuses_a_dynamic_network_without_a_profile(trt):
    """The double behaves like TensorRT: no profile, no engine (checked on the double)."""
    from trt_double.helpers import recording_logger

    logger = recording_logger(trt.module)
    builder = trt.module.Builder(logger)
    profile = builder.create_optimization_profile()
    dims = trt.module.Dims
    profile.set_shape('images', dims([2, 3, 64, 64]), dims([1, 3, 64, 64]),
                      dims([4, 3, 64, 64]))
    assert not profile                                   # min > opt: invalid
    config_ = builder.create_builder_config()
    assert config_.add_optimization_profile(profile) == -1


def test_dla_keeps_batch_1():
    from tensorrt_yolox_py.params import make_config

    with pytest.raises(ParameterError, match='max_batch'):
        make_config({'device': 'dla0', 'max_batch': 4})


@qdq_from_ranges
def test_dynamic_batch_of_a_qdq_model_expands_its_quantized_constants(
        planted_model, calib_images, tmp_path):
    """The explicit-INT8 + max_batch path: ONNX Runtime's Q/DQ model puts a DequantizeLinear
    between a batch-1 constant and its Concat; the batch-dynamic copy must still expand it
    (found by the checklist's gpu-int8-b4 configuration on the planted model)."""
    import onnx

    from tensorrt_yolox_py.onnx_model.dynamic_batch import check_dynamic_batch, make_dynamic_batch
    from tensorrt_yolox_py.quantization import list_calibration_images, quantize_static_qdq

    qdq = tmp_path / 'qdq.onnx'
    quantize_static_qdq(planted_model, qdq, list_calibration_images(calib_images), 'MinMax',
                        target='tensorrt')
    model = onnx.load(str(qdq))
    producers = {out: n for n in model.graph.node for out in n.output}
    inits = {i.name for i in model.graph.initializer}
    assert any(n.op_type == 'Concat' and any(
        producers.get(name) is not None and producers[name].op_type == 'DequantizeLinear'
        and producers[name].input[0] in inits for name in n.input)
        for n in model.graph.node)      # a quantized constant feeds a Concat
    assert check_dynamic_batch(make_dynamic_batch(model), 3) <= 1e-4
