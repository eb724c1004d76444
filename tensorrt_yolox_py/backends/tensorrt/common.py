"""TensorRT import, version policy, callback errors, and the logger / progress-monitor adapters.

- ``import_tensorrt()``: lazy import with an error that says what to install.
- ``trt_version(trt) -> (major, minor, patch)`` and ``check_supported(version)``: TensorRT
  8.6 to 11.x (``capabilities.SUPPORTED``); every version-dependent choice reads the table in
  ``capabilities``.
- ``CallbackErrors``: real TensorRT catches every Python exception raised inside a callback
  (logger, progress monitor, profiler, calibrator), prints it and carries on with a default,
  so an error or a Ctrl-C there would be lost. The package's callbacks catch
  ``BaseException`` themselves, record it here, return the default that stops the work
  (``step_complete`` -> False cancels the build, ``get_batch`` -> None ends calibration), and
  the caller re-raises it once TensorRT returns (``raise_pending``).
- ``make_logger(trt, errors)``: an ``ILogger`` forwarding TensorRT messages to Python
  ``logging`` and keeping the errors, so a failed build or deserialization raises with
  TensorRT's own words.
- ``make_progress_monitor(trt, callback, errors)``: an ``IProgressMonitor`` (TensorRT >= 10.0)
  that reports build phases, so a long build is never silent.
"""

import logging
import threading
from typing import Any, Callable, List, Optional, Tuple

from ..._lazy import require
from ...errors import YoloxError
from .capabilities import supports, unsupported_reason, version_text

LOGGER = logging.getLogger('tensorrt_yolox_py.tensorrt')

__all__ = ['CallbackErrors', 'TensorRTError', 'check_supported', 'import_tensorrt',
           'make_logger', 'make_progress_monitor', 'trt_version', 'version_text']


class TensorRTError(YoloxError, RuntimeError):
    """TensorRT refused to build, deserialize or run; the message carries TensorRT's errors."""


def import_tensorrt() -> Any:
    """Import the ``tensorrt`` module or raise MissingDependencyError saying how to get it."""
    return require('tensorrt', 'the TensorRT backend',
                   'install TensorRT 8.6, 10.x or 11.x (JetPack on Jetson, or NVIDIA\'s tensorrt '
                   'wheels on a dGPU machine); use backend:=onnxruntime / device:=cpu without it')


def trt_version(trt: Any) -> Tuple[int, int, int]:
    """Return the (major, minor, patch) of the imported TensorRT module."""
    parts = []
    for piece in str(getattr(trt, '__version__', '0')).split('.')[:3]:
        digits = ''.join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts + [0] * (3 - len(parts)))  # type: ignore[return-value]


def check_supported(version: Tuple[int, int, int]) -> None:
    """Raise TensorRTError for TensorRT versions this package cannot drive."""
    reason = unsupported_reason(version)
    if reason:
        raise TensorRTError(reason)


class CallbackErrors:
    """Exceptions raised inside TensorRT callbacks, re-raised once TensorRT returns."""

    def __init__(self) -> None:
        self._errors: List[Tuple[str, BaseException]] = []
        self._lock = threading.Lock()

    def record(self, where: str, exc: BaseException) -> None:
        """Keep ``exc`` raised inside callback ``where``."""
        with self._lock:
            self._errors.append((where, exc))
        if not isinstance(exc, Exception):
            LOGGER.warning('%s inside TensorRT callback %s; stopping', type(exc).__name__,
                           where)

    @property
    def pending(self) -> bool:
        """Whether an exception is waiting to be raised."""
        with self._lock:
            return bool(self._errors)

    def first(self) -> Optional[BaseException]:
        """Return the exception to raise: an interrupt (KeyboardInterrupt...) before errors."""
        with self._lock:
            errors = list(self._errors)
        for _, exc in errors:
            if not isinstance(exc, Exception):
                return exc
        return errors[0][1] if errors else None

    def raise_pending(self) -> None:
        """Raise (and forget) the recorded exception, if any."""
        exc = self.first()
        with self._lock:
            self._errors = []
        if exc is not None:
            raise exc


def make_logger(trt: Any, errors: Optional[CallbackErrors] = None,
                name: str = 'tensorrt_yolox_py.tensorrt') -> Any:
    """Return a ``trt.ILogger`` that forwards to ``logging`` and keeps error messages."""
    log = logging.getLogger(name)
    severity = trt.ILogger.Severity
    levels = {severity.INTERNAL_ERROR: logging.CRITICAL, severity.ERROR: logging.ERROR,
              severity.WARNING: logging.WARNING, severity.INFO: logging.INFO,
              severity.VERBOSE: logging.DEBUG}

    class ForwardingLogger(trt.ILogger):
        """Forwards TensorRT messages to Python logging; ``errors`` keeps the errors."""

        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: List[str] = []
            self.warnings: List[str] = []
            self.callback_errors = errors if errors is not None else CallbackErrors()
            self._lock = threading.Lock()

        def log(self, severity: Any, msg: str) -> None:
            try:
                level = levels.get(severity, logging.INFO)
                with self._lock:
                    if level >= logging.ERROR:
                        self.errors.append(str(msg))
                    elif level == logging.WARNING:
                        self.warnings.append(str(msg))
                log.log(level, 'TensorRT: %s', msg)
            except BaseException as exc:  # noqa: B902 - TensorRT would swallow it
                self.callback_errors.record('log', exc)

        def take_errors(self) -> str:
            with self._lock:
                text = '; '.join(self.errors)
                self.errors = []
            return text

    return ForwardingLogger()


def make_progress_monitor(trt: Any, callback: Callable[[str, int, int], None],
                          errors: CallbackErrors) -> Optional[Any]:
    """Return a ``trt.IProgressMonitor`` calling ``callback(phase, step, steps)``, or None.

    None where the TensorRT version has no IProgressMonitor (8.6). An exception in
    ``callback`` (or a Ctrl-C) is recorded in ``errors`` and cancels the build.
    """
    if not supports(trt_version(trt), 'progress_monitor'):
        return None

    class Monitor(trt.IProgressMonitor):
        """Reports TensorRT build phases and steps."""

        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._steps: dict = {}
            self._lock = threading.Lock()

        def phase_start(self, phase_name: str, parent_phase: Optional[str],
                        num_steps: int) -> None:
            try:
                with self._lock:
                    self._steps[phase_name] = int(num_steps)
                if parent_phase is None:
                    LOGGER.info('engine build phase: %s (%d steps)', phase_name, num_steps)
                callback(phase_name, 0, int(num_steps))
            except BaseException as exc:  # noqa: B902 - TensorRT would swallow it
                errors.record('phase_start', exc)

        def step_complete(self, phase_name: str, step: int) -> bool:
            if errors.pending:
                return False            # cancels the build
            try:
                with self._lock:
                    steps = self._steps.get(phase_name, 0)
                callback(phase_name, int(step) + 1, steps)
            except BaseException as exc:  # noqa: B902 - TensorRT would swallow it
                errors.record('step_complete', exc)
                return False
            return True

        def phase_finish(self, phase_name: str) -> None:
            with self._lock:
                self._steps.pop(phase_name, None)

    return Monitor()
