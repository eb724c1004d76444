"""ONNX Runtime static QDQ quantization and calibration images (tensorrt_yolox_py.quantization)."""

import os
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from tensorrt_yolox_py.errors import InputError, ParameterError
from tensorrt_yolox_py.quantization import (calibration_tensors, compute_tensor_ranges,
                                            fingerprint, list_calibration_images,
                                            quantize_static_qdq, weighted_boundary_nodes)
from tensorrt_yolox_py.quantization.static import make_reader
from tensorrt_yolox_py.stages.preprocess import preprocess_cpu

pytest_plugins = ['trt_double.fixtures']

METHODS = ('MinMax', 'Entropy', 'Percentile')


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _inputs(calib_images: Path) -> np.ndarray:
    paths = list_calibration_images(calib_images)
    return np.concatenate(list(calibration_tensors(paths, (64, 64))))


def _qdq_facts(path: Path):
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    conv_weights, conv_biases = {}, {}
    for node in model.graph.node:
        if node.op_type != 'Conv':
            continue
        for slot, store in ((1, conv_weights), (2, conv_biases)):
            if len(node.input) <= slot:
                continue
            name = node.input[slot]
            dq = producers.get(name)
            if dq is not None and dq.op_type == 'DequantizeLinear':
                store[node.name] = (inits[dq.input[0]].dtype,
                                    inits[dq.input[2]] if len(dq.input) > 2 else None)
            else:
                store[node.name] = (inits[name].dtype if name in inits else None, None)
    ops = [n.op_type for n in model.graph.node]
    return model, ops, conv_weights, conv_biases


@pytest.mark.parametrize('method', METHODS)
def test_cpu_qdq_graph_and_accuracy(tmp_path, tiny_model, calib_images, method):
    images = list_calibration_images(calib_images)
    result = quantize_static_qdq(tiny_model, tmp_path / 'q.onnx', images, method,
                                 percentile=99.99, target='cpu')
    model, ops, weights, biases = _qdq_facts(result.output_path)
    assert ops.count('QuantizeLinear') >= 4 and ops.count('DequantizeLinear') >= 8
    assert result.num_images == len(images) == 6 and result.excluded_nodes == []
    # Every Conv: int8 weights and int32 biases behind DequantizeLinear.
    assert set(weights) == set(biases) == {'stem', 'dark2', 'dark3', 'reg_preds', 'obj_preds',
                                           'cls_preds'}
    assert all(dtype == np.int8 for dtype, _ in weights.values())
    assert all(dtype == np.int32 for dtype, _ in biases.values())
    # The quantized model stays close to the float one on the calibration inputs.
    x = _inputs(calib_images)
    ref = np.concatenate([_run(tiny_model, x[i:i + 1]) for i in range(len(x))])
    out = np.concatenate([_run(result.output_path, x[i:i + 1]) for i in range(len(x))])
    scores_err = np.abs(out[..., 4:] - ref[..., 4:]).max()
    reg_err = np.abs(out[..., :4] - ref[..., :4]).max() / np.abs(ref[..., :4]).max()
    assert scores_err < 0.1, scores_err
    assert reg_err < 0.15, reg_err
    assert not np.array_equal(out, ref)  # it really is quantized


def test_tensorrt_target_is_symmetric_int8_with_float_bias(trt, tmp_path, tiny_model,
                                                           calib_images):
    images = list_calibration_images(calib_images)
    trt_q = quantize_static_qdq(tiny_model, tmp_path / 'trt.onnx', images, 'MinMax',
                                target='tensorrt')
    model, ops, weights, biases = _qdq_facts(trt_q.output_path)
    zero_points = [numpy_helper.to_array(i) for i in model.graph.initializer
                   if 'zero_point' in i.name]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)
    assert all(dtype == np.int8 for dtype, _ in weights.values())
    assert all(dtype == np.float32 for dtype, _ in biases.values())  # no int32 DQ for TRT
    # The TensorRT double's parser (symmetric INT8 only) accepts it; the CPU form is refused.
    network = trt.Builder(trt.Logger()).create_network(0)
    assert trt.OnnxParser(network, trt.Logger()).parse_from_file(str(trt_q.output_path))
    cpu_q = quantize_static_qdq(tiny_model, tmp_path / 'cpu.onnx', images, 'MinMax',
                                target='cpu')
    parser = trt.OnnxParser(trt.Builder(trt.Logger()).create_network(0), trt.Logger())
    assert not parser.parse_from_file(str(cpu_q.output_path))
    assert 'symmetric' in parser.get_error(0).desc() or 'INT8' in parser.get_error(0).desc()


def test_first_and_last_layers_stay_float(tmp_path, tiny_model, calib_images):
    images = list_calibration_images(calib_images)
    first, last = weighted_boundary_nodes(onnx.load(str(tiny_model)))
    assert first == ['stem'] and sorted(last) == ['cls_preds', 'obj_preds', 'reg_preds']
    result = quantize_static_qdq(tiny_model, tmp_path / 'q.onnx', images, 'MinMax',
                                 target='tensorrt', quantize_first_layer=False,
                                 quantize_last_layer=False)
    _, _, weights, _ = _qdq_facts(result.output_path)
    assert sorted(result.excluded_nodes) == ['cls_preds', 'obj_preds', 'reg_preds', 'stem']
    for name in result.excluded_nodes:
        assert weights[name][0] == np.float32, name
    assert weights['dark2'][0] == np.int8 and weights['dark3'][0] == np.int8


def test_real_yolox_export_quantizes_every_conv_bias(tmp_path, calib_images):
    export = pytest.importorskip('tensorrt_yolox_py.model.export')
    path = export.export_variant('yolox-tiny-test', str(tmp_path / 'yolox.onnx'), (64, 64))
    images = list_calibration_images(calib_images)
    result = quantize_static_qdq(path, tmp_path / 'q.onnx', images[:3], 'MinMax')
    _, _, weights, biases = _qdq_facts(result.output_path)
    assert len(weights) > 20
    assert all(dtype == np.int8 for dtype, _ in weights.values())
    assert all(dtype == np.int32 for dtype, _ in biases.values())


def test_reader_feeds_the_inference_preprocessing(calib_images):
    images = list_calibration_images(calib_images)
    seen = []
    reader = make_reader(images, 'images', (64, 64), progress=lambda d, t: seen.append((d, t)))
    fed = []
    while (batch := reader.get_next()) is not None:
        fed.append(batch['images'])
    assert len(fed) == len(images) and seen[-1] == (6, 6)
    for tensor, path in zip(fed, images):
        expected, _ = preprocess_cpu(cv2.imread(str(path)), (64, 64))
        np.testing.assert_array_equal(tensor, expected)
    reader.rewind()
    np.testing.assert_array_equal(reader.get_next()['images'], fed[0])


def test_tensor_ranges_minmax_match_the_data(tiny_model, calib_images):
    images = list_calibration_images(calib_images)
    ranges = compute_tensor_ranges(tiny_model, images, 'MinMax')
    x = _inputs(calib_images)
    assert ranges['images'] == pytest.approx((float(x.min()), float(x.max())))
    scores = np.concatenate([_run(tiny_model, x[i:i + 1]) for i in range(len(x))])
    low, high = ranges['output']
    assert low == pytest.approx(float(scores.min()), rel=1e-5)
    assert high == pytest.approx(float(scores.max()), rel=1e-5)
    assert {'stem_out', 'dark2_act_out', 'spp_out'} <= set(ranges)


def test_image_list_file_relative_paths_comments_and_limit(tmp_path, calib_images):
    images = sorted(calib_images.iterdir())
    (tmp_path / 'sub').mkdir()
    listing = tmp_path / 'sub' / 'list.txt'
    rel = Path(os.path.relpath(images[1], listing.parent))
    assert not rel.is_absolute()
    listing.write_text(f'# calibration set\n\n{images[0]}\n{rel}\n{images[2]}\n')
    found = list_calibration_images(listing)
    assert [p.resolve() for p in found] == [images[0], images[1], images[2]]
    assert found[1] == listing.parent / rel
    assert len(list_calibration_images(listing, limit=2)) == 2
    assert list_calibration_images(calib_images, limit=4) == images[:4]


@pytest.mark.parametrize('content, problem', [('', 'names no images'),
                                              ('missing.png\n', 'line 1')])
def test_bad_image_lists_name_the_parameter(tmp_path, content, problem):
    listing = tmp_path / 'list.txt'
    listing.write_text(content)
    with pytest.raises(ParameterError, match=problem) as info:
        list_calibration_images(listing)
    assert info.value.name == 'calibration_image_list_path'
    with pytest.raises(ParameterError, match='does not exist'):
        list_calibration_images(tmp_path / 'nope')
    with pytest.raises(ParameterError, match='needs a list'):
        list_calibration_images('')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ParameterError, match='no .* images'):
        list_calibration_images(tmp_path / 'empty')


def test_unreadable_image_and_fingerprint(tmp_path, calib_images):
    bad = tmp_path / 'bad.png'
    bad.write_bytes(b'not an image')
    with pytest.raises(InputError, match='bad.png'):
        list(calibration_tensors([bad], (64, 64)))
    images = list_calibration_images(calib_images)
    assert fingerprint(images) == fingerprint(list(images))
    assert fingerprint(images) != fingerprint(images[:-1])
    assert fingerprint(images, content=True) != fingerprint(images)
