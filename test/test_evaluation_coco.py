"""COCO evaluator against pycocotools run directly and against hand-computed values."""

import contextlib
import io
from typing import List, Sequence, Tuple

import numpy as np
import pytest

pytest.importorskip('pycocotools')

from tensorrt_yolox_py.evaluation.coco import CocoEvaluator  # noqa: E402
from tensorrt_yolox_py.stages.postprocess import Detections  # noqa: E402

CATS = [{'id': i + 1, 'name': n} for i, n in enumerate(['UNKNOWN', 'CAR', 'TRUCK'])]
Box = Tuple[float, float, float, float]


def _gt(objects: Sequence[Sequence[Tuple[Box, int, int]]]) -> dict:
    """objects[image] = [(xyxy, class id, iscrowd)] -> COCO dict (image ids 1..N)."""
    images, anns = [], []
    for i, objs in enumerate(objects):
        images.append({'id': i + 1, 'width': 640, 'height': 480, 'file_name': f'{i}.png'})
        for (x0, y0, x1, y1), cls, crowd in objs:
            anns.append({'id': len(anns) + 1, 'image_id': i + 1, 'category_id': cls + 1,
                         'bbox': [x0, y0, x1 - x0, y1 - y0], 'area': (x1 - x0) * (y1 - y0),
                         'iscrowd': crowd})
    return {'images': images, 'annotations': anns, 'categories': CATS}


def _dets(items: List[Tuple[Box, float, int]]) -> Detections:
    if not items:
        return Detections.empty()
    return Detections(np.array([b for b, _, _ in items], np.float32),
                      np.array([s for _, s, _ in items], np.float32),
                      np.array([c for _, _, c in items], np.int32))


def _pycocotools(gt: dict, dets: List[List[Tuple[Box, float, int]]]) -> np.ndarray:
    """Reference: pycocotools COCOeval stats on the same data, written out independently."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    results = [{'image_id': i + 1, 'category_id': c + 1, 'score': s,
                'bbox': [b[0], b[1], b[2] - b[0], b[3] - b[1]]}
               for i, per in enumerate(dets) for b, s, c in per]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(results), 'bbox')
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def _evaluate(gt: dict, dets: List[List[Tuple[Box, float, int]]]):
    ev = CocoEvaluator(gt)
    for i, per in enumerate(dets):
        ev.add(i + 1, _dets(per))
    return ev.evaluate()


GT_BOXES = [[((10.0, 20.0, 110.0, 120.0), 1, 0), ((200.0, 50.0, 260.0, 170.0), 2, 0)],
            [((300.0, 300.0, 380.0, 340.0), 1, 0), ((30.0, 200.0, 90.0, 260.0), 0, 0)]]


def test_perfect_detections_score_one() -> None:
    gt = _gt(GT_BOXES)
    dets = [[(box, 0.9, cls) for box, cls, _ in objs] for objs in GT_BOXES]
    res = _evaluate(gt, dets)
    assert res.mAP == pytest.approx(1.0) and res.mAP50 == pytest.approx(1.0)
    assert res.mAP75 == pytest.approx(1.0)
    assert res.per_class_AP50 == pytest.approx({'UNKNOWN': 1.0, 'CAR': 1.0, 'TRUCK': 1.0})
    assert res.num_ground_truths == 4 and res.num_detections == 4
    assert res.mAP == pytest.approx(_pycocotools(gt, dets)[0])


def test_shifted_boxes_give_the_known_value() -> None:
    """A box shifted by 23 px of 100 has IoU 77/123 = 0.626: a match at IoU thresholds
    0.50, 0.55 and 0.60 only, so AP50 = 1 and AP(0.50:0.95) = 3/10."""
    gt = _gt([[((0.0, 0.0, 100.0, 100.0), 1, 0)]])
    dets = [[((23.0, 0.0, 123.0, 100.0), 0.8, 1)]]
    res = _evaluate(gt, dets)
    assert res.mAP50 == pytest.approx(1.0)
    assert res.mAP == pytest.approx(0.3)
    assert res.mAP75 == pytest.approx(0.0)
    stats = _pycocotools(gt, dets)
    assert (res.mAP, res.mAP50, res.mAP75) == pytest.approx(tuple(stats[:3]))


def test_false_positive_ranked_first_gives_two_thirds() -> None:
    """Ranking FP (0.9), TP (0.8), TP (0.7) over two objects: interpolated precision is 2/3
    at every recall up to 1, so AP50 = 2/3."""
    gt = _gt([[((0.0, 0.0, 50.0, 50.0), 1, 0), ((100.0, 100.0, 150.0, 150.0), 1, 0)]])
    dets = [[((300.0, 300.0, 350.0, 350.0), 0.9, 1), ((0.0, 0.0, 50.0, 50.0), 0.8, 1),
             ((100.0, 100.0, 150.0, 150.0), 0.7, 1)]]
    res = _evaluate(gt, dets)
    assert res.mAP50 == pytest.approx(2 / 3, abs=1e-6)
    assert res.mAP50 == pytest.approx(_pycocotools(gt, dets)[1])
    recall, precision = res.pr_curves['CAR']
    assert len(recall) == 101 and precision[0] == pytest.approx(2 / 3)


def test_wrong_class_and_crowd_regions() -> None:
    # wrong class: the CAR box predicted as TRUCK is a miss for CAR and an FP for TRUCK
    gt = _gt([[((0.0, 0.0, 50.0, 50.0), 1, 0)]])
    res = _evaluate(gt, [[((0.0, 0.0, 50.0, 50.0), 0.9, 2)]])
    assert res.mAP50 == 0.0 and res.per_class_AP50['CAR'] == 0.0
    assert res.per_class_AP50['TRUCK'] is None     # no TRUCK ground truth
    # a detection on an iscrowd (ignored) object counts neither way
    gt = _gt([[((0.0, 0.0, 50.0, 50.0), 1, 0), ((200.0, 200.0, 260.0, 260.0), 1, 1)]])
    dets = [[((200.0, 200.0, 260.0, 260.0), 0.95, 1), ((0.0, 0.0, 50.0, 50.0), 0.5, 1)]]
    res = _evaluate(gt, dets)
    assert res.mAP50 == pytest.approx(1.0) and res.num_ground_truths == 1
    assert res.mAP50 == pytest.approx(_pycocotools(gt, dets)[1])


def test_random_case_matches_pycocotools() -> None:
    rng = np.random.default_rng(4)
    objects, dets = [], []
    for _ in range(6):
        objs, per = [], []
        for _ in range(int(rng.integers(1, 6))):
            x, y = rng.uniform(0, 500, 2)
            w, h = rng.uniform(10, 120, 2)
            cls = int(rng.integers(0, 3))
            objs.append(((x, y, x + w, y + h), cls, 0))
            if rng.random() < 0.8:
                jitter = rng.normal(0, 6, 4)
                per.append(((x + jitter[0], y + jitter[1], x + w + jitter[2],
                             y + h + jitter[3]), float(rng.uniform(0.1, 1)), cls))
        for _ in range(int(rng.integers(0, 3))):
            x, y = rng.uniform(0, 500, 2)
            per.append(((x, y, x + 40, y + 40), float(rng.uniform(0.05, 0.9)),
                        int(rng.integers(0, 3))))
        objects.append(objs)
        dets.append(per)
    gt = _gt(objects)
    res = _evaluate(gt, dets)
    stats = _pycocotools(gt, dets)
    assert 0.2 < res.mAP50 < 1.0
    assert (res.mAP, res.mAP50, res.mAP75) == pytest.approx(tuple(stats[:3]), abs=1e-12)


def test_no_detections_and_bad_input() -> None:
    gt = _gt(GT_BOXES)
    ev = CocoEvaluator(gt)
    ev.add(1, Detections.empty())
    res = ev.evaluate()
    assert res.mAP == 0.0 and res.mAP50 == 0.0 and res.num_detections == 0
    with pytest.raises(KeyError, match='image id 9'):
        ev.add(9, Detections.empty())
    with pytest.raises(ValueError, match="no 'categories'"):
        CocoEvaluator({'images': [], 'annotations': []})
