"""Decode and NMS against hand-computed boxes and a brute-force reference."""

import math

import numpy as np
import pytest

from tensorrt_yolox_py.errors import InputError
from tensorrt_yolox_py.stages.postprocess import (
    batched_nms, Detections, make_anchors, nms, Postprocessor)
from tensorrt_yolox_py.stages.preprocess import compute_letterbox

NUM_CLASSES = 8


def _empty_output(input_hw, num_classes=NUM_CLASSES):
    grid, _ = make_anchors(input_hw)
    return np.zeros((1, grid.shape[0], 5 + num_classes), np.float32)


def test_anchor_count_and_order():
    grid, strides = make_anchors((960, 960))
    assert grid.shape == (18900, 2)
    assert list(np.unique(strides)) == [8, 16, 32]
    # Stride 16 starts after the 120x120 stride-8 anchors, row-major (y, x).
    assert strides[14400] == 16 and tuple(grid[14400 + 61]) == (1, 1)
    assert make_anchors((608, 960))[0].shape[0] == 120 * 76 + 60 * 38 + 30 * 19


def test_decode_hand_computed_box():
    # 64x64 input: 64 stride-8 anchors, then 16 stride-16; cell (gx=1, gy=2) at stride 16
    # has index 64 + 2 * 4 + 1 = 73.
    out = _empty_output((64, 64))
    out[0, 73, :4] = [0.25, 0.5, math.log(2.0), 0.0]
    out[0, 73, 4] = 0.9
    out[0, 73, 5 + 3] = 0.8
    # cx = (0.25 + 1) * 16 = 20, cy = (0.5 + 2) * 16 = 40, w = 32, h = 16
    # -> input box (4, 32, 36, 48); scale 0.5 -> source box (8, 64, 72, 96).
    post = Postprocessor((64, 64), score_threshold=0.3, output_format='raw')
    det = post(out, compute_letterbox(128, 128, 64, 64))
    np.testing.assert_allclose(det.boxes, [[8, 64, 72, 96]], atol=1e-4)
    np.testing.assert_allclose(det.scores, [0.72], atol=1e-6)
    assert det.class_ids.tolist() == [3]
    assert det.boxes.dtype == np.float32 and det.class_ids.dtype == np.int32


def test_boxes_are_clipped_to_the_source_image():
    out = _empty_output((64, 64))
    out[0, 0, :4] = [0.0, 0.0, math.log(4.0), math.log(4.0)]  # centre (0, 0), 32x32 input px
    out[0, 0, 4] = 1.0
    out[0, 0, 5] = 1.0
    det = Postprocessor((64, 64), output_format='raw')(out, compute_letterbox(64, 32, 64, 64))
    np.testing.assert_allclose(det.boxes, [[0, 0, 16, 16]])


def test_decoded_form_gives_the_same_answer_and_auto_detects_it():
    out = _empty_output((64, 64))
    out[0, :, 2:4] = 8.0
    out[0, :, 0] = 32.0
    out[0, :, 1] = 32.0
    out[0, 5, :4] = [20, 40, 32, 16]
    out[0, 5, 4] = 0.9
    out[0, 5, 6] = 0.9
    post = Postprocessor((64, 64), score_threshold=0.5)
    det = post(out, compute_letterbox(64, 64, 64, 64))
    assert post.output_format == 'decoded'
    np.testing.assert_allclose(det.boxes, [[4, 32, 36, 48]])
    assert det.class_ids.tolist() == [1]


def test_no_detection_gives_empty_arrays_not_none():
    det = Postprocessor((64, 64))(_empty_output((64, 64)), compute_letterbox(64, 64, 64, 64))
    assert isinstance(det, Detections) and len(det) == 0
    assert det.boxes.shape == (0, 4) and det.scores.shape == (0,) and det.class_ids.shape == (0,)


def test_max_detections_keeps_the_best():
    out = _empty_output((64, 64))
    out[0, :64, :4] = [0.5, 0.5, 0.0, 0.0]   # 64 disjoint 8x8 boxes on the stride-8 grid
    out[0, :64, 4] = np.linspace(0.5, 1.0, 64)
    out[0, :64, 5] = 1.0
    det = Postprocessor((64, 64), max_detections=5, output_format='raw')(
        out, compute_letterbox(64, 64, 64, 64))
    assert len(det) == 5
    np.testing.assert_allclose(det.scores, np.linspace(0.5, 1.0, 64)[::-1][:5], rtol=1e-6)


def test_wrong_output_shape_and_anchor_count_raise():
    post = Postprocessor((64, 64), output_format='raw')
    lb = compute_letterbox(64, 64, 64, 64)
    with pytest.raises(InputError, match='5\\+C'):
        post(np.zeros((1, 84, 4), np.float32), lb)
    with pytest.raises(InputError, match='anchors'):
        post(np.zeros((1, 80, 13), np.float32), lb)


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _brute_force_nms(boxes, scores, classes, threshold):
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept = []
    for i in order:
        if all(classes[i] != classes[j] or _iou(boxes[i], boxes[j]) <= threshold
               for j in kept):
            kept.append(i)
    return kept


@pytest.mark.parametrize('seed', range(8))
def test_class_aware_nms_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 300
    xy = rng.uniform(0, 200, (n, 2))
    wh = rng.uniform(5, 60, (n, 2))
    boxes = np.concatenate((xy, xy + wh), axis=1)
    scores = rng.uniform(0, 1, n)
    classes = rng.integers(0, 3, n)
    for threshold in (0.3, 0.5, 0.7):
        expected = _brute_force_nms(boxes.tolist(), scores.tolist(), classes.tolist(),
                                    threshold)
        got = batched_nms(boxes, scores, classes, threshold)
        assert got.tolist() == expected


def test_single_class_nms_suppresses_only_above_threshold():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 5], [20, 20, 30, 30]], np.float64)
    scores = np.array([0.9, 0.8, 0.7])
    # IoU(box 0, box 1) = 50 / 100 = 0.5 exactly: suppressed only when 0.5 > threshold.
    assert nms(boxes, scores, 0.5).tolist() == [0, 1, 2]
    assert nms(boxes, scores, 0.49).tolist() == [0, 2]
    assert nms(boxes, scores, 0.51).tolist() == [0, 1, 2]


def test_large_nms_path_matches_the_matrix_path(monkeypatch):
    import tensorrt_yolox_py.stages.postprocess as post

    rng = np.random.default_rng(42)
    xy = rng.uniform(0, 300, (400, 2))
    boxes = np.concatenate((xy, xy + rng.uniform(5, 80, (400, 2))), axis=1)
    scores = rng.uniform(0, 1, 400)
    matrix = nms(boxes, scores, 0.45)
    monkeypatch.setattr(post, 'NMS_MATRIX_LIMIT', 10)
    walked = nms(boxes, scores, 0.45)
    assert walked.tolist() == matrix.tolist()
    assert nms(boxes, scores, 0.45, max_keep=7).tolist() == matrix[:7].tolist()


@pytest.mark.parametrize('forced, looks', [('decoded', 'raw'), ('raw', 'decoded')])
def test_forced_output_format_that_contradicts_the_output_warns_once(caplog, forced, looks):
    raw = _empty_output((64, 64))  # raw offsets: column 0 near 0
    decoded = _empty_output((64, 64))
    decoded[0, :, 0] = 32.0  # decoded centres: half the input size
    out = raw if looks == 'raw' else decoded
    post = Postprocessor((64, 64), output_format=forced)
    with caplog.at_level('WARNING', logger='tensorrt_yolox_py.stages.postprocess'):
        post(out, compute_letterbox(64, 64, 64, 64))
        post(out, compute_letterbox(64, 64, 64, 64))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == 'WARNING']
    assert len(warnings) == 1, warnings
    assert f"output_format is '{forced}' but the model output looks '{looks}'" in warnings[0]
    assert post.output_format == forced  # a warning, not a silent override


@pytest.mark.parametrize('forced', ['raw', 'decoded'])
def test_forced_output_format_that_matches_the_output_is_silent(caplog, forced):
    out = _empty_output((64, 64))
    if forced == 'decoded':
        out[0, :, 0] = 32.0
    with caplog.at_level('WARNING', logger='tensorrt_yolox_py.stages.postprocess'):
        Postprocessor((64, 64), output_format=forced)(out, compute_letterbox(64, 64, 64, 64))
    assert not [r for r in caplog.records if r.levelname == 'WARNING']
