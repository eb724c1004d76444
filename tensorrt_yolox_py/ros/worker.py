"""ROS-free pieces of the node's threading: a keep-newest slot, frame counters, a log limiter.

- ``LatestSlot``: one-item mailbox between the subscription callback (producer, never blocks)
  and the worker thread (consumer). ``put`` replaces an item not yet taken and reports it as
  dropped, so memory holds at most one pending frame and the newest frame always wins.
- ``FrameStats``: thread-safe counters (received, processed, dropped, skipped, failed,
  annotated) and a bounded window of recent per-stage timings for diagnostics.
- ``RateLimiter``: at most one log line per key per ``period_s``, counting what it held back.
"""

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, Generic, Optional, Tuple, TypeVar

import numpy as np

T = TypeVar('T')


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
    last_skip_reason: str = ''
    _timings: Deque[Dict[str, float]] = field(default_factory=deque, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to counter ``name``."""
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

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
            counters = {name: getattr(self, name) for name in
                        ('received', 'processed', 'dropped', 'skipped', 'failed', 'annotated')}
            counters['last_skip_reason'] = self.last_skip_reason
            samples = list(self._timings)
        stages: Dict[str, list] = {}
        for sample in samples:
            for name, value in sample.items():
                stages.setdefault(name, []).append(value)
        counters['median_ms'] = {name: float(np.median(values))
                                 for name, values in stages.items()}
        return counters


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
