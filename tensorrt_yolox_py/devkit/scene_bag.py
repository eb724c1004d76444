"""Generated multi-camera scene bags (the demo bag, the evaluation bags) with ground truth.

Contract:

- ``write_scene_bag(path, ...)`` renders ``frames`` 10 Hz frames per camera of one generated
  scene per camera (``data.scene``, camera mounts 0..N-1) and records them
  (``rosbag_io.write_image_bag``) as ``sensor_msgs/msg/Image`` (``bgr8``, ``step = 3 *
  width``) on ``camera_topic(i)``, header ``frame_id`` ``camera_frame_id(i)``. Header stamps:
  ``start_ns + k * period`` plus a per-camera phase and a few ms of Gaussian jitter (cameras
  are not synchronised); the bag's record (log) time is the stamp plus a 4-15 ms transport
  delay. With ``compress`` the mcap chunks are zstd-compressed (rosbag2's ``storage``
  compression, readable by ``ros2 bag``). Ground truth goes to ``<bag>/ground_truth.json``
  (COCO; every image entry carries ``topic``, ``stamp_ns`` and ``frame_id``, so the evaluator
  finds a message's labels by topic + header stamp; boxes in the recorded image's pixels).
- ``bag_stamps(...)``: those (header stamp, log time) pairs per camera.
"""

import json
import logging
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from ..data.rosbag_io import (BagRecord, camera_frame_id, camera_topic, GROUND_TRUTH_NAME,
                              write_image_bag)
from .dataset import BAG_SEED, coco_dataset, Frame, frame_seed, make_frame
from .scene import SceneConfig

LOG = logging.getLogger(__name__)


def bag_stamps(num_cameras: int, frames: int, seed: int, start_ns: int = 1_700_000_000 * 10**9,
               period_ns: int = 100_000_000) -> List[List[Tuple[int, int]]]:
    """Return per camera a list of (header stamp, log time) in ns; see the module contract."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 31337]))
    out = []
    for cam in range(num_cameras):
        phase = int(cam * period_ns / max(num_cameras, 1) + rng.integers(0, 5_000_000))
        stamps = []
        for k in range(frames):
            jitter = int(np.clip(rng.normal(0, 2_000_000), -6_000_000, 6_000_000))
            stamp = start_ns + k * period_ns + phase + jitter
            delay = int(rng.integers(4_000_000, 15_000_000))
            stamps.append((stamp, stamp + delay))
        out.append(stamps)
    return out


def write_scene_bag(path: Union[str, Path], num_cameras: int = 3, frames: int = 10,
                    seed: int = 0, out_hw: Optional[Tuple[int, int]] = None,
                    config: SceneConfig = SceneConfig(), compress: bool = True,
                    storage: str = 'mcap') -> Path:
    """Render and record a multi-camera bag plus its ground truth; return the bag path."""
    if num_cameras < 1 or frames < 1:
        raise ValueError(f'need at least one camera and one frame, got {num_cameras} x '
                         f'{frames}')
    path = Path(path)
    stamps = bag_stamps(num_cameras, frames, seed)
    order = sorted((stamps[cam][k][1], stamps[cam][k][0], cam, k)
                   for cam in range(num_cameras) for k in range(frames))
    entries: List[Tuple[Dict[str, object], Frame]] = []

    def records() -> Iterator[BagRecord]:
        for log_time, stamp, cam, k in order:
            scene_seed = frame_seed(BAG_SEED, int(seed) * 16 + cam)
            frame = make_frame(scene_seed, out_hw, config, time_s=k * 0.1, camera=cam)
            h, w = frame.image.shape[:2]
            entries.append(({'id': len(entries) + 1,
                             'file_name': f'{camera_topic(cam)}@{stamp}',
                             'topic': camera_topic(cam), 'stamp_ns': int(stamp),
                             'frame_id': camera_frame_id(cam), 'width': w, 'height': h,
                             'seed': scene_seed, 'time_s': round(k * 0.1, 3), 'camera': cam},
                            frame))
            yield BagRecord(camera_topic(cam), camera_frame_id(cam), stamp, log_time,
                            frame.image)

    write_image_bag(path, records(), compress, storage)
    gt = coco_dataset(entries)
    gt['info'] = {'description': 'ground truth of a tensorrt_yolox_py generated bag',
                  'seed': int(seed), 'cameras': num_cameras, 'frames_per_camera': frames}
    with open(path / GROUND_TRUTH_NAME, 'w', encoding='utf-8') as f:
        json.dump(gt, f)
    LOG.info('wrote %s: %d cameras x %d frames, ground truth %s', path, num_cameras, frames,
             path / GROUND_TRUTH_NAME)
    return path
