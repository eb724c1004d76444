"""The vision_msgs we build are type-hash and wire compatible with upstream vision_msgs 4.x.

EXPECTED_HASHES are the RIHS01 type hashes of upstream ros-perception/vision_msgs 4.1.1, read
from the rosidl_generator_c output (``*__description.c``) of an upstream build in a public
repository (found with the project's code search). A subscriber built from upstream matches a
publisher of ours only if these are equal (ROS 2 Iron and later compare them).
BoundingBox2DArray / BoundingBox3DArray: no upstream hash was found; their fields (header,
boxes) were checked against third-party copies of the upstream definitions.
"""

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, require_ros, wait_for

pytestmark = pytest.mark.ros

EXPECTED_HASHES = {
    'BoundingBox2D': '008eacbb0cf8f26e83795547bed013eec3675485ef386ec056d80eaaf1c1ce2f',
    'BoundingBox3D': 'bbb73a65c163d7f9bb29009c7bde9f7faa576bd2d23299c4511d19230dab4698',
    'Classification': 'f74db28d0eaef3afb78f48bf2161cd709a1383a0309d3454383b25be11345143',
    'Detection2D': '0d12b69df5c593b3455b7346fac8205437a7d4bcb09b9e0e0b2dde787ded38ea',
    'Detection2DArray': '214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968',
    'Detection3D': 'ddd703be132ab0b69d33121f1bb034132bfbb3b0ac5f9fb1516005ba1c8a265b',
    'Detection3DArray': '793f5eab9595ac1c0da07873cc859db42eae51f0ee76056db8562515d830e018',
    'LabelInfo': '3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783',
    'ObjectHypothesis': '51da43cec11c01957a64d1e05a24acd18aae7745ec30b74348ad5f6d634f7f90',
    'ObjectHypothesisWithPose':
        '41c12344c0396c48b81df12467c192d99b2a0eb1463c5c37194e4223251c80bc',
    'Point2D': 'eab0e83f44ab4de92ceaf76dd7d0e7638f2bdd1d16ffbe16c7a136c48e407247',
    'Pose2D': 'b0b5d1d7b4c20dd4fcde3ed1d4b289a919290572007d67a97043814db25d3648',
    'VisionClass': '1e4a11f0fed50b5623cb8ff26ca0e37952a48a9c074d16f804b44e9164c2037a',
    'VisionInfo': '95d3116a17484ad91c9a2686e1d54890bbfc3ff6c6a2de137738c4950d45d284',
}
#: Field layout of DESIGN.md ("ROS interface"), as rosidl reports it.
EXPECTED_FIELDS = {
    'Point2D': {'x': 'double', 'y': 'double'},
    'Pose2D': {'position': 'vision_msgs/Point2D', 'theta': 'double'},
    'BoundingBox2D': {'center': 'vision_msgs/Pose2D', 'size_x': 'double', 'size_y': 'double'},
    'ObjectHypothesis': {'class_id': 'string', 'score': 'double'},
    'ObjectHypothesisWithPose': {'hypothesis': 'vision_msgs/ObjectHypothesis',
                                 'pose': 'geometry_msgs/PoseWithCovariance'},
    'Detection2D': {'header': 'std_msgs/Header',
                    'results': 'sequence<vision_msgs/ObjectHypothesisWithPose>',
                    'bbox': 'vision_msgs/BoundingBox2D', 'id': 'string'},
    'Detection2DArray': {'header': 'std_msgs/Header',
                         'detections': 'sequence<vision_msgs/Detection2D>'},
    'VisionClass': {'class_id': 'uint16', 'class_name': 'string'},
    'LabelInfo': {'header': 'std_msgs/Header', 'class_map': 'sequence<vision_msgs/VisionClass>',
                  'threshold': 'float'},
}
SOURCE = REPO / 'interfaces' / 'vision_msgs' / 'msg'


def _share_dir() -> Path:
    """Return <prefix>/share/vision_msgs of the vision_msgs Python package in use."""
    require_ros()
    import vision_msgs

    # <prefix>/lib/pythonX.Y/site-packages/vision_msgs/__init__.py
    return Path(vision_msgs.__file__).resolve().parents[4] / 'share' / 'vision_msgs'


def _built_hash(share: Path, name: str) -> str:
    data = json.loads((share / 'msg' / f'{name}.json').read_text())
    entry = next(h for h in data['type_hashes'] if h['type_name'] == f'vision_msgs/msg/{name}')
    return entry['hash_string']


def test_every_upstream_hash_matches_the_built_type() -> None:
    share = _share_dir()
    for name, expected in EXPECTED_HASHES.items():
        assert _built_hash(share, name) == f'RIHS01_{expected}', name


def test_installed_definitions_are_the_repository_ones() -> None:
    share = _share_dir()
    sources = sorted(path.name for path in SOURCE.glob('*.msg'))
    assert set(EXPECTED_HASHES) | {'BoundingBox2DArray', 'BoundingBox3DArray'} == {
        name[:-4] for name in sources}
    for name in sources:
        assert (share / 'msg' / name).read_text() == (SOURCE / name).read_text(), (
            f'{name} changed since the last build: run scripts/build_vision_msgs.sh --force')


def test_field_layout_is_the_designed_one() -> None:
    require_ros()
    import vision_msgs.msg as vm

    for name, fields in EXPECTED_FIELDS.items():
        assert getattr(vm, name).get_fields_and_field_types() == fields, name


def test_cdr_wire_bytes() -> None:
    require_ros()
    from rclpy.serialization import deserialize_message, serialize_message
    from vision_msgs.msg import BoundingBox2D, Detection2DArray, Point2D, Pose2D

    box = BoundingBox2D(center=Pose2D(position=Point2D(x=1.5, y=-2.0), theta=0.25),
                        size_x=64.0, size_y=32.0)
    # CDR little endian: 4-byte encapsulation header, then five float64 in field order.
    assert serialize_message(box) == b'\x00\x01\x00\x00' + struct.pack(
        '<5d', 1.5, -2.0, 0.25, 64.0, 32.0)
    empty = Detection2DArray()
    empty.header.stamp.sec, empty.header.stamp.nanosec, empty.header.frame_id = 7, 9, 'cam'
    # int32 sec, uint32 nanosec, string (uint32 length incl. NUL, bytes), uint32 count 0.
    assert serialize_message(empty) == (b'\x00\x01\x00\x00' + struct.pack('<iiI', 7, 9, 4)
                                        + b'cam\x00' + struct.pack('<I', 0))
    assert deserialize_message(serialize_message(box), BoundingBox2D) == box


def test_type_hash_advertised_over_dds(ros: Any) -> None:
    from vision_msgs.msg import Detection2DArray, LabelInfo

    node = ros.peer('hash_probe')
    for msg_type, name in ((Detection2DArray, 'Detection2DArray'), (LabelInfo, 'LabelInfo')):
        topic = f'/hash_probe/{name}'
        node.create_publisher(msg_type, topic, 1)
        assert wait_for(lambda: node.get_publishers_info_by_topic(topic))
        info = node.get_publishers_info_by_topic(topic)[0]
        assert info.topic_type == f'vision_msgs/msg/{name}'
        assert str(info.topic_type_hash) == f'RIHS01_{EXPECTED_HASHES[name]}'
