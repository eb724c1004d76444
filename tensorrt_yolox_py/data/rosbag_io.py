"""rosbag2 (mcap or sqlite3) writing and reading of camera images, with the pure-Python rosbags.

Contract (generated scene bags are written by ``devkit.scene_bag``; reading a bag never imports
the scene generator):

- ``write_image_bag(path, records)`` records any ``BagRecord`` sequence as
  ``sensor_msgs/msg/Image`` (any encoding of ``image.ENCODINGS``, ``step`` = packed rows).
- ``read_images(path, topics)`` yields ``BagImage`` records in log-time order: topic, header
  stamp (ns), log time (ns), frame_id and ``source``, the message's ``image.SourceImage`` (a
  zero-copy view honouring ``step``, made by ``image.source_from_message``, which raises
  ``ImageFormatError`` for an unsupported encoding, zero sizes or a data buffer that is not
  ``step * height``); ``image`` / ``encoding`` are its pixels and encoding name.
- ``camera_topic(i)`` / ``camera_frame_id(i)``: Autoware's names of camera ``i``;
  ``GROUND_TRUTH_NAME`` the ground-truth file beside a bag.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Union

import numpy as np

from .._lazy import require
from ..errors import InputError
from ..image import source_from_message, SourceImage

LOG = logging.getLogger(__name__)

IMAGE_TYPE = 'sensor_msgs/msg/Image'
GROUND_TRUTH_NAME = 'ground_truth.json'


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
    """Build a rosbags ``sensor_msgs/msg/Image`` of an (H, W, C) uint8 array in ``encoding``."""
    source = SourceImage.from_array(image, encoding)
    types = typestore.types
    stamp = types['builtin_interfaces/msg/Time'](sec=int(stamp_ns // 1_000_000_000),
                                                 nanosec=int(stamp_ns % 1_000_000_000))
    header = types['std_msgs/msg/Header'](stamp=stamp, frame_id=frame_id)
    return types[IMAGE_TYPE](header=header, height=source.height, width=source.width,
                             encoding=encoding, is_bigendian=0, step=source.row_bytes,
                             data=np.ascontiguousarray(source.pixels).reshape(-1))


@dataclass
class BagImage:
    """One image message read from a bag."""

    topic: str
    stamp_ns: int
    log_time_ns: int
    frame_id: str
    source: SourceImage

    @property
    def image(self) -> np.ndarray:
        """The pixels: an (H, W, C) uint8 view of the message data."""
        return self.source.pixels

    @property
    def encoding(self) -> str:
        """The message's encoding name."""
        return self.source.encoding.name


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
            source = source_from_message(msg)
            stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
            yield BagImage(conn.topic, stamp, int(log_time), str(msg.header.frame_id), source)


def image_topics(path: Union[str, Path]) -> List[str]:
    """Return the bag's topics of type sensor_msgs/msg/Image, sorted."""
    rosbag2 = require('rosbags.rosbag2', 'rosbag2 reading', 'pip install rosbags')
    with rosbag2.Reader(Path(path)) as reader:
        return sorted({c.topic for c in reader.connections if c.msgtype == IMAGE_TYPE})


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
