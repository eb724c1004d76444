"""Replay a rosbag2 over real DDS into running detector nodes and score what they publish.

Contract:

- ``dds_environment(domain_id)`` sets, before rclpy starts, ``ROS_AUTOMATIC_DISCOVERY_RANGE=
  LOCALHOST`` (discovery stays on this machine), ``ROS_DOMAIN_ID`` (default: 40 + pid % 50,
  so parallel runs do not hear each other) and, when not already set, the package's Fast DDS
  profile ``config/fastdds_large_data.xml`` (shared memory with 64 MiB segments: camera images
  between participants arrive instead of being dropped by the default 512 KiB segments).
- ``dds_replay(bag, ground_truth, params)`` sets that environment for its run (and restores
  the previous values afterwards), starts one detector node per image topic of the
  bag with the multi-camera runner's ``create_nodes`` (``ros/multi_camera.py``; namespace
  ``/yolox_replay/<camera>``, ``~/in/image`` remapped to the bag topic, ``~/out/objects`` to
  ``/yolox_replay/objects/<camera>``), spins them with a player node in one
  ``MultiThreadedExecutor``, and publishes the bag's images with their original header
  (stamp, frame_id). Each camera runs lock-step: its next image is published once the node
  answered the previous one (re-sent after ``resend_s`` if the best-effort input dropped it,
  given up after ``timeout_s``), so every frame is scored and cameras run concurrently.
- Answers (``vision_msgs/Detection2DArray``) are matched to ground truth by (topic, header
  stamp), converted back to ``Detections`` (class id = index of ``hypothesis.class_id`` in the
  label list) and scored with ``evaluation.coco.CocoEvaluator``. Timing per frame:
  ``round_trip`` (publish to answer, wall clock, ms) and ``total`` (the node's
  ``~/debug/processing_time_ms``).
- Returns an ``evaluation.replay.ReplayReport``; with ``annotate_dir``, frames with the
  published detections scoring >= ``annotate_threshold`` are written by
  ``evaluation.report.write_annotated_frame``.
"""

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .._lazy import require
from ..data.rosbag_io import image_topics, read_images
from ..evaluation.coco import CocoEvaluator
from ..evaluation.replay import ground_truth_index, ReplayReport
from ..evaluation.report import write_annotated_frame
from ..stages.postprocess import Detections

LOG = logging.getLogger(__name__)
NAMESPACE = '/yolox_replay'


def fastdds_profile() -> Optional[Path]:
    """Return the package's Fast DDS large-data profile (source tree or installed share)."""
    here = Path(__file__).resolve()
    candidates = [here.parents[2] / 'config' / 'fastdds_large_data.xml']
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory('tensorrt_yolox_py')) / 'config'
                          / 'fastdds_large_data.xml')
    except (ImportError, LookupError, ValueError, OSError):  # not an ament install
        pass
    return next((p for p in candidates if p.is_file()), None)


def dds_environment(domain_id: Optional[int] = None) -> Dict[str, str]:
    """Keep DDS on this machine with its own domain; return the variables set."""
    env = {'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
           'ROS_DOMAIN_ID': str(domain_id if domain_id is not None
                                else 40 + os.getpid() % 50)}
    profile = fastdds_profile()
    if profile is not None and 'FASTDDS_DEFAULT_PROFILES_FILE' not in os.environ:
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = str(profile)
    os.environ.update(env)
    return env


def detections_from_msg(msg: Any, labels: Sequence[str]) -> Detections:
    """Convert a vision_msgs/Detection2DArray back to ``Detections`` (source pixels)."""
    boxes, scores, classes = [], [], []
    index = {name: i for i, name in enumerate(labels)}
    for det in msg.detections:
        if not det.results:
            continue
        hyp = det.results[0].hypothesis
        cx, cy = det.bbox.center.position.x, det.bbox.center.position.y
        w, h = det.bbox.size_x, det.bbox.size_y
        boxes.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
        scores.append(hyp.score)
        name = str(hyp.class_id)
        classes.append(index[name] if name in index else
                       (int(name) if name.isdigit() else -1))
    if not boxes:
        return Detections.empty()
    return Detections(np.asarray(boxes, np.float32), np.asarray(scores, np.float32),
                      np.asarray(classes, np.int32))


class _Camera:
    """Per-camera lock-step state of the player."""

    def __init__(self, topic: str, name: str) -> None:
        self.topic = topic
        self.name = name
        self.answers: Dict[int, Tuple[Any, float]] = {}
        self.proc_ms: List[float] = []
        self.event = threading.Event()
        self.lock = threading.Lock()

    def on_objects(self, msg: Any) -> None:
        stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
        with self.lock:
            self.answers.setdefault(stamp, (msg, time.perf_counter()))
        self.event.set()

    def on_time(self, msg: Any) -> None:
        with self.lock:
            self.proc_ms.append(float(msg.data))


def dds_replay(bag: Union[str, os.PathLike], ground_truth: Mapping[str, object],
               params: Mapping[str, Any], labels: Sequence[str],
               topics: Optional[Sequence[str]] = None, max_frames: Optional[int] = None,
               annotate_dir: Optional[Union[str, os.PathLike]] = None,
               annotate_threshold: float = 0.35, timeout_s: float = 30.0,
               resend_s: float = 3.0, progress: bool = True,
               domain_id: Optional[int] = None) -> ReplayReport:
    """Replay ``bag`` into detector nodes over DDS and score them; see the module contract."""
    saved = {k: os.environ.get(k) for k in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_DOMAIN_ID',
                                            'FASTDDS_DEFAULT_PROFILES_FILE')}
    try:
        return _dds_replay(bag, ground_truth, params, labels, topics, max_frames,
                           annotate_dir, annotate_threshold, timeout_s, resend_s, progress,
                           dds_environment(domain_id))
    finally:
        for key, value in saved.items():       # leave the caller's environment as it was
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _dds_replay(bag, ground_truth, params, labels, topics, max_frames, annotate_dir,
                annotate_threshold, timeout_s, resend_s, progress, env) -> ReplayReport:
    rclpy = require('rclpy', 'the DDS replay',
                    'bash scripts/setup.sh (ROS 2 from the PyPI ros-* wheels)')
    require('vision_msgs.msg', 'the DDS replay', 'bash scripts/build_vision_msgs.sh .venv')
    from rclpy.executors import MultiThreadedExecutor
    from sensor_msgs.msg import Image
    from std_msgs.msg import Float64
    from vision_msgs.msg import Detection2DArray

    from .camera_mapping import node_specs
    from .image_conversion import fill_image_msg
    from .multi_camera import create_nodes
    from .node import SENSOR_QOS

    topics = list(topics or image_topics(bag))
    cams = [_Camera(t, f'camera{i}') for i, t in enumerate(topics)]
    by_topic = {c.topic: c for c in cams}
    config = {'namespace': NAMESPACE, 'parameters': dict(params),
              'cameras': [{'name': c.name, 'image_topic': c.topic,
                           'device': params.get('device', 'cpu'),
                           'objects_topic': f'{NAMESPACE}/objects/{c.name}'} for c in cams]}
    specs = node_specs(config)
    context = rclpy.Context()
    rclpy.init(context=context)
    nodes: List[Any] = []
    executor = None
    start = time.perf_counter()
    try:
        LOG.info('DDS replay on domain %s (%s): starting %d detector node(s)',
                 env['ROS_DOMAIN_ID'], env['ROS_AUTOMATIC_DISCOVERY_RANGE'], len(specs))
        nodes = create_nodes(specs, context=context)
        player = rclpy.create_node('yolox_replay_player', context=context)
        pubs = {c.topic: player.create_publisher(Image, c.topic, SENSOR_QOS) for c in cams}
        answer_topics = []
        for cam, node in zip(cams, nodes):
            answer_topics += [f'{NAMESPACE}/objects/{cam.name}',
                              f'{node.get_fully_qualified_name()}/debug/processing_time_ms']
            player.create_subscription(Detection2DArray, answer_topics[-2], cam.on_objects, 10)
            player.create_subscription(Float64, answer_topics[-1], cam.on_time, 10)
        executor = MultiThreadedExecutor(num_threads=len(nodes) + 2, context=context)
        for node in nodes + [player]:
            executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not (
                all(p.get_subscription_count() > 0 for p in pubs.values())
                and all(player.count_publishers(t) > 0 for t in answer_topics)):
            time.sleep(0.05)
        report = _play(bag, topics, by_topic, pubs, ground_truth, labels, fill_image_msg,
                       Image, max_frames, annotate_dir, annotate_threshold, timeout_s,
                       resend_s, progress)
    finally:
        if executor is not None:
            executor.shutdown()
        for node in nodes:
            node.destroy_node()
        context.try_shutdown()
    report.wall_s = time.perf_counter() - start
    report.info.update({'mode': 'dds', 'ros_domain_id': env['ROS_DOMAIN_ID'],
                        'ros_automatic_discovery_range': env['ROS_AUTOMATIC_DISCOVERY_RANGE'],
                        'nodes': [s.namespace + '/' + s.name for s in specs]})
    return report


def _play(bag, topics, by_topic, pubs, ground_truth, labels, fill_image_msg, Image,
          max_frames, annotate_dir, annotate_threshold, timeout_s, resend_s,
          progress) -> ReplayReport:
    evaluator = CocoEvaluator(ground_truth)
    index = ground_truth_index(ground_truth)
    pending: Dict[str, Tuple[Any, Any, float]] = {}
    samples: List[Dict[str, float]] = []
    per_topic: Dict[str, List[Dict[str, float]]] = {t: [] for t in topics}
    scored = unlabelled = lost = 0
    out_dir = Path(annotate_dir) if annotate_dir else None
    bar = None
    if progress:
        from tqdm import tqdm
        total = sum(1 for t, _ in index if t in topics)
        bar = tqdm(total=min(total, max_frames) if max_frames else total or None,
                   desc='dds replay', unit='frame')

    def finish(topic: str) -> None:
        nonlocal scored, unlabelled, lost
        item, msg, t_pub = pending.pop(topic)
        cam = by_topic[topic]
        deadline = time.perf_counter() + timeout_s
        next_send = time.perf_counter() + resend_s
        while True:
            with cam.lock:
                answer = cam.answers.pop(item.stamp_ns, None)
            if answer is not None or time.perf_counter() > deadline:
                break
            if time.perf_counter() > next_send:
                pubs[topic].publish(msg)           # best effort: the input may drop it
                next_send = time.perf_counter() + resend_s
            cam.event.wait(0.05)
            cam.event.clear()
        if answer is None:
            lost += 1
            LOG.warning('no detections from %s for stamp %d within %.0f s', topic,
                        item.stamp_ns, timeout_s)
            return
        out_msg, t_ans = answer
        dets = detections_from_msg(out_msg, labels)
        timing = {'round_trip': (t_ans - t_pub) * 1e3}
        with cam.lock:
            if cam.proc_ms:
                timing['total'] = cam.proc_ms.pop(0)
        samples.append(timing)
        per_topic[topic].append(timing)
        image_id = index.get((topic, item.stamp_ns))
        if image_id is None:
            unlabelled += 1
        else:
            evaluator.add(image_id, dets)
            scored += 1
        if out_dir is not None:
            write_annotated_frame(out_dir, item.topic, item.stamp_ns, item.source, dets, labels,
                                  annotate_threshold)
        if bar is not None:
            bar.update(1)

    count = 0
    for item in read_images(bag, topics):
        if max_frames is not None and count >= max_frames:
            break
        if item.topic in pending:
            finish(item.topic)
        msg = fill_image_msg(Image(), item.image, item.encoding)
        msg.header.frame_id = item.frame_id
        msg.header.stamp.sec = item.stamp_ns // 1_000_000_000
        msg.header.stamp.nanosec = item.stamp_ns % 1_000_000_000
        pubs[item.topic].publish(msg)
        pending[item.topic] = (item, msg, time.perf_counter())
        count += 1
    for topic in list(pending):
        finish(topic)
    if bar is not None:
        bar.close()
    info = {'bag': str(bag), 'lost_frames': lost}
    return ReplayReport(evaluator.evaluate(), samples, per_topic, len(samples), scored,
                        unlabelled, 0.0, info)
