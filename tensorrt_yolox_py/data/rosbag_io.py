"""rosbag2 (mcap or sqlite3) writing and reading of camera images, with the pure-Python rosbags.

Contract:

- ``write_scene_bag(path, ...)`` renders ``frames`` 10 Hz frames per camera of one generated
  scene per camera (``data.scene``, camera mounts 0..N-1) and records them as
  ``sensor_msgs/msg/Image`` (``bgr8``, ``step = 3 * width``) on ``camera_topic(i)``, header
  ``frame_id`` ``camera_frame_id(i)``. Header stamps: ``start_ns + k * period`` plus a
  per-camera phase and a few ms of Gaussian jitter (cameras are not synchronised); the bag's
  record (log) time is the stamp plus a 4-15 ms transport delay. With ``compress`` the mcap
  chunks are zstd-compressed (rosbag2's ``storage`` compression, readable by ``ros2 bag``).
  Ground truth goes to ``<bag>/ground_truth.json`` (COCO; every image entry carries ``topic``,
  ``stamp_ns`` and ``frame_id``, so the evaluator finds a message's labels by topic + header
  stamp; boxes in the recorded image's pixels).
- ``write_image_bag(path, records)`` records any ``BagRecord`` sequence (used by the above and
  by tests with hand-made frames).
- ``read_images(path, topics)`` yields ``BagImage`` records in log-time order: topic, header
  stamp (ns), log time (ns), frame_id, encoding, and ``image``: an (H, W, 3) uint8 view of the
  message data honouring ``step`` (no copy when the rows are packed).
- ``image_msg_to_array`` raises ``InputError`` for encodings other than bgr8/rgb8, zero sizes
  or a data buffer shorter than ``step * height``.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from .._lazy import require
from ..errors import InputError
from .dataset import BAG_SEED, Frame, coco_dataset, frame_seed, make_frame
from .scene import SceneConfig

LOG = logging.getLogger(__name__)

IMAGE_TYPE = 'sensor_msgs/msg/Image'
GROUND_TRUTH_NAME = 'ground_truth.json'
SUPPORTED = ('bgr8', 'rgb8')


def camera_topic(index: int) -> str:
    """Autoware's camera topic name of camera ``index``."""
    return f'/sensing/camera/camera{index}/image_rect_color'


def camera_frame_id(index: int) -> str:
    """Autoware's optical frame of camera ``index``."""
    return f'camera{index}/camera_optical_link'


def _typestore():
    typesys = require('rosbags.typesys', 'rosbag2 reading/writing', 'pip install rosbags')
    return typesys.get_typestore(typesys.Stores.ROS2_KILTED)


def make_image_msg(typestore, image: np.ndarray, stamp_ns: int, frame_id: str,
                   encoding: str = 'bgr8'):
    """Build a rosbags ``sensor_msgs/msg/Image`` of an (H, W, 3) uint8 array."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f'expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}')
    types = typestore.types
    stamp = types['builtin_interfaces/msg/Time'](sec=int(stamp_ns // 1_000_000_000),
                                                 nanosec=int(stamp_ns % 1_000_000_000))
    header = types['std_msgs/msg/Header'](stamp=stamp, frame_id=frame_id)
    h, w = image.shape[:2]
    return types[IMAGE_TYPE](header=header, height=h, width=w, encoding=encoding,
                             is_bigendian=0, step=3 * w,
                             data=np.ascontiguousarray(image).reshape(-1))


def image_msg_to_array(msg) -> Tuple[np.ndarray, str]:
    """Return ((H, W, 3) uint8 view of the message pixels, encoding); see the contract."""
    encoding = str(msg.encoding)
    if encoding not in SUPPORTED:
        raise InputError(f"unsupported image encoding '{encoding}' (supported: "
                         f"{', '.join(SUPPORTED)})")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise InputError(f'empty image {w}x{h}')
    if step < 3 * w:
        raise InputError(f'step {step} is smaller than 3 * width ({3 * w})')
    data = np.asarray(msg.data, dtype=np.uint8).reshape(-1)
    if data.size < step * h:
        raise InputError(f'image data has {data.size} bytes, expected step * height = '
                         f'{step * h}')
    rows = data[:step * h].reshape(h, step)
    return rows[:, :3 * w].reshape(h, w, 3), encoding


@dataclass
class BagImage:
    """One image message read from a bag."""

    topic: str
    stamp_ns: int
    log_time_ns: int
    frame_id: str
    encoding: str
    image: np.ndarray


def read_images(path: Union[str, Path], topics: Optional[Sequence[str]] = None
                ) -> Iterator[BagImage]:
    """Yield the bag's Image messages (optionally only ``topics``) in log-time order."""
    rosbag2 = require('rosbags.rosbag2', 'rosbag2 reading', 'pip install rosbags')
    store = _typestore()
    with rosbag2.Reader(Path(path)) as reader:
        conns = [c for c in reader.connections if c.msgtype == IMAGE_TYPE
                 and (topics is None or c.topic in topics)]
        if topics is not None:
            missing = sorted(set(topics) - {c.topic for c in conns})
            if missing:
                raise InputError(f"bag {path} has no {IMAGE_TYPE} topic {', '.join(missing)} "
                                 f"(it has: {', '.join(sorted(reader.topics))})")
        if not conns:
            return
        for conn, log_time, raw in reader.messages(connections=conns):
            msg = store.deserialize_cdr(raw, conn.msgtype)
            image, encoding = image_msg_to_array(msg)
            stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
            yield BagImage(conn.topic, stamp, int(log_time), str(msg.header.frame_id),
                           encoding, image)


def image_topics(path: Union[str, Path]) -> List[str]:
    """Return the bag's topics of type sensor_msgs/msg/Image, sorted."""
    rosbag2 = require('rosbags.rosbag2', 'rosbag2 reading', 'pip install rosbags')
    with rosbag2.Reader(Path(path)) as reader:
        return sorted({c.topic for c in reader.connections if c.msgtype == IMAGE_TYPE})


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


@dataclass
class BagRecord:
    """One image message to record: topic, header frame_id and stamp, log time, pixels."""

    topic: str
    frame_id: str
    stamp_ns: int
    log_time_ns: int
    image: np.ndarray
    encoding: str = 'bgr8'


def write_image_bag(path: Union[str, Path], records: Iterable[BagRecord],
                    compress: bool = True, storage: str = 'mcap') -> Path:
    """Record ``records`` (in the order given) as sensor_msgs/Image messages; return path."""
    rosbag2 = require('rosbags.rosbag2', 'rosbag2 writing', 'pip install rosbags')
    if storage not in ('mcap', 'sqlite3'):
        raise ValueError(f"storage must be 'mcap' or 'sqlite3', got {storage!r}")
    path = Path(path)
    store = _typestore()
    plugin = {'mcap': rosbag2.StoragePlugin.MCAP,
              'sqlite3': rosbag2.StoragePlugin.SQLITE3}[storage]
    writer = rosbag2.Writer(path, version=9, storage_plugin=plugin)
    if compress:
        mode = (rosbag2.CompressionMode.STORAGE if storage == 'mcap'
                else rosbag2.CompressionMode.MESSAGE)
        writer.set_compression(mode, rosbag2.CompressionFormat.ZSTD)
    conns: Dict[str, object] = {}
    with writer:
        for rec in records:
            if rec.topic not in conns:
                conns[rec.topic] = writer.add_connection(rec.topic, IMAGE_TYPE,
                                                         typestore=store)
            msg = make_image_msg(store, rec.image, rec.stamp_ns, rec.frame_id, rec.encoding)
            writer.write(conns[rec.topic], rec.log_time_ns,
                         store.serialize_cdr(msg, IMAGE_TYPE))
    return path


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
