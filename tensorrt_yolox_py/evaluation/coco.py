"""COCO detection metrics through pycocotools: mAP, mAP50, mAP75, per-class AP, PR curves.

Contract:

- Ground truth is a COCO dict (``images``, ``annotations`` with ``bbox`` [x, y, w, h] in
  pixels, ``iscrowd`` 0/1, ``categories``); category id = class id + 1 (``devkit.dataset``).
  ``iscrowd: 1`` annotations are ignore regions: detections on them count neither as true
  nor as false positives (pycocotools semantics).
- Detections are added per image as ``stages.postprocess.Detections`` (xyxy source pixels,
  scores, 0-based class ids) with ``CocoEvaluator.add(image_id, detections)``.
- ``evaluate()`` runs ``pycocotools.cocoeval.COCOeval`` ('bbox', standard parameters: IoU
  0.50:0.05:0.95, 101 recall points, maxDets 100) and returns a ``CocoResult``: mAP (= AP at
  IoU .50:.95), mAP50, mAP75, AP small / medium / large, per-class AP and AP50 (None for a
  class without ground truth), the precision-recall curve of each class at IoU 0.5, and counts.
  Nothing here computes AP by hand: every number is read from COCOeval's arrays.
"""

import contextlib
import io
import logging
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from .._lazy import require

LOG = logging.getLogger(__name__)


@dataclass
class CocoResult:
    """Metrics of one evaluation (see the module contract)."""

    mAP: float
    mAP50: float
    mAP75: float
    AP_small: Optional[float]
    AP_medium: Optional[float]
    AP_large: Optional[float]
    per_class_AP: Dict[str, Optional[float]]
    per_class_AP50: Dict[str, Optional[float]]
    num_images: int
    num_ground_truths: int
    num_detections: int
    #: class name -> (recall points, precision at IoU 0.5), for PR plots.
    pr_curves: Dict[str, List[List[float]]] = field(default_factory=dict)

    def to_dict(self, with_curves: bool = False) -> Dict[str, object]:
        """Return a JSON-friendly dict (the PR curves only when asked)."""
        out = asdict(self)
        if not with_curves:
            out.pop('pr_curves')
        return out


def _nan_to_none(value: float) -> Optional[float]:
    return None if value is None or not np.isfinite(value) or value < 0 else float(value)


class CocoEvaluator:
    """Accumulate detections per image, then score them against COCO ground truth."""

    def __init__(self, ground_truth: Mapping[str, object]) -> None:
        for key in ('images', 'annotations', 'categories'):
            if key not in ground_truth:
                raise ValueError(f"ground truth is not a COCO detection dict (no '{key}')")
        self.gt = ground_truth
        self.categories = sorted(ground_truth['categories'], key=lambda c: c['id'])
        self.image_ids = {int(img['id']) for img in ground_truth['images']}
        self.detections: List[Dict[str, object]] = []
        self.evaluated_images: set = set()

    def add(self, image_id: int, detections, class_offset: int = 1) -> None:
        """Add one image's ``Detections``; category id = class id + ``class_offset``."""
        image_id = int(image_id)
        if image_id not in self.image_ids:
            raise KeyError(f'image id {image_id} is not in the ground truth')
        self.evaluated_images.add(image_id)
        boxes = np.asarray(detections.boxes, np.float64).reshape(-1, 4)
        for box, score, cls in zip(boxes, np.asarray(detections.scores).reshape(-1),
                                   np.asarray(detections.class_ids).reshape(-1)):
            self.detections.append({
                'image_id': image_id, 'category_id': int(cls) + class_offset,
                'bbox': [float(box[0]), float(box[1]), float(box[2] - box[0]),
                         float(box[3] - box[1])],
                'score': float(score)})

    def evaluate(self, image_ids: Optional[Sequence[int]] = None) -> CocoResult:
        """Run COCOeval over the evaluated images (or ``image_ids``); see the contract."""
        coco_mod = require('pycocotools.coco', 'COCO evaluation', 'pip install pycocotools')
        eval_mod = require('pycocotools.cocoeval', 'COCO evaluation',
                           'pip install pycocotools')
        ids = sorted(image_ids if image_ids is not None else self.evaluated_images)
        names = {int(c['id']): str(c['name']) for c in self.categories}
        n_gt = sum(1 for a in self.gt['annotations']
                   if int(a['image_id']) in set(ids) and not a.get('iscrowd', 0))
        empty = CocoResult(0.0, 0.0, 0.0, None, None, None, {n: None for n in names.values()},
                           {n: None for n in names.values()}, len(ids), n_gt,
                           len(self.detections))
        if not ids:
            return empty
        with contextlib.redirect_stdout(io.StringIO()):
            gt = coco_mod.COCO()
            gt.dataset = {'images': list(self.gt['images']),
                          'annotations': [dict(a) for a in self.gt['annotations']],
                          'categories': list(self.categories)}
            for ann in gt.dataset['annotations']:
                ann.setdefault('area', float(ann['bbox'][2] * ann['bbox'][3]))
                ann.setdefault('iscrowd', 0)
            gt.createIndex()
            dets = [d for d in self.detections if d['image_id'] in set(ids)]
            if not dets:
                return empty
            dt = gt.loadRes(dets)
            ev = eval_mod.COCOeval(gt, dt, 'bbox')
            ev.params.imgIds = ids
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        stats = [float(s) for s in ev.stats]
        precision = ev.eval['precision']          # (T, R, K, A, M)
        recall_pts = [float(r) for r in ev.params.recThrs]
        per_ap: Dict[str, Optional[float]] = {}
        per_ap50: Dict[str, Optional[float]] = {}
        curves: Dict[str, List[List[float]]] = {}
        for k, cat_id in enumerate(ev.params.catIds):
            name = names.get(int(cat_id), str(cat_id))
            p_all = precision[:, :, k, 0, -1]
            p50 = precision[0, :, k, 0, -1]
            per_ap[name] = _nan_to_none(float(p_all[p_all > -1].mean())) \
                if (p_all > -1).any() else None
            per_ap50[name] = _nan_to_none(float(p50[p50 > -1].mean())) \
                if (p50 > -1).any() else None
            if (p50 > -1).any():
                curves[name] = [recall_pts, [max(float(v), 0.0) for v in p50]]
        return CocoResult(
            mAP=max(stats[0], 0.0), mAP50=max(stats[1], 0.0), mAP75=max(stats[2], 0.0),
            AP_small=_nan_to_none(stats[3]), AP_medium=_nan_to_none(stats[4]),
            AP_large=_nan_to_none(stats[5]),
            per_class_AP=per_ap, per_class_AP50=per_ap50, num_images=len(ids),
            num_ground_truths=n_gt, num_detections=len(dets), pr_curves=curves)
