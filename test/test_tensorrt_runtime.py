"""TensorRTBackend against the double: buffers, streams, device-resident input, detections."""

import logging

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from needs import qdq_from_ranges  # noqa: E402
from onnx import helper, TensorProto

from tensorrt_yolox_py.backends import choose_backend, create_backend
from tensorrt_yolox_py.backends.onnxruntime_backend import OnnxRuntimeBackend
from tensorrt_yolox_py.backends.tensorrt import EngineLoadError, TensorRTBackend, TensorRTError
from tensorrt_yolox_py.backends.tensorrt import runtime as runtime_module
from tensorrt_yolox_py.errors import InputError, ModelContractError
from tensorrt_yolox_py.image import SourceImage
from tensorrt_yolox_py.pipeline import Detector
from tensorrt_yolox_py.tensors import DeviceTensor
from trt_double.helpers import calls_named, config, in_order

pytest_plugins = ['trt_double.fixtures']


def reference(model, x):
    session = ort.InferenceSession(str(model), providers=['CPUExecutionProvider'])
    return session.run(None, {'images': x})[0]


@pytest.fixture
def backend(trt, host_memory, tiny_model, tmp_path):
    with TensorRTBackend.from_config(config(tiny_model, tmp_path, precision='fp16'),
                                     memory=host_memory, trt=trt) as opened:
        yield opened


def test_io_contract_read_from_the_engine(backend):
    assert backend.name == 'tensorrt'
    assert backend.input_name == 'images' and backend.output_name == 'output'
    assert backend.input_shape == (1, 3, 64, 64) and backend.output_shape == (1, 64, 13)
    assert backend.input_dtype == np.float32 and backend.num_classes == 8


def test_host_input_h2d_execute_d2h_one_sync(trt, host_memory, backend, tiny_model):
    x = np.random.default_rng(3).uniform(0, 255, (1, 3, 64, 64)).astype(np.float32)
    trt.CALLS.clear()
    out = backend.infer(x)
    np.testing.assert_allclose(out, reference(tiny_model, x), rtol=1e-6, atol=1e-6)
    stream = backend._stream
    assert in_order(trt.CALLS, [('htod', stream),
                                ('IExecutionContext.set_tensor_address', 'images', backend._d_in),
                                ('IExecutionContext.execute_async_v3', stream),
                                ('dtoh', stream), ('sync', stream)])
    assert len(calls_named(trt.CALLS, 'sync')) == 1
    out[...] = 0  # the caller owns the result: the next call is unaffected
    assert np.any(backend.infer(x) != 0)


def test_device_input_is_bound_in_place_on_the_callers_stream(trt, host_memory, backend,
                                                              tiny_model):
    """What the CUDA preprocessor hands over: a device tensor on its stream, to ``infer``."""
    x = np.random.default_rng(4).uniform(0, 255, (1, 3, 64, 64)).astype(np.float32)
    camera_stream = host_memory.stream_create()
    preprocessed = host_memory.malloc(x.nbytes)
    host_memory.htod_async(preprocessed, x, camera_stream)
    trt.CALLS.clear()
    out = backend.infer(DeviceTensor(preprocessed, x.shape, x.dtype, stream=camera_stream))
    np.testing.assert_allclose(out, reference(tiny_model, x), rtol=1e-6, atol=1e-6)
    assert in_order(trt.CALLS, [('IExecutionContext.set_tensor_address', 'images', preprocessed),
                                ('IExecutionContext.execute_async_v3', camera_stream),
                                ('dtoh', camera_stream), ('sync', camera_stream)])
    assert not calls_named(trt.CALLS, 'htod')  # no copy of the input
    assert calls_named(trt.CALLS, 'sync') == [('sync', camera_stream)]  # one sync, at the end
    assert not [c for c in trt.CALLS if c[0] == 'IExecutionContext.set_tensor_address'
                and c[1] == 'output']  # the output binding is set once, at load
    host_memory.free(preprocessed)
    host_memory.stream_destroy(camera_stream)


def test_detections_match_the_onnxruntime_backend(trt, host_memory, planted_model, tmp_path):
    cfg = config(planted_model, tmp_path, precision='fp16', preprocess_on_gpu=False,
                 score_threshold=0.5)
    image = np.full((240, 320, 3), 40, np.uint8)
    image[64:128, 96:160] = (0, 0, 255)  # a saturated red square: CAR, one box
    trt_backend = TensorRTBackend.from_config(cfg, memory=host_memory, trt=trt)
    with Detector.from_config(cfg, backend=trt_backend) as trt_det, \
            Detector.from_config(cfg, backend=OnnxRuntimeBackend(planted_model)) as ort_det:
        got = trt_det.detect(SourceImage.from_array(image)).detections
        want = ort_det.detect(SourceImage.from_array(image)).detections
    assert len(want) >= 1
    np.testing.assert_array_equal(got.class_ids, want.class_ids)
    np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-4)
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-6)


def test_per_layer_profile_report(trt, host_memory, tiny_model, tmp_path):
    cfg = config(tiny_model, tmp_path, precision='fp16', profile_per_layer=True)
    with TensorRTBackend.from_config(cfg, memory=host_memory, trt=trt) as opened:
        assert 'run inference first' in opened.profile_report()
        for _ in range(3):
            opened.infer(np.zeros((1, 3, 64, 64), np.float32))
        report = opened.profile_report()
        layers = opened.engine_layer_info()
    assert ('IExecutionContext.profiler', True) in trt.CALLS
    lines = report.splitlines()
    assert lines[0].split() == ['layer', 'mean', 'ms', 'share', 'runs']
    assert len(lines) == 2 + len(layers) + 1
    assert all(line.rstrip().endswith(' 3') for line in lines[2:-1])
    assert {layer['name'] for layer in layers} >= {'stem', 'spp', 'reg_preds'}
    assert {layer['precision'] for layer in layers} == {'FP16'}
    assert {layer['device'] for layer in layers} == {'GPU'}
    assert all(layer['detailed'] and layer['type'] for layer in layers)


def test_dla_engine_selects_the_core_at_deserialization(trt, host_memory, tiny_model, tmp_path):
    trt.reset(memory=host_memory, hardware=trt.Hardware(num_dla_cores=2))
    host_memory.calls = trt.CALLS
    cfg = config(tiny_model, tmp_path, precision='int8', device='dla1', clip_value=6.0)
    with TensorRTBackend.from_config(cfg, memory=host_memory, trt=trt) as opened:
        opened.infer(np.zeros((1, 3, 64, 64), np.float32))
        layers = opened.engine_layer_info()
        placement = opened.placement()
    assert in_order(trt.CALLS, [('Runtime.DLA_core', 1), ('Runtime.deserialize_cuda_engine',)])
    # the inspector's DETAILED JSON: DLA subgraphs are ForeignNodes, the rest GPU kernels
    dla = [layer for layer in layers if layer['device'] == 'DLA']
    assert dla and all(layer['name'].startswith('{ForeignNode[') for layer in dla)
    assert placement['DLA'] == len(dla) and placement['GPU'] >= 1
    assert {layer['precision'] for layer in layers} <= {'INT8', 'FP16', 'FP32'}


def test_close_frees_everything_and_is_idempotent(trt, host_memory, tiny_model, tmp_path):
    backend = TensorRTBackend.from_config(config(tiny_model, tmp_path, precision='fp16'),
                                          memory=host_memory, trt=trt)
    assert host_memory.live() == 5  # input + output device, 2 pinned, 1 stream
    backend.close()
    backend.close()
    assert host_memory.live() == 0
    with pytest.raises(RuntimeError, match='closed'):
        backend.infer(np.zeros((1, 3, 64, 64), np.float32))
    with pytest.raises(RuntimeError, match='closed'):
        backend.infer(DeviceTensor(1234, (1, 3, 64, 64), np.float32))


def test_bad_inputs_and_failures_raise_clearly(trt, host_memory, backend, caplog):
    with pytest.raises(InputError, match='shape'):
        backend.infer(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(InputError, match='dtype'):
        backend.infer(np.zeros((1, 3, 64, 64), np.float64))
    with pytest.raises(InputError, match='null'):
        DeviceTensor(0, (1, 3, 64, 64), np.float32, stream=backend._stream)
    trt.CALLS.clear()
    for bad, message in [
            (DeviceTensor(1234, (1, 3, 64, 64), np.float32, device_id=1), 'on GPU 1'),
            (DeviceTensor(1234, (1, 64, 64, 3), np.float32, 'NHWC'), 'NCHW'),
            (DeviceTensor(1234, (1, 3, 64, 64), np.float16), 'dtype'),
            (DeviceTensor(1234, (2, 3, 64, 64), np.float32), r'batch 1\.\.1'),
            (DeviceTensor(1234, (1, 3, 64, 32), np.float32), 'shape')]:
        with pytest.raises(InputError, match=message):
            backend.infer(bad)
    assert not calls_named(trt.CALLS, 'IExecutionContext.execute_async_v3')   # checked first
    context = backend._context

    def failing_enqueue(stream_handle):
        backend._logger.log(trt.ILogger.Severity.ERROR, 'enqueueV3: Error Code 1: Cuda Runtime '
                            '(an illegal memory access was encountered)')
        return False

    context.execute_async_v3 = failing_enqueue
    with caplog.at_level(logging.ERROR):
        with pytest.raises(TensorRTError, match='illegal memory access'):
            backend.infer(np.zeros((1, 3, 64, 64), np.float32))


def test_corrupt_or_foreign_engine_files_are_refused(trt, host_memory, tmp_path):
    foreign = tmp_path / 'x.engine'
    foreign.write_bytes(b'\x00' * 64)
    with pytest.raises(EngineLoadError, match='Magic tag does not match'):
        TensorRTBackend(foreign, memory=host_memory, trt=trt)
    with pytest.raises(EngineLoadError, match='cannot read'):
        TensorRTBackend(tmp_path / 'missing.engine', memory=host_memory, trt=trt)
    assert host_memory.live() == 0


def test_model_with_two_outputs_breaks_the_contract(trt, host_memory, tmp_path):
    nodes = [helper.make_node('Relu', ['images'], ['a']),
             helper.make_node('Sigmoid', ['images'], ['b'])]
    graph = helper.make_graph(
        nodes, 'two',
        [helper.make_tensor_value_info('images', TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info('a', TensorProto.FLOAT, [1, 3, 8, 8]),
         helper.make_tensor_value_info('b', TensorProto.FLOAT, [1, 3, 8, 8])])
    path = tmp_path / 'two.onnx'
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ModelContractError, match='expected 1 output'):
        TensorRTBackend.from_config(config(path, tmp_path, precision='fp16'),
                                    memory=host_memory, trt=trt)


def test_backend_auto_picks_tensorrt_when_importable(trt, host_memory, tiny_model, tmp_path,
                                                     monkeypatch):
    cfg = config(tiny_model, tmp_path, precision='fp16')
    assert choose_backend(cfg)[0] == 'tensorrt'
    assert choose_backend(cfg.replace(device='cpu'))[0] == 'onnxruntime'
    monkeypatch.setattr(runtime_module, 'CudaMemory', lambda gpu_id: host_memory)
    with create_backend(cfg) as opened:
        assert isinstance(opened, TensorRTBackend)
        assert opened.infer(np.zeros((1, 3, 64, 64), np.float32)).shape == (1, 64, 13)


@pytest.mark.parametrize('version', [
    '10.0.1', pytest.param('11.4.0.106', marks=qdq_from_ranges)])
def test_layer_precision_is_the_compute_type_not_the_output_format(
        trt, host_memory, tiny_model, calib_images, tmp_path, version):
    """An INT8 layer feeding a float layer writes FP16/FP32: reading its output format (the
    old rule) called it FP16/FP32; the compute type (weights, inputs) says INT8. Both inspector
    schemas (10.x "Format/Datatype", 11.x "Format" + "Datatype")."""
    from tensorrt_yolox_py.backends.tensorrt.inspector import tensor_precision

    trt.reset(version, memory=host_memory)
    cfg = config(tiny_model, tmp_path, precision='int8',
                 calibration_image_list_path=str(calib_images))
    with TensorRTBackend.from_config(cfg, memory=host_memory, trt=trt) as opened:
        layers = opened.engine_layer_info()
    convs = [layer for layer in layers if 'Weights' in layer['raw']]
    int8 = [layer for layer in convs if layer['raw']['Weights']['Type'] == 'Int8']
    assert int8 and all(layer['precision'] == 'INT8' for layer in int8)
    writes_float = [layer for layer in layers if layer['precision'] == 'INT8'
                    and tensor_precision(layer['raw']['Outputs'][0]) in ('FP16', 'FP32')]
    assert writes_float          # the layers feeding float layers (the output's reshape)
    assert all(layer['precision'] for layer in layers)   # no layer reads '' on either schema
    key = 'Datatype' if version.startswith('11') else 'Format/Datatype'
    assert all(key in layer['raw']['Outputs'][0] for layer in layers)


def test_inspector_parsing_on_a_real_int8_engine():
    """NVIDIA's real INT8 ResNet engine (A100, test/trt_api/real_engines): every convolution
    with Int8 weights computes in INT8, though 13 of the 21 write FP16 or FP32 (the old
    output-format rule called them FP16 / FP32)."""
    import json
    from pathlib import Path

    from tensorrt_yolox_py.backends.tensorrt.inspector import (engine_io, parse_layer,
                                                               tensor_precision)

    path = Path(__file__).parent / 'trt_api' / 'real_engines' / 'resnet-qat-A100.graph.json'
    text = path.read_text()
    data = json.loads(text)
    layers = [parse_layer(json.dumps(layer)) for layer in data['Layers']]
    convs = [layer for layer in layers if layer['raw'].get('Weights', {}).get('Type') == 'Int8']
    assert len(convs) == 21 and all(layer['precision'] == 'INT8' for layer in convs)
    old_rule = [tensor_precision(layer['raw']['Outputs'][0]) for layer in convs]
    assert sum(p != 'INT8' for p in old_rule) == 13
    assert all(layer['precision'] for layer in layers) and all(
        layer['device'] == 'GPU' for layer in layers)
    assert engine_io(text) == ['input.1', '422']
