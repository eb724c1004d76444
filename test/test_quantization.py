"""ONNX Runtime static QDQ quantization and calibration images (tensorrt_yolox_py.quantization)."""

import os
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from needs import qdq_from_ranges  # noqa: E402
from onnx import numpy_helper

from tensorrt_yolox_py.errors import InputError, ParameterError
from tensorrt_yolox_py.quantization import (calibration_tensors, compute_tensor_ranges,
                                            fingerprint, list_calibration_images,
                                            quantize_static_qdq, weighted_boundary_nodes)
from tensorrt_yolox_py.quantization import calibrate
from tensorrt_yolox_py.quantization.static import HISTOGRAMS
from tensorrt_yolox_py.quantization.streaming import (ENTROPY_2048, ENTROPY_ORT_DEFAULT,
                                                      PERCENTILE_ORT_DEFAULT, HistogramSpec,
                                                      StreamingCalibration)

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


@qdq_from_ranges
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
    assert np.isfinite(out).all()
    if method != 'Entropy':
        # Entropy (2048-bin histogram, as TensorRT's) clips tails (the calibration study's
        # finding; here too: its ranges are tested against ONNX Runtime's instead).
        assert scores_err < 0.1, scores_err
        assert reg_err < 0.15, reg_err
    assert not np.array_equal(out, ref)  # it really is quantized


@qdq_from_ranges
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


@qdq_from_ranges
def test_first_and_last_layers_stay_float(tmp_path, tiny_model, calib_images):
    images = list_calibration_images(calib_images)
    first, last = weighted_boundary_nodes(onnx.load(str(tiny_model)))
    assert first == ['stem'] and sorted(last) == ['cls_preds', 'obj_preds', 'reg_preds']
    result = quantize_static_qdq(tiny_model, tmp_path / 'q.onnx', images, 'MinMax',
                                 target='tensorrt', exclude_first_layer=True,
                                 exclude_last_layer=True)
    _, _, weights, _ = _qdq_facts(result.output_path)
    assert sorted(result.excluded_nodes) == ['cls_preds', 'obj_preds', 'reg_preds', 'stem']
    for name in result.excluded_nodes:
        assert weights[name][0] == np.float32, name
    assert weights['dark2'][0] == np.int8 and weights['dark3'][0] == np.int8


@qdq_from_ranges
def test_real_yolox_export_quantizes_every_conv_bias(tmp_path, calib_images):
    pytest.importorskip('torch')   # the export builds the PyTorch model
    export = pytest.importorskip('tensorrt_yolox_py.devkit.export')
    path = export.export_variant('yolox-tiny-test', str(tmp_path / 'yolox.onnx'), (64, 64))
    images = list_calibration_images(calib_images)
    result = quantize_static_qdq(path, tmp_path / 'q.onnx', images[:3], 'MinMax')
    _, _, weights, biases = _qdq_facts(result.output_path)
    assert len(weights) > 20
    assert all(dtype == np.int8 for dtype, _ in weights.values())
    assert all(dtype == np.int32 for dtype, _ in biases.values())


class _Reader:
    """ONNX Runtime CalibrationDataReader over fixed tensors (the one-shot reference)."""

    def __init__(self, tensors):
        self._it = iter(tensors)

    def get_next(self):
        tensor = next(self._it, None)
        return None if tensor is None else {'images': tensor}


def _ort_one_shot(model: Path, tensors, method: str, work: Path, **extra):
    """Ranges from ONNX Runtime's own calibrator holding every image in memory."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

    calibrator = create_calibrator(model, None, str(work / f'aug_{method}.onnx'),
                                   calibrate_method=getattr(CalibrationMethod, method),
                                   extra_options=extra)
    calibrator.collect_data(_Reader(tensors))
    return {name: tuple(float(np.ravel(v)[0]) for v in value.range_value)
            for name, value in calibrator.compute_data().data.items()}


def _assert_close(got, ref, tol):
    assert set(got) == set(ref)
    for name, (low, high) in ref.items():
        scale = max(abs(low), abs(high), 1e-6)
        assert abs(got[name][0] - low) <= tol * scale, (name, got[name], ref[name])
        assert abs(got[name][1] - high) <= tol * scale, (name, got[name], ref[name])


def _flat(data):
    return {name: tuple(float(np.ravel(v)[0]) for v in value.range_value)
            for name, value in data.data.items()}


#: A non-degenerate entropy histogram that is quick to search (2048 bins take ~1 s per tensor).
ENTROPY_512 = HistogramSpec('entropy', False, 512, 128)


@pytest.mark.parametrize('chunks', [(1, 1, 1, 1, 1, 1), (2, 4)])
def test_streaming_calibration_equals_onnxruntime_one_shot(tmp_path, tiny_model, calib_images,
                                                           chunks):
    """Chunked passes give exactly the ranges ONNX Runtime computes over all images at once."""
    tensors = list(calibration_tensors(list_calibration_images(calib_images), (64, 64)))
    stream = StreamingCalibration(tiny_model, tmp_path, [2, 6], {
        'E128': ENTROPY_ORT_DEFAULT, 'E512': ENTROPY_512, 'P': PERCENTILE_ORT_DEFAULT},
        optimize=False)
    for feed in (stream.observe, stream.collect):
        start = 0
        for size in chunks:
            feed(tensors[start:start + size])
            start += size
    for n in (2, 6):
        ours = stream.ranges(n, [99.99, 99.9999])
        ref = {'MinMax': _ort_one_shot(tiny_model, tensors[:n], 'MinMax', tmp_path),
               'E128': _ort_one_shot(tiny_model, tensors[:n], 'Entropy', tmp_path),
               'E512': _ort_one_shot(tiny_model, tensors[:n], 'Entropy', tmp_path,
                                     num_bins=512),
               'Percentile 99.99': _ort_one_shot(tiny_model, tensors[:n], 'Percentile',
                                                 tmp_path, percentile=99.99),
               'Percentile 99.9999': _ort_one_shot(tiny_model, tensors[:n], 'Percentile',
                                                   tmp_path, percentile=99.9999)}
        for key, expected in ref.items():
            assert _flat(ours[key]) == expected, (n, key)
        # ONNX Runtime's default Entropy (128 of 128 bins) has one candidate: MinMax's range.
        assert ref['E128'] == ref['MinMax']
        assert ref['E512'] != ref['MinMax']
    with pytest.raises(RuntimeError, match='pass 1 has not seen 3'):
        stream.ranges(3)


def test_optimized_sessions_stay_within_rounding_of_onnxruntime(
        tmp_path, tiny_model, calib_images):
    """The default (optimised graph, ~2x faster) matches ORT to float rounding / one bin."""
    images = list_calibration_images(calib_images)
    tensors = list(calibration_tensors(images, (64, 64)))
    stream = StreamingCalibration(tiny_model, tmp_path, [6], {'P': PERCENTILE_ORT_DEFAULT})
    assert stream.optimize
    stream.observe(tensors)
    stream.collect(tensors)
    ours = stream.ranges(6, [99.99])
    for key, method, extra in (('MinMax', 'MinMax', {}),
                               ('Percentile 99.99', 'Percentile', {'percentile': 99.99})):
        # MinMax: float rounding; percentile: at most one of 2048 histogram bins
        _assert_close(_flat(ours[key]), _ort_one_shot(tiny_model, tensors, method, tmp_path,
                                                      **extra),
                      1e-5 if key == 'MinMax' else 1.0 / 2048)


@qdq_from_ranges
def test_calibrate_uses_every_image_where_onnxruntime_drops_some(tmp_path, tiny_model):
    """Regression: ORT 1.32's max_intermediate_outputs drops the images of full batches.

    16 images, the black and white extremes first: with that option MinMax raised 'No data
    is collected'; with 20 it saw only the last 4. Every image counts here, in every method.
    """
    folder = tmp_path / 'imgs'
    folder.mkdir()
    cv2.imwrite(str(folder / 'black.png'), np.zeros((48, 80, 3), np.uint8))
    cv2.imwrite(str(folder / 'white.png'), np.full((48, 80, 3), 255, np.uint8))
    cv2.imwrite(str(folder / 'gray.png'), np.full((48, 80, 3), 100, np.uint8))
    for count in (16, 20):
        listing = tmp_path / f'list{count}.txt'
        listing.write_text('black.png\nwhite.png\n' + 'gray.png\n' * (count - 2))
        listing.rename(folder / listing.name)
        images = list_calibration_images(folder / listing.name)
        assert len(images) == count
        seen = []
        data = calibrate(tiny_model, images, 'MinMax', progress=lambda d, t: seen.append((d, t)))
        assert _flat(data)['images'] == (0.0, 255.0)
        assert seen[-1] == (count, count)
        seen.clear()
        data = calibrate(tiny_model, images, 'Percentile', progress=lambda d, t: seen.append(
            (d, t)))
        assert seen[-1] == (2 * count, 2 * count)   # two passes
        assert _flat(data)['images'][1] > 250   # the white image counted (gray: 100, pad: 114)
        assert compute_tensor_ranges(tiny_model, images, 'MinMax')['images'] == (0.0, 255.0)
    result = quantize_static_qdq(tiny_model, tmp_path / 'q.onnx', images, 'MinMax')
    assert result.num_images == 20 and result.output_path.is_file()


def test_package_methods_and_their_histograms(tmp_path, tiny_model, calib_images):
    """Entropy means TensorRT's 2048-bin histogram; Legacy / Percentile ONNX Runtime's."""
    assert HISTOGRAMS == {'Entropy': ENTROPY_2048, 'Percentile': PERCENTILE_ORT_DEFAULT}
    assert ENTROPY_2048.num_bins == 2048 and ENTROPY_2048.num_quantized_bins == 128
    images = list_calibration_images(calib_images)
    tensors = list(calibration_tensors(images, (64, 64)))
    percent = _flat(calibrate(tiny_model, images, 'Legacy', percentile=99.9, work=tmp_path))
    _assert_close(percent, _ort_one_shot(tiny_model, tensors, 'Percentile', tmp_path,
                                         percentile=99.9), 1.0 / 2048)
    with pytest.raises(ParameterError, match='no calibration images'):
        calibrate(tiny_model, [], 'MinMax')
    with pytest.raises(ParameterError, match='unknown calibration method'):
        calibrate(tiny_model, images, 'KL')


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
