"""worker.Health: the diagnostics level from counters (ROS-free), and the DDS event counting."""

from types import SimpleNamespace

import pytest

from tensorrt_yolox_py.ros.worker import FrameStats, Health, LOSS_WARN_FRACTION, LOSS_WINDOW_S


def snap(stats):
    return stats.snapshot()


def test_loss_above_the_documented_fraction_warns_within_the_window():
    stats, health = FrameStats(), Health()
    stats.count('received', 1000)
    assert health.assess(snap(stats), 0.0) == ('OK', 'ok')
    stats.count('received', 99)
    stats.count('lost', 1)            # 1 of 100 = LOSS_WARN_FRACTION: not above it
    assert LOSS_WARN_FRACTION == 0.01
    assert health.assess(snap(stats), 1.0)[0] == 'OK'
    stats.count('lost', 1)
    level, message = health.assess(snap(stats), 2.0)
    assert level == 'WARN' and '2 of 101 frames lost' in message
    assert health.assess(snap(stats), 0.5 + LOSS_WINDOW_S)[0] == 'WARN'   # still in window
    stats.count('received', 100)
    assert health.assess(snap(stats), 2.1 + LOSS_WINDOW_S)[0] == 'OK'     # loss aged out


def test_qos_mismatch_is_an_error_until_a_frame_arrives():
    stats, health = FrameStats(), Health()
    stats.incompatible_qos(1, 'RELIABILITY')
    level, message = health.assess(snap(stats), 0.0)
    assert level == 'ERROR' and 'RELIABILITY' in message
    assert health.assess(snap(stats), 1.0)[0] == 'ERROR'
    stats.count('received')
    assert health.assess(snap(stats), 2.0)[0] == 'OK'
    assert snap(stats)['qos_incompatible'] == 1


def test_new_skipped_frames_warn_once():
    stats, health = FrameStats(), Health()
    stats.skip('bad encoding')
    assert health.assess(snap(stats), 0.0) == ('WARN', 'new malformed or failed frames: '
                                               'bad encoding')
    assert health.assess(snap(stats), 1.0)[0] == 'OK'


def test_message_lost_events_count_their_change_and_not_implausible_ones():
    pytest.importorskip('rclpy')
    from tensorrt_yolox_py.ros.qos_events import subscription_events

    stats, warnings = FrameStats(), []
    events = subscription_events(stats, lambda key, text: warnings.append(text))
    events.message_lost(SimpleNamespace(total_count=3, total_count_change=3))
    events.message_lost(SimpleNamespace(total_count=2 ** 64 - 2 ** 31,
                                        total_count_change=2 ** 31 - 1))
    assert stats.lost == 3 and 'not a frame count' in warnings[0]
    events.incompatible_qos(SimpleNamespace(total_count=1, total_count_change=1,
                                            last_policy_kind=16))
    assert stats.qos_incompatible == 1 and stats.qos_policy == 'RELIABILITY'
    assert 'qos_overrides' in warnings[1]
