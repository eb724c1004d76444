"""Models for strongly typed TensorRT 11 networks (tensorrt_yolox_py.quantization.strongly_typed).

The ONNX Runtime quantizer + onnxconverter-common path always runs (CI); the ModelOpt path runs
where its environment exists (scripts/setup_modelopt.sh) and skips with the reason elsewhere.
Every model is checked against the float32 model by ONNX Runtime on the CPU, and its types,
Q/DQ scales and excluded layers are read back from the file.
"""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from needs import qdq_from_ranges  # noqa: E402
from onnx import helper, numpy_helper, TensorProto

from tensorrt_yolox_py.errors import MissingDependencyError, ModelContractError, ParameterError
from tensorrt_yolox_py.quantization import list_calibration_images, weighted_boundary_nodes
from tensorrt_yolox_py.quantization.images import calibration_tensors
from tensorrt_yolox_py.quantization.clip import clip_ranges
from tensorrt_yolox_py.quantization.strongly_typed import (convert_fp16,
                                                           describe_typed_model, ENV_PYTHON,
                                                           modelopt_status, quantize_int8_qdq)

pytest_plugins = ['trt_double.fixtures']

HW = (64, 64)
TINY_CONVS = {'stem', 'dark2', 'dark3', 'reg_preds', 'obj_preds', 'cls_preds'}
MODELOPT, MODELOPT_WHY = modelopt_status()
needs_modelopt = pytest.mark.skipif(MODELOPT is None, reason=f'ModelOpt: {MODELOPT_WHY}')


def _session(path: Path) -> ort.InferenceSession:
    # Basic optimisations: ONNX Runtime's extended QDQ fusions (QLinearConcat) reject float16
    # scales; a strongly typed model is meant for TensorRT, here it is run as written.
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])


def _outputs(path: Path, x: np.ndarray) -> np.ndarray:
    session = _session(path)
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])


def _inputs(calib_images: Path, hw=HW) -> np.ndarray:
    return np.concatenate(list(calibration_tensors(list_calibration_images(calib_images), hw)))


def _resize_params(model) -> set:
    return {n for node in model.graph.node if node.op_type == 'Resize'
            for n in node.input[1:3] if n}


def _assert_typed(path: Path, allow_float32=()) -> dict:
    """Float32 I/O, every other float initializer float16, a valid model ONNX Runtime runs."""
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    facts = describe_typed_model(path)
    assert set(facts['inputs'].values()) == {'float32'}
    assert set(facts['outputs'].values()) == {'float32'}
    allowed = _resize_params(model) | set(allow_float32)     # ONNX: Resize scales are float
    wrong = {n: t for n, t in facts['float_initializers'].items()
             if t != 'float16' and n not in allowed}
    assert not wrong, wrong
    return facts


def _close(path: Path, reference: Path, x: np.ndarray, score_tol: float, reg_tol: float):
    ref, out = _outputs(reference, x), _outputs(path, x)
    assert out.dtype == np.float32 and out.shape == ref.shape and np.isfinite(out).all()
    scores = np.abs(out[..., 4:] - ref[..., 4:]).max()
    reg = np.abs(out[..., :4] - ref[..., :4]).max() / np.abs(ref[..., :4]).max()
    assert scores < score_tol and reg < reg_tol, (scores, reg)
    return scores, reg


def _quantized_weights(path: Path) -> dict:
    """{weighted node: dtype of the weight it reads through DequantizeLinear, or its own}."""
    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    kinds = {}
    for node in model.graph.node:
        if node.op_type != 'Conv':
            continue
        source = producers.get(node.input[1])
        while source is not None and source.op_type == 'Cast':
            source = producers.get(source.input[0])
        if source is not None and source.op_type == 'DequantizeLinear':
            kinds[node.name] = 'qdq'
        elif node.input[1] in inits:
            kinds[node.name] = str(numpy_helper.to_array(inits[node.input[1]]).dtype)
        else:
            kinds[node.name] = 'computed'
    return kinds


# ------------------------------------------------------------------------------------- FP16
def test_fp16_by_onnxconverter_common(tmp_path, tiny_model, calib_images):
    result = convert_fp16(tiny_model, tmp_path / 'fp16.onnx', tool='onnxruntime')
    assert result.precision == 'fp16' and result.method == '' and result.num_images == 0
    assert result.tool.startswith('onnxconverter-common ') and result.excluded_nodes == []
    facts = _assert_typed(result.output_path)
    assert set(facts['float_initializers'].values()) == {'float16'}
    assert facts['float32_nodes'] == []
    _close(result.output_path, tiny_model, _inputs(calib_images), 0.01, 0.01)
    assert not np.array_equal(_outputs(result.output_path, _inputs(calib_images)),
                              _outputs(tiny_model, _inputs(calib_images)))


def test_fp16_without_io_types_has_float16_io(tmp_path, tiny_model):
    result = convert_fp16(tiny_model, tmp_path / 'fp16io.onnx', keep_io_types=False,
                          tool='onnxruntime')
    facts = describe_typed_model(result.output_path)
    assert set(facts['inputs'].values()) == {'float16'}
    assert set(facts['outputs'].values()) == {'float16'}


def test_fp16_of_a_real_yolox_keeps_resize_scales_float32(tmp_path, calib_images):
    pytest.importorskip('torch')   # the export builds the PyTorch model
    export = pytest.importorskip('tensorrt_yolox_py.devkit.export')
    path = export.export_variant('yolox-tiny-test', str(tmp_path / 'yolox.onnx'), HW)
    result = convert_fp16(path, tmp_path / 'fp16.onnx', tool='onnxruntime')
    model = onnx.load(str(result.output_path))
    resize = [n for n in model.graph.node if n.op_type == 'Resize']
    assert resize, 'the PAFPN upsamples through Resize'
    facts = _assert_typed(result.output_path)
    assert facts['float32_nodes'] == []        # Resize itself runs in float16
    _close(result.output_path, Path(path), _inputs(calib_images), 0.01, 0.01)


@needs_modelopt
def test_fp16_by_modelopt_autocast(tmp_path, tiny_model, calib_images):
    result = convert_fp16(tiny_model, tmp_path / 'autocast.onnx', tool='modelopt')
    assert 'AutoCast' in result.tool and result.tool.startswith('modelopt ')
    facts = _assert_typed(result.output_path)
    kept = set(facts['float32_nodes'])
    assert all(name in ' '.join(result.notes) for name in kept)   # every float32 node named
    _close(result.output_path, tiny_model, _inputs(calib_images), 0.01, 0.01)


# ------------------------------------------------------------------------------------- INT8
@qdq_from_ranges
def test_int8_fallback_qdq_plus_fp16(tmp_path, tiny_model, calib_images):
    images = list_calibration_images(calib_images)
    result = quantize_int8_qdq(tiny_model, tmp_path / 'int8.onnx', images, 'MinMax',
                               tool='onnxruntime')
    assert (result.precision, result.method, result.num_images) == ('int8', 'MinMax', 6)
    assert result.tool.startswith('onnxruntime ') and 'onnxconverter-common' in result.tool
    assert result.excluded_nodes == []
    facts = _assert_typed(result.output_path)
    assert facts['opset'] >= 19                # float16 Q/DQ scales
    assert set(facts['quantized_weighted_nodes']) == TINY_CONVS
    assert facts['float_weighted_nodes'] == []
    model = onnx.load(str(result.output_path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in ('QuantizeLinear', 'DequantizeLinear'):
            assert inits[node.input[1]].dtype == np.float16, node.name      # scale
            zero = inits[node.input[2]]
            assert zero.dtype == np.int8 and not zero.any(), node.name    # symmetric int8
    # The quantized model stays close to the float one; it is not the float16 model.
    _close(result.output_path, tiny_model, _inputs(calib_images), 0.1, 0.15)
    fp16 = convert_fp16(tiny_model, tmp_path / 'fp16.onnx', tool='onnxruntime').output_path
    assert not np.array_equal(_outputs(result.output_path, _inputs(calib_images)),
                              _outputs(fp16, _inputs(calib_images)))


@qdq_from_ranges
def test_int8_first_and_last_layers_stay_fp16(tmp_path, tiny_model, calib_images):
    images = list_calibration_images(calib_images)
    first, last = weighted_boundary_nodes(onnx.load(str(tiny_model)))
    result = quantize_int8_qdq(tiny_model, tmp_path / 'int8.onnx', images, 'Entropy',
                               fp16_first_layer=True, fp16_last_layer=True,
                               tool='onnxruntime')
    # the last convs and every node after them (the head's Sigmoid / Concat / Transpose)
    model = onnx.load(str(tiny_model))
    after = {n.name for n in model.graph.node} - {'stem', 'stem_act', 'dark2', 'dark2_act',
                                                  'dark3', 'dark3_act', 'spp'}
    assert set(last) < after and len(after) > len(last)
    assert sorted(result.excluded_nodes) == sorted(set(first) | after)
    facts = describe_typed_model(result.output_path)
    quantized_inputs = {k for k in facts['activation_scales']}
    head_tensors = {o for n in model.graph.node if n.name in after for o in n.output}
    assert not quantized_inputs & head_tensors     # nothing after the head is requantized
    kinds = _quantized_weights(result.output_path)
    for name in first + last:
        assert kinds[name] == 'float16', (name, kinds[name])
    assert kinds['dark2'] == kinds['dark3'] == 'qdq'
    only_first = quantize_int8_qdq(tiny_model, tmp_path / 'first.onnx', images, 'MinMax',
                                   fp16_first_layer=True, tool='onnxruntime')
    assert only_first.excluded_nodes == ['stem']
    assert _quantized_weights(only_first.output_path)['cls_preds'] == 'qdq'


@qdq_from_ranges
def test_clip_recipe_has_fixed_scales_and_needs_no_images(tmp_path, tiny_model,
                                                          calib_images):
    result = quantize_int8_qdq(tiny_model, tmp_path / 'clip.onnx', [], clip_value=4.0)
    assert (result.method, result.num_images) == ('clip', 0)
    assert 'fixed' in ' '.join(result.notes) + result.tool
    facts = _assert_typed(result.output_path)
    scales = facts['activation_scales']
    model = onnx.load(str(result.output_path))
    # the float input is cast to float16, then quantized with (0, 255): 255 / 127
    input_scales = {v for k, v in scales.items() if k.startswith('images')}
    assert input_scales == {float(np.float16(255.0 / 127.0))}
    others = {k: v for k, v in scales.items() if not k.startswith('images')}
    assert len(others) >= 6
    assert set(others.values()) == {float(np.float16(4.0 / 127.0))}, others
    assert facts['opset'] >= 19 and 'QuantizeLinear' in facts['op_counts']
    del model
    x = _inputs(calib_images)
    out = _outputs(result.output_path, x)
    assert np.isfinite(out).all() and out.shape == _outputs(tiny_model, x).shape


@qdq_from_ranges
def test_legacy_percentile_takes_the_onnxruntime_path(tmp_path, tiny_model, calib_images):
    images = list_calibration_images(calib_images)
    result = quantize_int8_qdq(tiny_model, tmp_path / 'legacy.onnx', images, 'legacy',
                               percentile=99.99)
    assert result.method == 'Legacy' and result.tool.startswith('onnxruntime ')
    assert any('percentile' in note for note in result.notes)
    _assert_typed(result.output_path)
    _close(result.output_path, tiny_model, _inputs(calib_images), 0.15, 0.2)


@qdq_from_ranges
def test_auto_falls_back_when_modelopt_is_missing_or_broken(tmp_path, tiny_model,
                                                            calib_images, monkeypatch):
    images = list_calibration_images(calib_images)
    monkeypatch.setenv(ENV_PYTHON, str(tmp_path / 'no-such-python'))
    result = quantize_int8_qdq(tiny_model, tmp_path / 'a.onnx', images[:2], 'MinMax')
    assert result.tool.startswith('onnxruntime ')
    assert any('ModelOpt not used' in n and 'no-such-python' in n for n in result.notes)
    with pytest.raises(MissingDependencyError, match='ModelOpt'):
        quantize_int8_qdq(tiny_model, tmp_path / 'b.onnx', images[:2], tool='modelopt')
    with pytest.raises(MissingDependencyError, match='ModelOpt'):
        convert_fp16(tiny_model, tmp_path / 'c.onnx', tool='modelopt')
    fp16 = convert_fp16(tiny_model, tmp_path / 'd.onnx')
    assert fp16.tool.startswith('onnxconverter-common') and 'AutoCast not used' in fp16.notes[0]
    # A Python without ModelOpt: the worker answers with the import error, auto falls back.
    import sys

    monkeypatch.setenv(ENV_PYTHON, sys.executable)
    if 'modelopt' in sys.modules or _has_modelopt():
        pytest.skip('this Python has ModelOpt')
    result = quantize_int8_qdq(tiny_model, tmp_path / 'e.onnx', images[:2], 'Entropy')
    assert result.tool.startswith('onnxruntime ')
    assert any('ModuleNotFoundError' in n for n in result.notes), result.notes


def _has_modelopt() -> bool:
    import importlib.util

    return importlib.util.find_spec('modelopt') is not None


@pytest.mark.parametrize('kwargs, error, match', [
    ({'images': []}, ParameterError, 'calibration_image_list_path'),
    ({'method': 'Median'}, ParameterError, 'calibration_algorithm'),
    ({'clip_value': -1.0}, ParameterError, 'clip_value'),
    ({'clip_value': float('nan')}, ParameterError, 'clip_value'),
    ({'method': 'Legacy', 'percentile': 0.0}, ParameterError, 'percentile'),
    ({'method': 'Legacy', 'tool': 'modelopt'}, ParameterError, 'tool'),
    ({'tool': 'tensorrt'}, ParameterError, 'tool'),
])
def test_bad_arguments_raise_named_errors(tmp_path, tiny_model, calib_images, kwargs, error,
                                          match):
    images = kwargs.pop('images', list_calibration_images(calib_images))
    with pytest.raises(error, match=match):
        quantize_int8_qdq(tiny_model, tmp_path / 'x.onnx', images, **kwargs)
    assert not (tmp_path / 'x.onnx').exists()


def test_unreadable_or_wrong_models_raise_model_contract_errors(tmp_path, calib_images):
    images = list_calibration_images(calib_images)
    garbage = tmp_path / 'garbage.onnx'
    garbage.write_bytes(b'not an onnx model')
    for call in (lambda p: convert_fp16(p, tmp_path / 'o.onnx'),
                 lambda p: quantize_int8_qdq(p, tmp_path / 'o.onnx', images)):
        with pytest.raises(ModelContractError, match='not a readable ONNX model'):
            call(garbage)
        with pytest.raises(ModelContractError):
            call(tmp_path / 'missing.onnx')
    assert not (tmp_path / 'o.onnx').exists()


# --------------------------------------------------------------------------------- ModelOpt
@needs_modelopt
@pytest.mark.parametrize('method', ['MinMax', 'Entropy'])
def test_modelopt_int8(tmp_path, tiny_model, calib_images, method):
    images = list_calibration_images(calib_images)
    result = quantize_int8_qdq(tiny_model, tmp_path / 'mo.onnx', images, method,
                               fp16_last_layer=True, tool='modelopt')
    assert result.tool.startswith('modelopt ') and result.method == method
    assert {'cls_preds', 'obj_preds', 'reg_preds'} < set(result.excluded_nodes)
    facts = _assert_typed(result.output_path)
    kinds = _quantized_weights(result.output_path)
    for name in {'cls_preds', 'obj_preds', 'reg_preds'}:
        assert kinds[name] == 'float16', (name, kinds[name])
    assert facts['quantized_weighted_nodes'], 'ModelOpt quantized nothing'
    own = set(facts['float_weighted_nodes']) - set(result.excluded_nodes)
    if own:                                   # ModelOpt's own exclusions are reported
        assert all(name in ' '.join(result.notes) for name in own)
    model = onnx.load(str(result.output_path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == 'QuantizeLinear' and len(node.input) > 2 and node.input[2]:
            assert inits[node.input[2]].dtype == np.int8 and not inits[node.input[2]].any()
    _close(result.output_path, tiny_model, _inputs(calib_images), 0.15, 0.2)


def test_clip_ranges_residual_sums():
    nodes = [helper.make_node('Relu', ['x'], ['a'], name='a'),
             helper.make_node('Relu', ['x'], ['b'], name='b'),
             helper.make_node('Add', ['a', 'b'], ['c'], name='c'),
             helper.make_node('Concat', ['a', 'c'], ['d'], name='d', axis=1),
             helper.make_node('Mul', ['d', 'd'], ['e'], name='e')]
    graph = helper.make_graph(nodes, 'g', [helper.make_tensor_value_info(
        'x', TensorProto.FLOAT, [1, 1])], [helper.make_tensor_value_info(
            'e', TensorProto.FLOAT, [1, 2])])
    model = helper.make_model(graph)
    plain = clip_ranges(model, 6.0)
    assert plain == {'x': (0.0, 255.0), 'a': (0.0, 6.0), 'b': (0.0, 6.0), 'c': (0.0, 6.0),
                     'd': (0.0, 6.0), 'e': (0.0, 6.0)}
    sums = clip_ranges(model, 6.0, residual_sums=True)
    assert sums['c'] == (0.0, 12.0) and sums['d'] == (0.0, 12.0)   # sum, then union
    assert sums['a'] == (0.0, 6.0) and sums['e'] == (0.0, 6.0)     # unknown op: (0, clip)


def test_modelopt_exclusions_match_exact_node_names_only():
    """ModelOpt reads nodes_to_exclude as regular expressions matched at the start of a node
    name (re.match): a raw 'Conv_1' also excludes 'Conv_10', '.' matches any character."""
    import importlib.util
    import re

    from tensorrt_yolox_py.quantization.strongly_typed import WORKER as path
    spec = importlib.util.spec_from_file_location('modelopt_worker', path)
    worker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker)
    wanted = ['Conv_1', '/head/cls_preds.0/Conv']
    nodes = ['Conv_1', 'Conv_10', '/head/cls_preds.0/Conv', '/head/cls_predsX0/Conv',
             '/head/cls_preds.0/Conv_1']

    def excluded(patterns):
        return [n for n in nodes if any(re.match(p, n) for p in patterns)]

    assert excluded(wanted) != wanted                  # the prefix / regex trap
    assert excluded(worker.exact_patterns(wanted)) == wanted


def test_converter_tool_names_a_copy_without_package_metadata(monkeypatch):
    """A converter importable without its dist-info (a vendored copy) still names its version."""
    import importlib.metadata as metadata

    converter = pytest.importorskip('onnxconverter_common')
    from tensorrt_yolox_py.quantization import strongly_typed

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, 'version', missing)
    expected = getattr(converter, '__version__', 'unknown')
    assert strongly_typed._converter_tool() == f'onnxconverter-common {expected} float16'
