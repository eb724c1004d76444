"""The TensorRT double behaves like real TensorRT where the package could go wrong.

Each behaviour is the real one from NVIDIA's binding sources (python/src/infer/*.cpp,
release/8.6 to 11.x) or the real manifests; a double more permissive than TensorRT would let
defects through (see trt_double/emulator.py).
"""

import warnings

import pytest

from trt_double.control import DoubleTensorRT, Hardware
from trt_double.helpers import recording_logger
from trt_double.host_memory import HostMemory

pytest_plugins = ['trt_double.fixtures']


def _network(trt, model):
    logger = recording_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    assert trt.OnnxParser(network, logger).parse_from_file(str(model))
    return logger, builder, network


class _Calibrator:
    """Mixin: a calibrator over ``batches`` host pointers, with hooks for misbehaviour."""

    def setup(self, trt, pointers, raise_at=None, exc=KeyboardInterrupt):
        self.pointers, self.raise_at, self.exc = list(pointers), raise_at, exc
        self.given, self.written, self.views = 0, [], []

    def get_batch_size(self):
        return 1

    def get_batch(self, names):
        if self.raise_at is not None and self.given == self.raise_at:
            raise self.exc('interrupted')
        if self.given == len(self.pointers):
            return None
        self.given += 1
        return [self.pointers[self.given - 1]]

    def read_calibration_cache(self):
        return None

    def write_calibration_cache(self, cache):
        self.written.append(bytes(cache))
        self.views.append(cache)


def _calibrator(trt, memory, count, raise_at=None, exc=KeyboardInterrupt):
    pointers = [memory.malloc(1 * 3 * 64 * 64 * 4) for _ in range(count)]
    base = trt.IInt8MinMaxCalibrator

    class Cal(_Calibrator, base):
        def __init__(self):
            base.__init__(self)

    cal = Cal()
    cal.setup(trt, pointers, raise_at, exc)
    return cal


def test_callback_exceptions_are_swallowed_with_the_real_defaults(trt, host_memory,
                                                                  tiny_model, capsys):
    """get_batch raising (a Ctrl-C too) ends calibration; TensorRT still writes a cache."""
    logger, builder, network = _network(trt, tiny_model)
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.INT8)
    cal = _calibrator(trt, host_memory, 5, raise_at=2)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        config.int8_calibrator = cal
    plan = builder.build_serialized_network(network, config)   # no KeyboardInterrupt escapes
    assert plan is not None
    assert cal.given == 2 and len(cal.written) == 1            # truncated cache, as for real
    assert [type(e).__name__ for _, e in trt.callback_errors] == ['KeyboardInterrupt']
    assert 'Exception caught in get_batch(): KeyboardInterrupt' in capsys.readouterr().err
    with pytest.raises(ValueError):                             # view valid during the call only
        bytes(cal.views[0])


def test_progress_monitor_exception_cancels_the_build(trt, tiny_model, capsys):
    logger, builder, network = _network(trt, tiny_model)

    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            pass

        def step_complete(self, phase_name, step):
            raise RuntimeError('boom')

        def phase_finish(self, phase_name):
            pass

    config = builder.create_builder_config()
    config.progress_monitor = Monitor()
    assert builder.build_serialized_network(network, config) is None
    assert 'cancelled' in logger.messages[-1][1]
    assert 'Exception caught in step_complete(): RuntimeError: boom' in capsys.readouterr().err


def test_a_raising_logger_does_not_stop_tensorrt(trt, tiny_model, capsys):
    class Loud(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, severity, msg):
            raise ValueError('logger broke')

    builder = trt.Builder(Loud())
    network = builder.create_network(0)
    assert not trt.OnnxParser(network, Loud()).parse_from_file('/nonexistent.onnx')
    assert 'Exception caught in log(): ValueError' in capsys.readouterr().err


def test_host_memory_is_a_buffer_only(trt, tiny_model):
    logger, builder, network = _network(trt, tiny_model)
    plan = builder.build_serialized_network(network, builder.create_builder_config())
    assert plan.nbytes == memoryview(plan).nbytes == len(bytes(plan)) > 0
    assert plan.dtype == trt.DataType.UINT8
    for misuse in (len, lambda p: p[0], list, lambda p: p.decode(), lambda p: p.startswith(b'')):
        with pytest.raises((TypeError, AttributeError)):
            misuse(plan)


@pytest.mark.parametrize('version,warns_implicit,warns_weak', [
    ('8.6.1', False, False), ('10.3.0', True, False), ('10.13.3.9', True, True),
    ('10.16.1.11', True, True)])
def test_deprecation_warnings_follow_the_binding_sources(version, warns_implicit, warns_weak,
                                                         tiny_model):
    trt = DoubleTensorRT(version, Hardware(), HostMemory()).module
    logger, builder, network = _network(trt, tiny_model)
    config = builder.create_builder_config()

    def warned(action):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            action()
        return any(issubclass(w.category, DeprecationWarning) for w in caught)

    assert warned(lambda: network.get_input(0).set_dynamic_range(0.0, 255.0)) == warns_implicit
    assert warned(lambda: setattr(config, 'int8_calibrator', None)) == warns_implicit
    profile = builder.create_optimization_profile()
    dims = trt.Dims([1, 3, 64, 64])
    profile.set_shape('images', dims, dims, dims)
    assert warned(lambda: config.set_calibration_profile(profile)) == warns_implicit
    assert warned(config.get_calibration_profile) == warns_implicit
    assert warned(lambda: network.get_layer(1).set_output_type(0, trt.float16)) == warns_weak
    assert warned(lambda: setattr(network.get_layer(1), 'precision', trt.float16)) == warns_weak
    assert not warned(lambda: builder.platform_has_fast_fp16)   # never warns in Python
    assert not warned(lambda: builder.platform_has_fast_int8)


def test_tensor_addresses_reset_with_null_and_must_be_aligned(trt, host_memory, tiny_model):
    logger, builder, network = _network(trt, tiny_model)
    plan = builder.build_serialized_network(network, builder.create_builder_config())
    engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
    context = engine.create_execution_context()
    ptr = host_memory.malloc(1 << 16)
    assert context.set_tensor_address('images', ptr)
    assert context.get_tensor_address('images') == ptr
    assert context.set_tensor_address('images', 0)               # resets
    assert context.get_tensor_address('images') == 0
    assert not context.set_tensor_address('images', ptr + 4)     # misaligned
    assert 'aligned to 256' in logger.messages[-1][1]
    host_memory.free(ptr)


def test_enums_are_strict_as_pybind11(trt, tiny_model):
    flag = trt.BuilderFlag.INT8
    assert int(flag) == 1 and flag.name == 'INT8' and flag == trt.BuilderFlag.INT8
    assert flag != 1 and flag != trt.DataType.HALF     # no int / cross-enum equality
    with pytest.raises(TypeError):
        flag < 2
    _, builder, network = _network(trt, tiny_model)
    config = builder.create_builder_config()
    with pytest.raises(TypeError, match='incompatible function arguments'):
        config.set_flag(1)                             # an int is not a BuilderFlag
    with pytest.raises(TypeError, match='incompatible function arguments'):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, pool_size=1.5)
    with pytest.raises(TypeError, match='incompatible function arguments'):
        config.set_memory_pool_limit(pool=trt.MemoryPoolType.WORKSPACE, size=1)  # bad keyword
    with pytest.raises(TypeError, match='incompatible function arguments'):
        config.default_device_type = 1


def test_parser_error_code_is_an_error_code(trt, tmp_path):
    bad = tmp_path / 'bad.onnx'
    bad.write_bytes(b'not onnx')
    logger = recording_logger(trt)
    network = trt.Builder(logger).create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert not parser.parse_from_file(str(bad))
    code = parser.get_error(0).code()
    assert isinstance(code, trt.ErrorCode) and code != 6


@pytest.mark.parametrize('version', ['10.3.0', '11.4.0.106'])
def test_inspector_answers_in_the_detailed_json_shape(version, tiny_model):
    """10.x: tensors with "Format/Datatype", "Bindings" a list of names. 11.x (NVIDIA's
    10.x-to-11.x IEngineInspector migration guide): "Format" and "Datatype" split, "I/O
    Tensors" a list of objects."""
    import json

    trt = DoubleTensorRT(version, Hardware(), HostMemory()).module
    logger, builder, network = _network(trt, tiny_model)
    config = builder.create_builder_config()
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    engine = trt.Runtime(logger).deserialize_cuda_engine(
        builder.build_serialized_network(network, config))
    inspector = engine.create_engine_inspector()
    layer = json.loads(inspector.get_layer_information(0, trt.LayerInformationFormat.JSON))
    assert {'Name', 'LayerType', 'Inputs', 'Outputs', 'TacticName'} <= set(layer)
    assert not {'Precision', 'Device'} & set(layer)
    assert layer['Weights']['Type'] == 'Float'          # the stem conv, FP32 build
    info = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    assert 'Layers' in info
    if version.startswith('10.'):
        assert {'Name', 'Dimensions', 'Format/Datatype'} <= set(layer['Outputs'][0])
        assert info['Bindings'] == ['images', 'output'] and 'I/O Tensors' not in info
    else:
        tensor = layer['Outputs'][0]
        assert {'Name', 'Dimensions', 'Format', 'Datatype'} <= set(tensor)
        assert 'Format/Datatype' not in tensor and tensor['Datatype'] == 'Float'
        assert 'Bindings' not in info
        assert [t['Name'] for t in info['I/O Tensors']] == ['images', 'output']
        assert [t['IOMode'] for t in info['I/O Tensors']] == ['Input', 'Output']
        assert info['I/O Tensors'][0]['DataType'] == 'Float'


def test_tensorrt_11_networks_are_strongly_typed(tiny_model):
    trt = DoubleTensorRT('11.4.0.106', Hardware(), HostMemory()).module
    logger, builder, network = _network(trt, tiny_model)
    plan = builder.build_serialized_network(network, builder.create_builder_config())
    assert plan is not None      # FP32 from the ONNX types; no precision flags exist


def test_inspector_keys_are_those_of_a_real_engine(tiny_model):
    """The double's 10.x layer JSON uses only keys a real engine's inspector output has
    (NVIDIA's INT8 ResNet engine in test/trt_api/real_engines), plus StreamId and Metadata
    (in TensorRT 10's documented output, newer than that sample)."""
    import json
    from pathlib import Path

    real = json.loads((Path(__file__).parent / 'trt_api' / 'real_engines' /
                       'resnet-qat-A100.graph.json').read_text())
    layer_keys = {key for layer in real['Layers'] for key in layer} | {'StreamId', 'Metadata'}
    tensor_keys = {key for layer in real['Layers']
                   for tensor in layer['Inputs'] + layer['Outputs'] for key in tensor}
    trt = DoubleTensorRT('10.3.0', Hardware(), HostMemory()).module
    logger, builder, network = _network(trt, tiny_model)
    config = builder.create_builder_config()
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    engine = trt.Runtime(logger).deserialize_cuda_engine(
        builder.build_serialized_network(network, config))
    inspector = engine.create_engine_inspector()
    for index in range(engine.num_layers):
        layer = json.loads(inspector.get_layer_information(
            index, trt.LayerInformationFormat.JSON))
        assert set(layer) <= layer_keys, set(layer) - layer_keys
        for tensor in layer['Inputs'] + layer['Outputs']:
            assert set(tensor) == tensor_keys
        if 'Weights' in layer:
            assert set(layer['Weights']) <= {'Type', 'Count'}
