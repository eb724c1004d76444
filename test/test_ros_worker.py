"""The node's ROS-free threading pieces: keep-newest slot, frame counters, log rate limiter."""

import threading
import time
from typing import List

import numpy as np
import pytest

from tensorrt_yolox_py.ros.worker import FrameStats, LatestSlot, RateLimiter


def test_slot_keeps_only_the_newest_and_reports_drops() -> None:
    slot: LatestSlot[int] = LatestSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True  # 1 was never taken: dropped
    assert slot.get(timeout=0.0) == 2
    assert slot.get(timeout=0.01) is None
    assert slot.put(3) is False


@pytest.mark.timing
def test_close_wakes_a_blocked_consumer() -> None:
    slot: LatestSlot[int] = LatestSlot()
    results: List[object] = []
    thread = threading.Thread(target=lambda: results.append(slot.get(timeout=30.0)))
    thread.start()
    time.sleep(0.05)
    started = time.monotonic()
    slot.close()
    thread.join(timeout=5.0)
    assert not thread.is_alive() and results == [None]
    assert time.monotonic() - started < 5.0
    assert slot.closed and slot.get(timeout=0.0) is None


def test_fast_producer_slow_consumer_newest_wins_and_accounting_adds_up() -> None:
    slot: LatestSlot[int] = LatestSlot()
    consumed: List[int] = []
    done = threading.Event()

    def consume() -> None:
        while True:
            item = slot.get(timeout=0.05)
            if item is None:
                if done.is_set():
                    return
                continue
            consumed.append(item)
            time.sleep(0.002)  # slower than the producer

    thread = threading.Thread(target=consume)
    thread.start()
    drops = sum(slot.put(i) for i in range(2000))
    done.set()  # the consumer still drains what is pending, then stops
    thread.join(timeout=10.0)
    assert consumed == sorted(consumed) and len(set(consumed)) == len(consumed)
    assert consumed[-1] == 1999  # the newest item is always delivered
    assert drops > 0 and drops + len(consumed) == 2000


def test_rate_limiter_per_key_with_suppressed_count() -> None:
    now = [100.0]
    limiter = RateLimiter(5.0, clock=lambda: now[0])
    assert limiter.allow('a') == (True, 0)
    assert limiter.allow('a') == (False, 0)
    assert limiter.allow('b') == (True, 0)  # keys are independent
    now[0] += 4.9
    assert limiter.allow('a') == (False, 0)
    now[0] += 0.2
    assert limiter.allow('a') == (True, 2)  # two held back since the last line
    assert limiter.allow('a') == (False, 0)


def test_frame_stats_counts_and_windowed_medians() -> None:
    stats = FrameStats(window=10)
    rng = np.random.default_rng(1)
    samples = rng.uniform(1, 50, size=25)
    for value in samples:
        stats.add_timings({'infer': float(value), 'total': float(value) + 1})
    stats.count('received', 30)
    stats.count('dropped', 4)
    stats.skip('bad step')
    snap = stats.snapshot()
    assert (snap['received'], snap['processed'], snap['dropped'], snap['skipped']) == (
        30, 25, 4, 1)
    assert snap['last_skip_reason'] == 'bad step'
    assert snap['median_ms']['infer'] == np.median(samples[-10:])
    assert snap['median_ms']['total'] == np.median(samples[-10:] + 1)
