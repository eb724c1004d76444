"""Cross-camera batching: cameras that share a device and a model share one inference call.

ROS-free; the multi-camera runner feeds it from its subscriptions.

- ``BatchCollector`` (pure logic, no threads, the caller passes the clock): holds at most ONE
  pending frame per camera (a newer frame replaces an untaken one: newest wins, the old one is
  returned as dropped). A batch is ready when ``max_batch`` frames are pending, or every
  *expected* camera has one pending, or the oldest pending frame has waited ``max_wait_s``.
  Expected cameras are those that sent a frame within ``silent_after_s``; a camera that goes
  silent stops being waited for, and a slow camera delays the others by at most
  ``max_wait_s``. ``take`` returns up to ``max_batch`` frames, oldest first.
- ``BatchScheduler``: one worker thread over a ``BatchCollector`` and a batch detector
  (anything with ``detect_batch(sources) -> results``, e.g. ``pipeline.Detector``).
  ``submit(camera, source, header)`` takes a ``SourceImage`` (the adapter made it; anything
  else raises ``InputError`` at once) and never blocks; each frame's result comes back
  through ``on_result(CameraResult)`` (when given) with that frame's own ``header`` (opaque
  metadata, returned untouched), on the worker (or runner) thread, in arrival order per
  camera.
  ``request(camera, source)`` submits a frame and returns its ``Ticket``, the completion
  handle a caller waits on (``Ticket.wait(timeout)`` -> ``CameraResult``); a ticketed frame
  that is dropped (replaced by a newer one, or pending at ``close()``) completes with a
  ``FrameDropped`` error. If the batch call fails, its frames are retried one by one so one
  camera's bad frame never costs the others theirs. ``close()`` stops the worker (pending
  frames are dropped and counted). Host frames overlap: with a detector that can stage
  (``Detector.can_stage``: the CUDA preprocessor's pinned staging slots), the worker thread
  only collects batches and stages them (``detector.stage``: pack into pinned memory, H2D
  queued) and a second thread runs them (``detect_batch(sources, staged=...)``) and delivers
  the results, so batch n + 1 is packed and sent while batch n infers; at most one staged
  batch waits for the runner. Batch n + 1 exists only where frames arrive while batch n runs
  (cameras with more than one frame in flight: ``submit``; not ``BatchClient``, whose camera
  waits for its result before sending its next frame).
- ``group_key(config)``: cameras whose configs give the same key can share a scheduler (same
  value of every parameter that affects the engine or the detector: ``params`` marks each);
  DLA devices never batch.
- ``BatchGroups``: what the multi-camera runner uses. ``factory(camera)`` returns a detector
  factory for that camera's node: cameras whose configs share a ``group_key`` and have
  ``max_batch`` > 1 get a ``BatchClient`` of one shared ``Detector`` + ``BatchScheduler``
  (``max_wait_s`` = ``batch_wait_ms``); the others get their own ``Detector``. A
  ``BatchClient`` looks like a ``Detector`` to the node (``detect``, ``backend``, ``labels``,
  ``close``): ``detect(source)`` requests the frame's ticket and blocks the camera's own
  worker thread until its batch has run, so each camera has at most one frame in the
  scheduler and the node's keep-newest slot still decides which frame that is. The shared
  detector closes with its last client.
"""

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .errors import InputError
from .image import SourceImage
from .params import DetectorConfig, DLA_DEVICES

LOGGER = logging.getLogger(__name__)


@dataclass
class CameraResult:
    """What ``on_result`` receives for one frame: a result or an error, never both."""

    camera: str
    header: Any
    result: Any = None
    error: Optional[BaseException] = None
    waited_s: float = 0.0
    batch_size: int = 0


class FrameDropped(RuntimeError):
    """A ticketed frame left the scheduler unprocessed (replaced by a newer one, or closed)."""


class Ticket:
    """The completion handle of one requested frame (see the module contract)."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._outcome: Optional[CameraResult] = None

    def complete(self, outcome: CameraResult) -> None:
        """Record the frame's outcome and wake the waiter (the scheduler calls this once)."""
        self._outcome = outcome
        self._done.set()

    @property
    def done(self) -> bool:
        """Whether the outcome is there."""
        return self._done.is_set()

    def wait(self, timeout: Optional[float] = None) -> Optional[CameraResult]:
        """Return the outcome, or None when ``timeout`` s passed first."""
        return self._outcome if self._done.wait(timeout) else None


@dataclass
class Frame:
    """One camera's frame waiting for a batch."""

    camera: str
    image: SourceImage
    header: Any
    arrival: float
    #: Completed with the frame's outcome (``BatchScheduler.request``), else None.
    ticket: Optional[Ticket] = None


class BatchCollector:
    """Newest-wins pending frames per camera and the batch-ready rule; see the module doc."""

    def __init__(self, max_batch: int, max_wait_s: float,
                 silent_after_s: Optional[float] = None) -> None:
        if max_batch < 1:
            raise ValueError(f'max_batch must be >= 1, got {max_batch}')
        if max_wait_s < 0:
            raise ValueError(f'max_wait_s must be >= 0, got {max_wait_s}')
        self.max_batch = int(max_batch)
        self.max_wait_s = float(max_wait_s)
        self.silent_after_s = (max(0.5, 20.0 * self.max_wait_s) if silent_after_s is None
                               else float(silent_after_s))
        self._pending: Dict[str, Frame] = {}
        self._last_seen: Dict[str, float] = {}

    def submit(self, frame: Frame) -> Optional[Frame]:
        """Queue ``frame``; return the frame of the same camera it replaced (dropped), if any."""
        dropped = self._pending.pop(frame.camera, None)
        self._pending[frame.camera] = frame
        self._last_seen[frame.camera] = frame.arrival
        return dropped

    @property
    def pending(self) -> int:
        """Number of frames waiting."""
        return len(self._pending)

    def expected(self, now: float) -> List[str]:
        """Cameras that sent a frame within ``silent_after_s`` of ``now``."""
        return [cam for cam, seen in self._last_seen.items()
                if now - seen <= self.silent_after_s]

    def deadline(self) -> Optional[float]:
        """Clock time at which the oldest pending frame has waited ``max_wait_s``."""
        if not self._pending:
            return None
        return min(f.arrival for f in self._pending.values()) + self.max_wait_s

    def ready(self, now: float) -> bool:
        """Whether a batch should run at ``now`` (see the module contract)."""
        if not self._pending:
            return False
        if len(self._pending) >= self.max_batch:
            return True
        if all(cam in self._pending for cam in self.expected(now)):
            return True
        deadline = self.deadline()
        return deadline is not None and now >= deadline

    def take(self) -> List[Frame]:
        """Remove and return up to ``max_batch`` pending frames, oldest first."""
        frames = sorted(self._pending.values(), key=lambda f: f.arrival)[:self.max_batch]
        for frame in frames:
            del self._pending[frame.camera]
        return frames

    def clear(self) -> List[Frame]:
        """Remove and return every pending frame."""
        frames = list(self._pending.values())
        self._pending.clear()
        return frames


@dataclass
class BatchStats:
    """Counters of one scheduler (read them under no lock: ints, approximate while running)."""

    submitted: int = 0
    dropped: int = 0
    processed: int = 0
    failed: int = 0
    batches: int = 0
    batch_sizes: Dict[int, int] = field(default_factory=dict)
    dropped_by_camera: Dict[str, int] = field(default_factory=dict)


class BatchScheduler:
    """A worker thread that runs pending frames of several cameras in batches."""

    def __init__(self, detector: Any, on_result: Optional[Callable[[CameraResult], None]],
                 max_batch: Optional[int] = None, max_wait_s: float = 0.005,
                 silent_after_s: Optional[float] = None,
                 clock: Callable[[], float] = time.monotonic, name: str = 'batch') -> None:
        if max_batch is None:
            max_batch = int(detector.backend.capabilities.max_batch)
        self.detector = detector
        self.on_result = on_result
        self.clock = clock
        self.stats = BatchStats()
        self._collector = BatchCollector(max_batch, max_wait_s, silent_after_s)
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=f'yolox-{name}', daemon=True)
        self._thread.start()

    @property
    def max_batch(self) -> int:
        """Most frames per inference call."""
        return self._collector.max_batch

    def submit(self, camera: str, source: SourceImage, header: Any = None) -> bool:
        """Queue one frame (never blocks); return False when it replaced an untaken frame."""
        return self._submit(Frame(str(camera), source, header, self.clock()))

    def request(self, camera: str, source: SourceImage, header: Any = None) -> Ticket:
        """Queue one frame (never blocks) and return its completion ``Ticket``."""
        ticket = Ticket()
        self._submit(Frame(str(camera), source, header, self.clock(), ticket))
        return ticket

    def _submit(self, frame: Frame) -> bool:
        if not isinstance(frame.image, SourceImage):
            raise InputError(f'camera {frame.camera}: expected a SourceImage, got '
                             f'{type(frame.image).__name__}')
        with self._cond:
            if self._closed:
                raise RuntimeError('BatchScheduler is closed')
            self.stats.submitted += 1
            dropped = self._collector.submit(frame)
            if dropped is not None:
                self.stats.dropped += 1
                by_cam = self.stats.dropped_by_camera
                by_cam[frame.camera] = by_cam.get(frame.camera, 0) + 1
            self._cond.notify()
        if dropped is not None:
            self._abandon(dropped, 'replaced by a newer frame')
        return dropped is None

    @staticmethod
    def _abandon(frame: Frame, why: str) -> None:
        """Complete a dropped frame's ticket with ``FrameDropped``."""
        if frame.ticket is not None:
            frame.ticket.complete(CameraResult(
                frame.camera, frame.header,
                error=FrameDropped(f'camera {frame.camera}: frame {why}')))

    def _next_batch(self) -> Optional[List[Frame]]:
        with self._cond:
            while not self._closed:
                now = self.clock()
                if self._collector.ready(now):
                    return self._collector.take()
                deadline = self._collector.deadline()
                timeout = None if deadline is None else max(0.0, deadline - now)
                # wake at the deadline, or at least every 50 ms to re-read the clock
                self._cond.wait(0.05 if timeout is None else min(timeout, 0.05))
            return None

    def _loop(self) -> None:
        if getattr(self.detector, 'can_stage', False) is True:
            self._staging_loop()
            return
        while True:
            frames = self._next_batch()
            if frames is None:
                return
            self._run_logged(frames)

    def _run_logged(self, frames: List[Frame], staged: Any = None) -> None:
        try:
            self._run(frames, staged)
        except Exception:  # noqa: BLE001 - the worker must outlive any one batch
            LOGGER.exception('batch of %d frames failed', len(frames))

    def _staging_loop(self) -> None:
        """Collect and stage batches here; a runner thread runs them (host frames overlap)."""
        handoff: 'queue.Queue[Optional[Tuple[List[Frame], Any]]]' = queue.Queue(maxsize=1)

        def runner() -> None:
            while True:
                item = handoff.get()
                if item is None:
                    return
                self._run_logged(*item)

        thread = threading.Thread(target=runner, name=f'{self._thread.name}-run', daemon=True)
        thread.start()
        try:
            while True:
                frames = self._next_batch()
                if frames is None:
                    return
                staged = None
                try:
                    staged = self.detector.stage([frame.image for frame in frames])
                except Exception as exc:  # noqa: BLE001 - the batch runs unstaged, fails there
                    LOGGER.debug('staging a batch of %d failed (%s)', len(frames), exc)
                handoff.put((frames, staged))
        finally:
            handoff.put(None)
            thread.join()

    def _deliver(self, frame: Frame, result: Any = None, error: Optional[BaseException] = None,
                 batch_size: int = 0) -> None:
        if error is None:
            self.stats.processed += 1
        else:
            self.stats.failed += 1
        outcome = CameraResult(frame.camera, frame.header, result, error,
                               max(0.0, self.clock() - frame.arrival), batch_size)
        if frame.ticket is not None:
            frame.ticket.complete(outcome)
        if self.on_result is None:
            return
        try:
            self.on_result(outcome)
        except Exception:  # noqa: BLE001 - a broken consumer must not stop the others
            LOGGER.exception('on_result failed for camera %s', frame.camera)

    def _run(self, frames: List[Frame], staged: Any = None) -> None:
        good = frames
        try:
            images = [frame.image for frame in good]
            results = (self.detector.detect_batch(images) if staged is None
                       else self.detector.detect_batch(images, staged=staged))
        except Exception as exc:  # noqa: BLE001 - retried frame by frame below
            if len(good) == 1:
                self._deliver(good[0], error=exc)
                return
            LOGGER.warning('batch of %d failed (%s); retrying frame by frame', len(good), exc)
            for frame in good:
                self._run_one(frame)
            return
        self.stats.batches += 1
        sizes = self.stats.batch_sizes
        sizes[len(good)] = sizes.get(len(good), 0) + 1
        for frame, result in zip(good, results):
            self._deliver(frame, result, batch_size=len(good))

    def _run_one(self, frame: Frame) -> None:
        try:
            result = self.detector.detect_batch([frame.image])[0]
        except Exception as exc:  # noqa: BLE001 - reported to this camera only
            self._deliver(frame, error=exc)
            return
        self.stats.batches += 1
        self.stats.batch_sizes[1] = self.stats.batch_sizes.get(1, 0) + 1
        self._deliver(frame, result, batch_size=1)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker (after the batch it is running) and drop pending frames."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            dropped = self._collector.clear()
            self.stats.dropped += len(dropped)
            self._cond.notify_all()
        for frame in dropped:
            self._abandon(frame, 'dropped: the scheduler closed')
        self._thread.join(timeout)

    def __enter__(self) -> 'BatchScheduler':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def group_key(config: DetectorConfig) -> Optional[Tuple]:
    """Return the key of cameras that may share one batched detector, or None (DLA).

    Every ENGINE and DETECTOR parameter of the schema (``params.affects``), with the model
    and label paths resolved: cameras that differ in any of them never share a detector.
    """
    if config.device in DLA_DEVICES:
        return None
    return tuple(sorted(config.detector_values().items()))


def group_cameras(configs: Dict[str, DetectorConfig]) -> List[Sequence[str]]:
    """Split camera names into batch groups (a DLA camera, or max_batch 1, is alone)."""
    groups: Dict[Tuple, List[str]] = {}
    alone: List[Sequence[str]] = []
    for camera, config in configs.items():
        key = group_key(config)
        if key is None or config.max_batch <= 1:
            alone.append([camera])
        else:
            groups.setdefault(key, []).append(camera)
    return list(groups.values()) + alone


class BatchGroup:
    """One shared detector and scheduler, and the cameras (clients) that use it."""

    def __init__(self, detector: Any, max_wait_s: float) -> None:
        self.detector = detector
        self.scheduler = BatchScheduler(detector, None, max_wait_s=max_wait_s)
        self._lock = threading.Lock()
        self._clients = 0

    def client(self, camera: str) -> 'BatchClient':
        """Return a new client for ``camera``."""
        with self._lock:
            self._clients += 1
        return BatchClient(self, camera)

    def release(self) -> None:
        """Drop one client; the last one closes the scheduler and the detector."""
        with self._lock:
            self._clients -= 1
            last = self._clients == 0
        if last:
            self.scheduler.close()
            self.detector.close()


class BatchClient:
    """A camera's ``Detector`` look-alike over a shared ``BatchGroup``; see the module doc."""

    #: Longest a frame may wait for its batch result before ``detect`` gives up.
    TIMEOUT_S = 120.0

    def __init__(self, group: BatchGroup, camera: str) -> None:
        self.group = group
        self.camera = camera
        self._closed = False

    @property
    def backend(self) -> Any:
        """The shared backend."""
        return self.group.detector.backend

    @property
    def labels(self) -> List[str]:
        """The shared label list."""
        return self.group.detector.labels

    @property
    def input_hw(self) -> Tuple[int, int]:
        """Model input (height, width)."""
        return self.group.detector.input_hw

    def detect(self, source: SourceImage) -> Any:
        """Detect in one frame through the shared batch (blocks until its batch has run)."""
        if self._closed:
            raise RuntimeError(f'camera {self.camera}: detector is closed')
        outcome = self.group.scheduler.request(self.camera, source).wait(self.TIMEOUT_S)
        if outcome is None:
            raise RuntimeError(f'camera {self.camera}: no batch result within '
                               f'{self.TIMEOUT_S:.0f} s')
        if outcome.error is not None:
            raise outcome.error
        return outcome.result

    def label_of(self, class_id: int) -> str:
        """Return the label name of ``class_id``."""
        return self.group.detector.label_of(class_id)

    def close(self) -> None:
        """Leave the group (idempotent)."""
        if not self._closed:
            self._closed = True
            self.group.release()


class BatchGroups:
    """Detector factories per camera that share batched detectors; see the module doc."""

    def __init__(self, make_detector: Optional[Callable[[DetectorConfig], Any]] = None
                 ) -> None:
        if make_detector is None:
            from .pipeline import Detector

            make_detector = Detector.from_config
        self.make_detector = make_detector
        self._groups: Dict[Tuple, BatchGroup] = {}
        self._lock = threading.Lock()

    def factory(self, camera: str) -> Callable[[DetectorConfig], Any]:
        """Return the detector factory for ``camera``'s node."""
        def make(config: DetectorConfig) -> Any:
            key = group_key(config)
            if key is None or config.max_batch <= 1:
                return self.make_detector(config)
            with self._lock:
                group = self._groups.get(key)
                if group is None or group.scheduler._closed:
                    group = self._groups[key] = BatchGroup(self.make_detector(config),
                                                           config.batch_wait_ms / 1e3)
                    LOGGER.info('batch group: max_batch %d, wait %.1f ms, %s on %s',
                                config.max_batch, config.batch_wait_ms,
                                config.resolved_model_path.name, config.device)
                return group.client(camera)
        return make
