"""Score a detector on generated frames held in memory (the model metrics and INT8 study).

Contract: ``evaluate_frames(detect, frames)`` calls ``detect(source)`` -> ``DetectionResult``
(``pipeline.Detector.detect`` or any callable with that result) on each
``devkit.dataset.Frame``'s bgr8 image wrapped as an ``image.SourceImage`` (this module is the
adapter of in-memory frames), and returns ``(coco.CocoResult, timings)``: pycocotools metrics
against the frames' own labels (ignored objects as ``iscrowd`` regions, category id = class id
+ 1) and the per-frame stage timings in ms.
"""

from typing import Callable, Dict, List, Mapping, Sequence, Tuple

from ..evaluation.coco import CocoEvaluator, CocoResult
from ..image import SourceImage
from .dataset import coco_categories, coco_dataset


def ground_truth_from_frames(frames: Sequence, categories: Sequence[Mapping[str, object]]
                             ) -> Dict[str, object]:
    """Build a COCO ground-truth dict from ``devkit.dataset.Frame`` objects (ids 1..N)."""
    entries = [({'id': i + 1, 'file_name': f'{f.seed}', 'width': int(f.image.shape[1]),
                 'height': int(f.image.shape[0])}, f) for i, f in enumerate(frames)]
    gt = coco_dataset(entries)
    gt['categories'] = list(categories)
    return gt


def evaluate_frames(detect: Callable, frames: Sequence, progress: bool = False,
                    desc: str = 'eval') -> Tuple[CocoResult, List[Dict[str, float]]]:
    """Run ``detect`` on every frame and score it; see the module contract."""
    gt = ground_truth_from_frames(frames, coco_categories())
    evaluator = CocoEvaluator(gt)
    timings: List[Dict[str, float]] = []
    items = enumerate(frames)
    if progress:
        from tqdm import tqdm
        items = tqdm(items, total=len(frames), desc=desc, unit='img')
    for i, frame in items:
        result = detect(SourceImage.from_array(frame.image, 'bgr8'))
        evaluator.add(i + 1, result.detections)
        timings.append(dict(result.timings))
    return evaluator.evaluate(), timings
