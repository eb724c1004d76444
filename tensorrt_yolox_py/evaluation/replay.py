"""Replay a rosbag2 through a detector and score it: the core of ``yolox_evaluate``.

Contract:

- ROS-free: replaying a bag INTO running ROS nodes over DDS is ``ros.dds_replay``.
- ``replay_bag(bag, detector, ground_truth)`` reads every ``sensor_msgs/msg/Image`` message of
  the bag (or of ``topics``) in log-time order (``data.rosbag_io.read_images``), runs
  ``detector.detect(source)`` on each message's ``SourceImage`` (a ``pipeline.Detector`` or
  anything with that method and a ``labels`` list) and collects the detections of the
  messages that have ground truth, found by (topic, header stamp) in the COCO ground truth
  (image entries with ``topic`` and ``stamp_ns``, as ``devkit.scene_bag.write_scene_bag``
  writes them). Messages without ground
  truth are timed but not scored (counted in ``unlabelled``).
- Timing per message: ``decode`` (bag read + CDR deserialisation + image view) and the
  detector's own stages (``preprocess``, ``infer``, ``postprocess``, ``total``), in ms.
- ``ReplayReport.to_dict()`` is the JSON report: accuracy (``coco.CocoResult``), per-stage
  latency summary, per-topic frame counts and latency, counts, model / bag description.
- With ``annotate_dir``, each frame is written as ``<dir>/<camera>/<stamp_ns>.jpg`` with the
  detections scoring at least ``annotate_threshold`` drawn (``report.write_annotated_frame``);
  scoring uses all detections the detector returns.
"""

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ..data.rosbag_io import read_images
from .coco import CocoEvaluator, CocoResult
from .report import latency_summary, per_topic_summary, write_annotated_frame

LOG = logging.getLogger(__name__)


@dataclass
class ReplayReport:
    """Everything ``replay_bag`` measured (see the module contract)."""

    result: CocoResult
    samples: List[Dict[str, float]]
    per_topic: Dict[str, List[Dict[str, float]]]
    frames: int
    scored: int
    unlabelled: int
    wall_s: float
    info: Dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, object]:
        """Return the JSON report."""
        return {'accuracy': self.result.to_dict(), 'latency_ms': latency_summary(self.samples),
                'per_topic': per_topic_summary(self.per_topic), 'frames': self.frames,
                'scored_frames': self.scored, 'unlabelled_frames': self.unlabelled,
                'wall_s': round(self.wall_s, 3), 'info': self.info}


def ground_truth_index(ground_truth: Mapping[str, object]) -> Dict[Tuple[str, int], int]:
    """Map (topic, header stamp ns) -> COCO image id."""
    index = {}
    for img in ground_truth['images']:
        if 'topic' in img and 'stamp_ns' in img:
            index[(str(img['topic']), int(img['stamp_ns']))] = int(img['id'])
    return index


def replay_bag(bag: Union[str, os.PathLike], detector, ground_truth: Mapping[str, object],
               topics: Optional[Sequence[str]] = None, max_frames: Optional[int] = None,
               annotate_dir: Optional[Union[str, os.PathLike]] = None,
               progress: bool = True, annotate_threshold: float = 0.35) -> ReplayReport:
    """Run ``detector`` over the bag's images and score them; see the module contract."""
    evaluator = CocoEvaluator(ground_truth)
    index = ground_truth_index(ground_truth)
    samples: List[Dict[str, float]] = []
    per_topic: Dict[str, List[Dict[str, float]]] = {}
    scored = unlabelled = 0
    labels = list(getattr(detector, 'labels', []))
    total = sum(1 for topic, _ in index if topics is None or topic in topics)
    total = total if max_frames is None else min(total, max_frames)
    stream: Iterable = read_images(bag, topics)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total or None, desc='replay', unit='frame')
    out_dir = Path(annotate_dir) if annotate_dir else None
    start = time.perf_counter()
    iterator = iter(stream)
    while max_frames is None or len(samples) < max_frames:
        t0 = time.perf_counter()
        try:
            msg = next(iterator)
        except StopIteration:
            break
        decode_ms = (time.perf_counter() - t0) * 1e3
        result = detector.detect(msg.source)
        timing = {'decode': decode_ms}
        timing.update(result.timings)
        samples.append(timing)
        per_topic.setdefault(msg.topic, []).append(timing)
        image_id = index.get((msg.topic, msg.stamp_ns))
        if image_id is None:
            unlabelled += 1
        else:
            evaluator.add(image_id, result.detections)
            scored += 1
        if out_dir is not None:
            write_annotated_frame(out_dir, msg.topic, msg.stamp_ns, msg.source,
                                  result.detections, labels, annotate_threshold)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    wall = time.perf_counter() - start
    if unlabelled:
        LOG.warning('%d of %d messages have no ground truth (matched by topic and header '
                    'stamp); they are timed but not scored', unlabelled, len(samples))
    accuracy = evaluator.evaluate()
    return ReplayReport(accuracy, samples, per_topic, len(samples), scored, unlabelled, wall,
                        {'bag': str(bag)})
