"""Generated data sets: frames in parallel worker processes, COCO export, train/val splits.

Contract:

- ``frame_seed(split_seed, index)`` is the scene seed of frame ``index`` of a split; splits use
  disjoint seed ranges (``TRAIN_SEED``, ``VAL_SEED``, ``TEST_SEED``), so a held-out split never
  shares a scene with the training split.
- ``make_frame(seed, out_hw, config)`` renders one scene at the generator's size (1920x1280 by
  default) and, when ``out_hw`` (H, W) is given, resizes it with OpenCV INTER_LINEAR (the same
  resampling as ``stages.preprocess``) and scales the boxes by the same per-axis factors.
  It returns a ``Frame``: image (H, W, 3) uint8 BGR, boxes (G, 4) float32 xyxy pixels, labels
  (G,) int64 class ids, and the ignored (too occluded / too small) boxes and labels.
- ``generate_frames(seeds, out_hw, workers)`` yields frames in seed order, rendered by a pool of
  worker processes (``workers <= 1``: in this process), each with the camera mount and time
  step ``seed_view(seed)``.
- ``write_coco(frames, out_dir)`` writes ``images/*.png`` (lossless by default) and
  ``annotations.json``: COCO ``bbox`` [x, y, w, h] in pixels, category id = class id + 1
  (names from ``sprites.CLASS_NAMES``), ignored objects as ``iscrowd: 1`` regions that COCO
  evaluation ignores and training skips.
"""

import json
import logging
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .scene import SceneConfig, SceneGenerator
from .sprites import CLASS_NAMES

LOG = logging.getLogger(__name__)

TRAIN_SEED = 1
VAL_SEED = 2
TEST_SEED = 3
BAG_SEED = 4


def frame_seed(split_seed: int, index: int) -> int:
    """Return the scene seed of frame ``index`` in the split ``split_seed`` (disjoint ranges)."""
    if index < 0 or index >= 10_000_000:
        raise ValueError(f'frame index must be in [0, 1e7), got {index}')
    return int(split_seed) * 10_000_000 + int(index)


@dataclass
class Frame:
    """One generated image with its labels (see the module contract)."""

    seed: int
    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    ignored_boxes: np.ndarray
    ignored_labels: np.ndarray


_GENERATORS: Dict[SceneConfig, SceneGenerator] = {}


def _generator(config: SceneConfig) -> SceneGenerator:
    gen = _GENERATORS.get(config)
    if gen is None:
        gen = _GENERATORS[config] = SceneGenerator(config)
    return gen


def _as_arrays(objs) -> Tuple[np.ndarray, np.ndarray]:
    boxes = np.asarray([o.box for o in objs], np.float32).reshape(-1, 4)
    labels = np.asarray([o.class_id for o in objs], np.int64).reshape(-1)
    return boxes, labels


def make_frame(seed: int, out_hw: Optional[Tuple[int, int]] = None,
               config: SceneConfig = SceneConfig(), time_s: float = 0.0,
               camera: int = 0) -> Frame:
    """Render scene ``seed`` and optionally resize it to ``out_hw``; see the module contract."""
    scene = _generator(config).render(seed, time_s=time_s, camera=camera)
    image = scene.image
    boxes, labels = _as_arrays(scene.objects)
    iboxes, ilabels = _as_arrays(scene.ignored)
    if out_hw is not None and tuple(out_hw) != image.shape[:2]:
        out_h, out_w = int(out_hw[0]), int(out_hw[1])
        sx, sy = out_w / image.shape[1], out_h / image.shape[0]
        image = cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
        factor = np.asarray([sx, sy, sx, sy], np.float32)
        boxes = boxes * factor
        iboxes = iboxes * factor
    return Frame(int(seed), image, boxes, labels, iboxes, ilabels)


def seed_view(seed: int) -> Tuple[int, float]:
    """Return the (camera, time_s) a data-set frame of ``seed`` is drawn with.

    Data-set frames cycle through the three camera mounts and ten 0.1 s steps of their scene,
    so a model trained on them has seen what the rosbag's cameras record.
    """
    return int(seed) % 3, float((int(seed) // 3) % 10) / 10.0


def _init_worker() -> None:
    cv2.setNumThreads(1)


def _worker(job: Tuple[int, Optional[Tuple[int, int]], SceneConfig]) -> Frame:
    seed, out_hw, config = job
    camera, time_s = seed_view(seed)
    return make_frame(seed, out_hw, config, time_s=time_s, camera=camera)


def generate_frames(seeds: Sequence[int], out_hw: Optional[Tuple[int, int]] = None,
                    workers: int = 0, config: SceneConfig = SceneConfig(),
                    chunksize: int = 4, start_method: Optional[str] = None
                    ) -> Iterator[Frame]:
    """Yield the frames of ``seeds`` in order; ``workers`` processes (0 = all cores).

    ``start_method`` is the multiprocessing start method (default: 'spawn': forking a process
    that already runs threads (ONNX Runtime, OpenCV, DDS, CUDA) can deadlock the children).
    """
    jobs = [(int(s), out_hw, config) for s in seeds]
    if workers == 0:
        workers = os.cpu_count() or 1
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield _worker(job)
        return
    ctx = mp.get_context(start_method or 'spawn')
    with ctx.Pool(workers, initializer=_init_worker) as pool:
        yield from pool.imap(_worker, jobs, chunksize=chunksize)


def coco_categories() -> List[Dict[str, object]]:
    """COCO categories of the 8 classes: id = class id + 1."""
    return [{'id': i + 1, 'name': name, 'supercategory': 'object'}
            for i, name in enumerate(CLASS_NAMES)]


def coco_dataset(frames: Iterable[Tuple[Dict[str, object], Frame]]) -> Dict[str, object]:
    """Build a COCO detection dict from (image entry, frame) pairs; ignored -> iscrowd."""
    images: List[Dict[str, object]] = []
    anns: List[Dict[str, object]] = []
    for entry, frame in frames:
        images.append(entry)
        for boxes, labels, crowd in ((frame.boxes, frame.labels, 0),
                                     (frame.ignored_boxes, frame.ignored_labels, 1)):
            for box, label in zip(boxes.astype(np.float64), labels):
                w, h = float(box[2] - box[0]), float(box[3] - box[1])
                anns.append({'id': len(anns) + 1, 'image_id': entry['id'],
                             'category_id': int(label) + 1,
                             'bbox': [round(float(box[0]), 3), round(float(box[1]), 3),
                                      round(w, 3), round(h, 3)],
                             'area': round(w * h, 3), 'iscrowd': crowd})
    return {'info': {'description': 'tensorrt_yolox_py generated driving scenes'},
            'images': images, 'annotations': anns, 'categories': coco_categories()}


def write_coco(frames: Iterable[Frame], out_dir: str, image_ext: str = '.png',
               jpeg_quality: int = 95, progress: bool = False) -> Path:
    """Write images and ``annotations.json`` under ``out_dir``; return the JSON path."""
    out = Path(out_dir)
    (out / 'images').mkdir(parents=True, exist_ok=True)
    jpeg = image_ext in ('.jpg', '.jpeg')
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if jpeg else []

    def entries() -> Iterator[Tuple[Dict[str, object], Frame]]:
        for index, frame in enumerate(frames):
            name = f'images/{frame.seed:012d}{image_ext}'
            if not cv2.imwrite(str(out / name), frame.image, params):
                raise OSError(f'cannot write {out / name}')
            yield ({'id': index + 1, 'file_name': name, 'width': int(frame.image.shape[1]),
                    'height': int(frame.image.shape[0]), 'seed': frame.seed}, frame)

    pairs: Iterable = entries()
    if progress:
        from tqdm import tqdm
        pairs = tqdm(pairs, desc='frames', unit='img')
    dataset = coco_dataset(pairs)
    path = out / 'annotations.json'
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(dataset, f)
    LOG.info('wrote %d images, %d annotations to %s', len(dataset['images']),
             len(dataset['annotations']), out)
    return path
