"""ROS-free pieces of the node's threading: a keep-newest slot, frame counters, a log limiter.

- ``LatestSlot``: one-item mailbox between the subscription callback (producer, never blocks)
  and the worker thread (consumer). ``put`` replaces an item not yet taken and reports it as
  dropped, so memory holds at most one pending frame and the newest frame always wins.
- ``FrameStats``: thread-safe counters (received, processed, dropped, skipped, failed,
  annotated; and frames DDS reported lost before the node, ``lost``, and incompatible-QoS
  publishers, ``qos_incompatible``) and a bounded window of recent per-stage timings.
- ``Health``: the diagnostics level from successive snapshots (see ``Health.assess``): ERROR
  while a publisher with incompatible QoS was seen and no frame arrived since, WARN when more
  than ``LOSS_WARN_FRACTION`` of the frames of the last ``LOSS_WINDOW_S`` seconds were lost
  before the node or when frames were newly skipped or failed, else OK.
- ``RateLimiter``: at most one log line per key per ``period_s``, counting what it held back.
"""

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, Generic, Optional, Tuple, TypeVar

import numpy as np

T = TypeVar('T')
#: WARN when more than this fraction of the frames offered in the window were lost in DDS.
LOSS_WARN_FRACTION = 0.01
#: Seconds over which the loss fraction is computed.
LOSS_WINDOW_S = 5.0


class LatestSlot(Generic[T]):
    """Keep only the newest item; ``get`` blocks until one arrives or the slot is closed."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Optional[T] = None
        self._has_item = False
        self._closed = False

    def put(self, item: T) -> bool:
        """Store ``item``; return True when it replaced an item nobody had taken (a drop)."""
        with self._cond:
            replaced = self._has_item
            self._item, self._has_item = item, True
            self._cond.notify()
            return replaced

    def get(self, timeout: Optional[float] = None) -> Optional[T]:
        """Take the newest item, or return None on timeout or when closed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._has_item or self._closed, timeout):
                return None
            if self._closed:
                return None
            item, self._item, self._has_item = self._item, None, False
            return item

    def close(self) -> None:
        """Wake every waiting ``get`` (they return None) and refuse further items."""
        with self._cond:
            self._closed = True
            self._item, self._has_item = None, False
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._closed


@dataclass
class FrameStats:
    """Counters of one node; ``received == processed + dropped + skipped + failed + pending``."""

    window: int = 100
    received: int = 0
    processed: int = 0
    dropped: int = 0
    skipped: int = 0
    failed: int = 0
    annotated: int = 0
    lost: int = 0
    qos_incompatible: int = 0
    last_skip_reason: str = ''
    #: A publisher with incompatible QoS was seen and no frame has arrived since.
    qos_mismatch: bool = False
    qos_policy: str = ''
    _timings: Deque[Dict[str, float]] = field(default_factory=deque, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to counter ``name`` (a received frame ends a QoS-mismatch state)."""
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)
            if name == 'received':
                self.qos_mismatch = False

    def incompatible_qos(self, change: int, policy: str) -> None:
        """Count publishers found with incompatible QoS (``policy``: the last one named)."""
        with self._lock:
            self.qos_incompatible += max(int(change), 1)
            self.qos_policy = policy
            self.qos_mismatch = True

    def skip(self, reason: str) -> None:
        """Count a skipped (malformed) frame and remember why."""
        with self._lock:
            self.skipped += 1
            self.last_skip_reason = reason

    def add_timings(self, timings: Dict[str, float]) -> None:
        """Record one processed frame's per-stage times (ms); keeps the last ``window``."""
        with self._lock:
            self.processed += 1
            self._timings.append(dict(timings))
            while len(self._timings) > self.window:
                self._timings.popleft()

    def snapshot(self) -> Dict[str, Any]:
        """Return the counters and the median of each stage time over the window."""
        with self._lock:
            counters = {name: getattr(self, name) for name in COUNTERS}
            counters.update(last_skip_reason=self.last_skip_reason,
                            qos_mismatch=self.qos_mismatch, qos_policy=self.qos_policy)
            samples = list(self._timings)
        stages: Dict[str, list] = {}
        for sample in samples:
            for name, value in sample.items():
                stages.setdefault(name, []).append(value)
        counters['median_ms'] = {name: float(np.median(values))
                                 for name, values in stages.items()}
        return counters


COUNTERS = ('received', 'processed', 'dropped', 'skipped', 'failed', 'annotated', 'lost',
            'qos_incompatible')


class Health:
    """Diagnostics level of one node from successive ``FrameStats`` snapshots."""

    OK, WARN, ERROR = 'OK', 'WARN', 'ERROR'

    def __init__(self, window_s: float = LOSS_WINDOW_S,
                 warn_fraction: float = LOSS_WARN_FRACTION) -> None:
        self.window_s, self.warn_fraction = float(window_s), float(warn_fraction)
        self._history: Deque[Tuple[float, int, int]] = deque()
        self._problems = 0

    def assess(self, snap: Dict[str, Any], now: float) -> Tuple[str, str]:
        """Return (level, message) for ``snap`` taken at monotonic time ``now``."""
        self._history.append((now, snap['received'], snap['lost']))
        while len(self._history) > 1 and now - self._history[1][0] >= self.window_s:
            self._history.popleft()
        _, received0, lost0 = self._history[0]
        received, lost = snap['received'] - received0, snap['lost'] - lost0
        problems = snap['skipped'] + snap['failed']
        new_problems = problems > self._problems
        self._problems = problems
        if snap['qos_mismatch']:
            return self.ERROR, (f'a publisher of the input topic has incompatible QoS '
                                f'({snap["qos_policy"] or "policy unknown"}): it delivers '
                                'nothing; match its QoS or set qos_overrides')
        if lost and lost > self.warn_fraction * (lost + received):
            return self.WARN, (f'{lost} of {lost + received} frames lost before the node in '
                               f'the last {self.window_s:g} s (DDS)')
        if new_problems:
            return self.WARN, 'new malformed or failed frames: ' + snap['last_skip_reason']
        return self.OK, 'ok'


class RateLimiter:
    """Allow one event per key per ``period_s``; ``allow`` also returns how many were held."""

    def __init__(self, period_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.period_s = float(period_s)
        self._clock = clock
        self._last: Dict[str, float] = {}
        self._held: Dict[str, int] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> Tuple[bool, int]:
        """Return (whether to log now, events suppressed for ``key`` since the last log)."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period_s:
                self._held[key] = self._held.get(key, 0) + 1
                return False, 0
            self._last[key] = now
            return True, self._held.pop(key, 0)
