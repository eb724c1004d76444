"""TensorRT 11: strongly typed networks only (the double's 11.4 mode has no removed API).

Precision comes from the ONNX types: fp16 parses an FP16 copy of the model, int8 a Q/DQ model
with FP16 elsewhere (``quantization.strongly_typed``), fp32 the model as it is. No precision
flag is set (TensorRT 11 has none), the engine key includes the typed model's hash, and the
engine loads and runs with the same runtime calls. The DLA is refused on 11.0-11.4.0 and
built strongly typed on 11.4.1+.
"""

import numpy as np
import pytest
from needs import qdq_from_ranges  # noqa: E402

from tensorrt_yolox_py.backends.tensorrt import TensorRTBackend
from tensorrt_yolox_py.backends.tensorrt.builder import EngineSettings, prepare_engine
from tensorrt_yolox_py.errors import ParameterError
from trt_double.helpers import calls_named, config
from trt_double.models import make_tiny_yolox

pytest_plugins = ['trt_double.fixtures']
TRT11 = '11.4.0.106'


def prepare(trt, host_memory, model, cache, **values):
    settings = EngineSettings.from_config(config(model, cache, **values))
    return prepare_engine(settings, trt=trt.module, memory=host_memory)


def engine_layers(trt, path):
    logger_cls = trt.module.ILogger

    class Quiet(logger_cls):
        def __init__(self):
            logger_cls.__init__(self)

        def log(self, severity, msg):
            pass

    engine = trt.Runtime(Quiet()).deserialize_cuda_engine(path.read_bytes())
    return {layer['name']: layer for layer in engine._header['layers']}


def strongly_typed_network(trt):
    created = calls_named(trt.CALLS, 'Builder.create_network')
    bit = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return bool(created) and all(c[1] == bit for c in created)


def test_fp16_parses_an_fp16_model_with_no_precision_flag(trt, host_memory, tiny_model,
                                                          tmp_path):
    trt.reset(TRT11, memory=host_memory)
    prepared = prepare(trt, host_memory, tiny_model, tmp_path, precision='fp16')
    assert strongly_typed_network(trt)
    assert not calls_named(trt.CALLS, 'IBuilderConfig.set_flag')
    parsed = calls_named(trt.CALLS, 'OnnxParser.parse_from_file')[0][1]
    assert '.typed-fp16-' in parsed
    assert prepared.key and 'typed_model_sha256' in prepared.cache.directory.joinpath(
        f'{prepared.name}.engine.json').read_text()
    layers = engine_layers(trt, prepared.path)
    assert layers['stem']['precision'] == 'HALF' and layers['dark2']['precision'] == 'HALF'
    with TensorRTBackend(prepared.path, memory=host_memory, trt=trt.module) as backend:
        assert backend.input_dtype == np.float32          # I/O stay float32
        out = backend.infer(np.zeros((1, 3, 64, 64), np.float32))
    assert np.isfinite(out).all()


@qdq_from_ranges
def test_int8_is_a_qdq_model_with_fp16_elsewhere(trt, host_memory, tiny_model, calib_images,
                                                 tmp_path):
    trt.reset(TRT11, memory=host_memory)
    prepared = prepare(trt, host_memory, tiny_model, tmp_path, precision='int8',
                       calibration_image_list_path=str(calib_images))
    assert prepared.report['int8_path'] == 'typed-qdq'
    assert strongly_typed_network(trt) and not calls_named(trt.CALLS, 'IBuilderConfig.set_flag')
    assert '.typed-int8-' in calls_named(trt.CALLS, 'OnnxParser.parse_from_file')[0][1]
    layers = engine_layers(trt, prepared.path)
    precisions = {layer['precision'] for layer in layers.values()}
    assert 'INT8' in precisions and 'HALF' in precisions
    assert layers['dark2']['precision'] == 'INT8'
    # a cached typed model is reused; the engine is loaded, not rebuilt
    again = prepare(trt, host_memory, tiny_model, tmp_path, precision='int8',
                    calibration_image_list_path=str(calib_images))
    assert not again.built and again.key == prepared.key
    assert len(list(tmp_path.glob('tiny.typed-int8-*.onnx'))) == 1


@qdq_from_ranges
def test_first_and_last_layers_kept_in_fp16_on_request(trt, host_memory, tiny_model,
                                                       calib_images, tmp_path):
    trt.reset(TRT11, memory=host_memory)
    prepared = prepare(trt, host_memory, tiny_model, tmp_path, precision='int8',
                       calibration_image_list_path=str(calib_images),
                       quantize_first_layer=True)
    layers = engine_layers(trt, prepared.path)
    assert layers['stem']['precision'] == 'HALF' and layers['dark2']['precision'] == 'INT8'


@qdq_from_ranges
def test_clip_recipe_needs_no_images_and_changes_the_key(trt, host_memory, tmp_path):
    trt.reset(TRT11, memory=host_memory)
    model = make_tiny_yolox(tmp_path / 'relu6.onnx', act='relu6')
    prepared = prepare(trt, host_memory, model, tmp_path, precision='int8', clip_value=6.0)
    assert prepared.report['int8_path'] == 'typed-qdq'
    assert 'fixed Q/DQ scales' in prepared.report['int8_reason']
    assert engine_layers(trt, prepared.path)['dark2']['precision'] == 'INT8'


def test_implicit_int8_modes_are_refused_on_tensorrt_11(trt, host_memory, tiny_model,
                                                        calib_images, tmp_path):
    trt.reset(TRT11, memory=host_memory)
    for mode in ('implicit', 'ranges'):
        with pytest.raises(ParameterError) as info:
            prepare(trt, host_memory, tiny_model, tmp_path, precision='int8', int8_mode=mode,
                    calibration_image_list_path=str(calib_images))
        assert info.value.name == 'int8_mode' and 'removed' in str(info.value)


@pytest.mark.parametrize('version', ['10.8.0', '10.16.1.11', '11.0.0', TRT11])
def test_dla_refused_on_releases_without_dla_support(trt, host_memory, tiny_model, tmp_path,
                                                     version):
    trt.reset(version, memory=host_memory, hardware=trt.Hardware(num_dla_cores=2))
    with pytest.raises(ParameterError) as info:
        prepare(trt, host_memory, tiny_model, tmp_path, precision='fp16', device='dla0')
    assert info.value.name == 'device'
    assert f'TensorRT {".".join(version.split(".")[:3])}' in str(info.value)
    assert 'no DLA support' in str(info.value)


@qdq_from_ranges
def test_dla_on_tensorrt_11_4_1_builds_strongly_typed(trt, host_memory, calib_images, tmp_path):
    trt.reset('11.4.1', memory=host_memory, hardware=trt.Hardware(num_dla_cores=2))
    model = make_tiny_yolox(tmp_path / 'relu6.onnx', act='relu6')
    prepared = prepare(trt, host_memory, model, tmp_path, precision='int8', device='dla1',
                       calibration_image_list_path=str(calib_images))
    assert strongly_typed_network(trt)
    flags = [c[1] for c in calls_named(trt.CALLS, 'IBuilderConfig.set_flag')]
    assert flags == ['GPU_FALLBACK']
    assert ('IBuilderConfig.DLA_core', 1) in trt.CALLS
    layers = engine_layers(trt, prepared.path)
    assert layers['stem']['device'] == 'DLA' and layers['spp']['device'] == 'GPU'


@qdq_from_ranges
def test_typed_model_names_its_tool_and_version_and_a_new_tool_remakes_it(
        trt, host_memory, tiny_model, calib_images, tmp_path, monkeypatch):
    import importlib.metadata as metadata

    import onnxruntime

    from tensorrt_yolox_py.quantization import strongly_typed

    trt.reset(TRT11, memory=host_memory)
    options = dict(precision='int8', calibration_image_list_path=str(calib_images))
    prepared = prepare(trt, host_memory, tiny_model, tmp_path, **options)
    (typed,) = tmp_path.glob('tiny.typed-int8-*.onnx')
    tool = strongly_typed.typed_model_tool(typed)
    assert tool == prepared.report['typed_model_tool']
    if strongly_typed.modelopt_status()[0] is None:     # CI: the ONNX Runtime fallback
        assert f'onnxruntime {onnxruntime.__version__}' in tool
        assert f"onnxconverter-common {metadata.version('onnxconverter-common')}" in tool
    else:
        assert tool.startswith('modelopt ')
    real = strongly_typed.planned_tool
    monkeypatch.setattr(strongly_typed, 'planned_tool',
                        lambda *args: real(*args) + ' (another version)')
    prepare(trt, host_memory, tiny_model, tmp_path, **options)
    assert len(list(tmp_path.glob('tiny.typed-int8-*.onnx'))) == 2   # made again, not reused
