"""Frames lost before the node and QoS mismatches are counted and reach /diagnostics.

Over real DDS (Fast DDS, loopback/shared memory): a publisher in another process without the
large-data profile sends 8x8 frames and 1920x1280 frames alternately; the large ones never
arrive. A plain subscriber of the test, beside the node, records which frame ids arrive: the
gaps between them are the independent reference for the node's ``lost`` counter (DDS detects a
loss by the next frame's sequence number, so a loss after the last arrived frame is not seen).
A best-effort publisher to a node whose input is overridden to reliable is a QoS mismatch:
ERROR in /diagnostics. With ``use_sim_time`` and no /clock, /diagnostics still comes at 1 Hz.
"""

import subprocess
import sys
from pathlib import Path
from typing import Any, List

import pytest

from conftest import subprocess_env, wait_for

pytestmark = pytest.mark.ros
HERE = Path(__file__).resolve().parent
FRAMES = 20


def diagnostics_of(ros: Any, node_name: str) -> List[Any]:
    """Subscribe to /diagnostics; return the list the node's statuses are appended to."""
    from diagnostic_msgs.msg import DiagnosticArray

    seen: List[Any] = []
    peer = ros.peer(f'diag_listener_{node_name}')
    peer.create_subscription(DiagnosticArray, '/diagnostics', lambda m: seen.extend(
        s for s in m.status if s.name.startswith(f'/{node_name}:')), 10)
    return seen


def values(status: Any) -> dict:
    return {kv.key: kv.value for kv in status.values}


def test_frames_lost_in_dds_are_counted_and_warned(ros: Any, cpu_params: dict) -> None:
    pytest.importorskip('diagnostic_msgs.msg')
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    node = ros.yolox('lossy', cpu_params)
    seen = diagnostics_of(ros, 'lossy')
    arrived: List[int] = []
    ros.peer('reference').create_subscription(
        Image, '/lossy/in/image', lambda m: arrived.append(int(m.header.frame_id)),
        qos_profile_sensor_data)
    env = subprocess_env()
    env.pop('FASTDDS_DEFAULT_PROFILES_FILE')            # Fast DDS defaults: large frames lost
    result = subprocess.run([sys.executable, str(HERE / 'lossy_publisher.py'),
                             '/lossy/in/image', str(FRAMES)], env=env, timeout=120,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert wait_for(lambda: node.stats.snapshot()['received'] == len(arrived) > 0)
    expected_lost = sum(b - a - 1 for a, b in zip(arrived, arrived[1:]))
    assert expected_lost >= FRAMES // 2 - 2, arrived          # the large frames, lost
    assert all(i % 2 == 0 for i in arrived)
    assert wait_for(lambda: node.stats.snapshot()['lost'] == expected_lost), (
        node.stats.snapshot(), arrived)
    assert wait_for(lambda: any(s.level == s.WARN and 'lost before the node' in s.message
                                for s in seen))
    assert wait_for(lambda: seen and values(seen[-1])['lost'] == str(expected_lost))


def test_qos_mismatch_is_an_error_in_diagnostics(ros: Any, cpu_params: dict) -> None:
    pytest.importorskip('diagnostic_msgs.msg')
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    node = ros.yolox('strict', {
        **cpu_params, 'qos_overrides./strict/in/image.subscription.reliability': 'reliable'})
    seen = diagnostics_of(ros, 'strict')
    ros.peer('camera').create_publisher(Image, '/strict/in/image', qos_profile_sensor_data)
    assert wait_for(lambda: node.stats.snapshot()['qos_incompatible'] >= 1)
    assert wait_for(lambda: any(s.level == s.ERROR and 'RELIABILITY' in s.message
                                for s in seen))
    assert values(seen[-1])['qos_incompatible'] != '0'


def test_one_nodes_qos_override_does_not_leak_to_the_next_node(ros: Any,
                                                               cpu_params: dict) -> None:
    from rclpy.qos import ReliabilityPolicy

    ros.yolox('first', {
        **cpu_params, 'qos_overrides./first/in/image.subscription.reliability': 'reliable'})
    ros.yolox('second', cpu_params)
    peer = ros.peer()
    assert wait_for(lambda: peer.get_subscriptions_info_by_topic('/second/in/image'))
    qos = peer.get_subscriptions_info_by_topic('/second/in/image')[0].qos_profile
    assert qos.reliability == ReliabilityPolicy.BEST_EFFORT


@pytest.mark.timing
def test_diagnostics_keep_coming_with_sim_time_and_no_clock(ros: Any, cpu_params: dict) -> None:
    pytest.importorskip('diagnostic_msgs.msg')
    ros.yolox('simtime', {**cpu_params, 'use_sim_time': True})
    seen = diagnostics_of(ros, 'simtime')
    assert wait_for(lambda: len(seen) >= 4, timeout=15.0), len(seen)
