"""The detector node over real DDS: planted objects in, vision_msgs out, bad input skipped."""

import re
import time
from typing import Any, List

import numpy as np
import pytest
from conftest import wait_for
from ros_helpers import box_of, image_msg, planted_image, publish_until

from tensorrt_yolox_py.errors import ParameterError
from tensorrt_yolox_py.labels import DEFAULT_LABELS
from tensorrt_yolox_py.devkit.synthetic import RED_CLASS

pytestmark = pytest.mark.ros


def _subscribe(peer: Any, msg_type: Any, topic: str, qos: Any = 10) -> List[Any]:
    received: List[Any] = []
    peer.create_subscription(msg_type, topic, received.append, qos)
    return received


def test_planted_object_bgr8_rgb8_padded_step_header_copied(ros: Any, cpu_params: dict) -> None:
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    ros.yolox('det', cpu_params)
    peer = ros.peer()
    got = _subscribe(peer, Detection2DArray, '/det/out/objects')
    pub = peer.create_publisher(Image, '/det/in/image', 10)
    cases = [('bgr8', 0, (3, 2), 480, 640), ('rgb8', 13, (5, 4), 480, 640),
             ('bgr8', 7, (2, 6), 480, 640), ('rgb8', 1, (1, 1), 300, 200)]
    for index, (encoding, pad, cell, height, width) in enumerate(cases):
        image, expected = planted_image(height, width, cell, encoding)
        frame = f'cam_{index}'
        msg = image_msg(image, encoding, pad, frame, stamp=(1000 + index, 123456789))
        assert publish_until(pub, msg, lambda: any(m.header.frame_id == frame for m in got))
        out = next(m for m in got if m.header.frame_id == frame)
        assert (out.header.stamp.sec, out.header.stamp.nanosec) == (1000 + index, 123456789)
        assert len(out.detections) == 1, (encoding, pad, cell)
        det = out.detections[0]
        assert det.header.frame_id == frame and det.header.stamp.sec == 1000 + index
        assert det.results[0].hypothesis.class_id == DEFAULT_LABELS[RED_CLASS]
        assert det.results[0].hypothesis.score > 0.9
        assert det.bbox.center.theta == 0.0
        np.testing.assert_allclose(box_of(det), expected, atol=0.5)

    # The same red bytes labelled rgb8 are blue: the encoding is honoured, nothing is found.
    image, _ = planted_image(480, 640, (3, 2), 'bgr8')
    msg = image_msg(image, 'rgb8', 0, 'mislabelled')
    assert publish_until(pub, msg, lambda: any(m.header.frame_id == 'mislabelled' for m in got))
    assert next(m for m in got if m.header.frame_id == 'mislabelled').detections == []


def test_label_info_reaches_a_late_subscriber(ros: Any, cpu_params: dict) -> None:
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from vision_msgs.msg import LabelInfo

    ros.yolox('det', {**cpu_params, 'score_threshold': 0.42})
    # The node published LabelInfo in its constructor; this subscriber comes later.
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
    got = _subscribe(ros.peer(), LabelInfo, '/det/out/label_info', qos)
    assert wait_for(lambda: len(got) >= 1)
    info = got[0]
    assert [(c.class_id, c.class_name) for c in info.class_map] == list(
        enumerate(DEFAULT_LABELS))
    assert info.threshold == pytest.approx(0.42, abs=1e-6)


@pytest.mark.timing
def test_annotated_image_only_while_subscribed_and_debug_topics(ros: Any,
                                                                cpu_params: dict) -> None:
    from sensor_msgs.msg import Image
    from std_msgs.msg import Float64
    from vision_msgs.msg import Detection2DArray

    node = ros.yolox('det', cpu_params)
    peer = ros.peer()
    objects = _subscribe(peer, Detection2DArray, '/det/out/objects')
    times = _subscribe(peer, Float64, '/det/debug/processing_time_ms')
    latencies = _subscribe(peer, Float64, '/det/debug/pipeline_latency_ms')
    pub = peer.create_publisher(Image, '/det/in/image', 10)
    image, expected = planted_image(480, 640, (4, 3))
    msg = image_msg(image, 'bgr8', 5, 'first', clock=peer.get_clock())
    # The debug topics are published while someone listens: once DDS has matched them.
    assert publish_until(pub, msg, lambda: objects and times and latencies)
    assert node.stats.annotated == 0  # nobody listened to ~/out/image
    assert 0.0 < times[0].data < 30000.0
    assert 0.0 < latencies[0].data < 30000.0

    annotated = _subscribe(peer, Image, '/det/out/image', 1)
    msg = image_msg(image, 'bgr8', 5, 'second', clock=peer.get_clock())
    assert publish_until(pub, msg, lambda: len(annotated) >= 1)
    out = annotated[0]
    assert (out.height, out.width, out.encoding, out.step) == (480, 640, 'bgr8', 640 * 3)
    assert out.header.frame_id == 'second'
    assert node.stats.annotated >= 1
    drawn = np.frombuffer(out.data, np.uint8).reshape(480, 640, 3)
    x1, y1, x2, y2 = (int(round(v)) for v in expected)
    assert not np.array_equal(drawn[y2, x1:x2], image[y2, x1:x2])  # box edge drawn
    np.testing.assert_array_equal(drawn[400:, 500:], image[400:, 500:])  # far away: untouched


def _bad_messages(image: np.ndarray) -> List[Any]:
    """(frame_id, message, expected reason) for each kind of malformed image."""
    import array

    from sensor_msgs.msg import Image

    wrong_step = image_msg(image, frame_id='bad_step')
    wrong_step.step = 640 * 3 - 1
    short = image_msg(image, frame_id='bad_size')
    short.data = short.data[:-1]
    mono = image_msg(image, frame_id='bad_encoding')
    mono.encoding = '16UC1'
    empty = Image(height=0, width=0, encoding='bgr8', step=0)
    empty.header.frame_id = 'bad_empty'
    huge = Image(height=8000, width=8000, encoding='bgr8', step=8000 * 3)
    huge.data = array.array('B', bytes(8000 * 8000 * 3))  # a real 192 MB image
    huge.header.frame_id = 'bad_huge'
    return [(wrong_step, 'shorter than a row'), (short, 'bytes but step * height'),
            (mono, "unsupported encoding '16UC1'"), (empty, 'empty image'),
            (huge, 'exceeds the largest accepted size')]


@pytest.mark.timing
def test_bad_input_is_skipped_logged_rate_limited_and_next_frame_served(
        ros: Any, cpu_params: dict, capfd: pytest.CaptureFixture) -> None:
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    node = ros.yolox('det', cpu_params)
    peer = ros.peer()
    got = _subscribe(peer, Detection2DArray, '/det/out/objects')
    pub = peer.create_publisher(Image, '/det/in/image', 10)
    image, expected = planted_image(480, 640, (3, 2))
    started = time.monotonic()
    for msg, reason in _bad_messages(image):
        before = node.stats.skipped
        assert publish_until(pub, msg, lambda: node.stats.skipped > before, every=3.0), reason
        assert reason in node.stats.last_skip_reason
    # Bad frames of one kind again and again: logged once per period, still counted each time.
    mono = image_msg(image, frame_id='bad_encoding_again')
    mono.encoding = 'mono16'
    for _ in range(5):
        before = node.stats.skipped
        assert publish_until(pub, mono, lambda: node.stats.skipped > before)
    elapsed = time.monotonic() - started
    good = image_msg(image, 'bgr8', 3, 'good')
    assert publish_until(pub, good, lambda: any(m.header.frame_id == 'good' for m in got))
    assert not [m for m in got if m.header.frame_id.startswith('bad')]
    out = next(m for m in got if m.header.frame_id == 'good')
    np.testing.assert_allclose(box_of(out.detections[0]), expected, atol=0.5)
    assert node.stats.failed == 0
    logged = capfd.readouterr().err
    assert re.search(r'skipping image 640x480 .*step 1919 is shorter than a row', logged)
    assert 'exceeds the largest accepted size' in logged
    from tensorrt_yolox_py.ros.node import WARN_PERIOD_S

    # 6 frames with an unsupported encoding (yuv422 once, mono16 five times).
    assert 1 <= logged.count('unsupported encoding') <= 1 + int(elapsed / WARN_PERIOD_S)


@pytest.mark.parametrize('params, name, text', [
    ({'score_threshold': 1.5}, 'score_threshold', 'above the maximum'),
    ({'score_threshold': 1}, 'score_threshold', 'expected a float'),
    ({'score_threshold': 'high'}, 'score_threshold', 'expected a number'),
    ({'max_detections': 0}, 'max_detections', 'below the minimum'),
    ({'device': 'tpu'}, 'device', 'not one of'),
    ({'output_format': 'xyxy'}, 'output_format', 'not one of'),
    ({'dla_core_id': 0}, 'dla_core_id', "contradicts device 'cpu'"),
    ({'backend': 'tensorrt'}, 'backend', 'tensorrt'),
])
def test_bad_parameter_fails_at_startup_naming_it(ros: Any, cpu_params: dict, params: dict,
                                                  name: str, text: str) -> None:
    with pytest.raises(ParameterError) as info:
        ros.yolox('bad', {**cpu_params, **params})
    assert info.value.name == name
    assert text in str(info.value)


def test_missing_label_file_fails_at_startup_naming_the_file(ros: Any, cpu_params: dict
                                                             ) -> None:
    from tensorrt_yolox_py.errors import FileError

    with pytest.raises(FileError, match='/nonexistent/labels.txt'):
        ros.yolox('bad', {**cpu_params, 'label_path': '/nonexistent/labels.txt'})


def test_parameters_are_declared_with_descriptors(ros: Any, cpu_params: dict) -> None:
    from rcl_interfaces.msg import ParameterType

    from tensorrt_yolox_py.params import PARAMS

    node = ros.yolox('det', {**cpu_params, 'device': 'cpu'})
    descriptors = node.describe_parameters([spec.name for spec in PARAMS])
    by_name = {d.name: d for d in descriptors}
    assert by_name['score_threshold'].type == ParameterType.PARAMETER_DOUBLE
    assert by_name['score_threshold'].floating_point_range[0].to_value == 1.0
    assert by_name['dla_core_id'].integer_range[0].from_value == -1
    assert 'gpu, dla0, dla1, cpu' in by_name['device'].additional_constraints
    assert all(d.description for d in descriptors)
    assert node.config.device == 'cpu' and node.config.model_path == cpu_params['model_path']
    assert node.get_parameter('nms_threshold').value == 0.7


def test_input_qos_is_sensor_data_and_overridable(ros: Any, cpu_params: dict) -> None:
    from rclpy.qos import ReliabilityPolicy

    ros.yolox('det', cpu_params)
    ros.yolox('det_reliable', {
        **cpu_params, 'qos_overrides./det_reliable/in/image.subscription.reliability': 'reliable'})
    peer = ros.peer()
    assert wait_for(lambda: peer.get_subscriptions_info_by_topic('/det/in/image')
                    and peer.get_subscriptions_info_by_topic('/det_reliable/in/image'))
    qos = peer.get_subscriptions_info_by_topic('/det/in/image')[0].qos_profile
    assert qos.reliability == ReliabilityPolicy.BEST_EFFORT
    qos = peer.get_subscriptions_info_by_topic('/det_reliable/in/image')[0].qos_profile
    assert qos.reliability == ReliabilityPolicy.RELIABLE
