"""TensorRT import, version policy, and the logger / progress-monitor adapters.

- ``import_tensorrt()``: lazy import with an error that says what to install.
- ``trt_version(trt) -> (major, minor, patch)`` and ``check_supported(version)``: this code
  targets the TensorRT 10 Python API (8.6 also works: it passes EXPLICIT_BATCH); TensorRT 11
  removed ``BuilderFlag.FP16/INT8`` and implicit quantization, which this builder relies on.
- ``make_logger(trt)``: an ``ILogger`` forwarding TensorRT messages to Python ``logging`` and
  keeping the errors, so a failed build or deserialization raises with TensorRT's own words.
- ``make_progress_monitor(trt, callback)``: an ``IProgressMonitor`` (TensorRT >= 10.0) that
  reports build phases, so a long build is never silent.
"""

import logging
import threading
from typing import Any, Callable, List, Optional, Tuple

from ..._lazy import require
from ...errors import YoloxError

LOGGER = logging.getLogger('tensorrt_yolox_py.tensorrt')

#: First version whose implicit INT8 calibration (IInt8*Calibrator, set_dynamic_range) is
#: deprecated ("Superseded by explicit quantization").
IMPLICIT_INT8_DEPRECATED = (10, 1, 0)
#: First version where platform_has_fast_fp16/int8 are deprecated (query CUDA instead).
PLATFORM_QUERY_DEPRECATED = (10, 5, 0)
#: Last TensorRT release line with DLA support in the 10.x series is 10.7 (per NVIDIA's docs).
FIRST_UNSUPPORTED = (11, 0, 0)


class TensorRTError(YoloxError, RuntimeError):
    """TensorRT refused to build, deserialize or run; the message carries TensorRT's errors."""


def import_tensorrt() -> Any:
    """Import the ``tensorrt`` module or raise MissingDependencyError saying how to get it."""
    return require('tensorrt', 'the TensorRT backend',
                   'install TensorRT 10 (JetPack on Jetson, or NVIDIA\'s tensorrt wheels on a '
                   'dGPU machine); use backend:=onnxruntime / device:=cpu without it')


def trt_version(trt: Any) -> Tuple[int, int, int]:
    """Return the (major, minor, patch) of the imported TensorRT module."""
    parts = []
    for piece in str(getattr(trt, '__version__', '0')).split('.')[:3]:
        digits = ''.join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts + [0] * (3 - len(parts)))  # type: ignore[return-value]


def version_text(version: Tuple[int, int, int]) -> str:
    """Return 'major.minor.patch'."""
    return '.'.join(str(v) for v in version)


def check_supported(version: Tuple[int, int, int]) -> None:
    """Raise TensorRTError for TensorRT versions this builder cannot drive."""
    if version < (8, 6, 0):
        raise TensorRTError(f'TensorRT {version_text(version)} is too old: this package needs '
                            'the TensorRT 8.6 / 10.x Python API (execute_async_v3, named I/O '
                            'tensors)')
    if version >= FIRST_UNSUPPORTED:
        raise TensorRTError(f'TensorRT {version_text(version)} is not supported yet: TensorRT '
                            '11 removed BuilderFlag.FP16/INT8 and implicit INT8 (strongly typed '
                            'networks only); use TensorRT 10.x')


def make_logger(trt: Any, name: str = 'tensorrt_yolox_py.tensorrt') -> Any:
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
            self._lock = threading.Lock()

        def log(self, sev: Any, msg: str) -> None:
            level = levels.get(sev, logging.INFO)
            with self._lock:
                if level >= logging.ERROR:
                    self.errors.append(str(msg))
                elif level == logging.WARNING:
                    self.warnings.append(str(msg))
            log.log(level, 'TensorRT: %s', msg)

        def take_errors(self) -> str:
            with self._lock:
                text = '; '.join(self.errors)
                self.errors = []
            return text

    return ForwardingLogger()


def make_progress_monitor(trt: Any, callback: Callable[[str, int, int], None]) -> Optional[Any]:
    """Return a ``trt.IProgressMonitor`` calling ``callback(phase, step, steps)``, or None.

    None where the TensorRT version has no IProgressMonitor (8.6).
    """
    if not hasattr(trt, 'IProgressMonitor'):
        return None

    class Monitor(trt.IProgressMonitor):
        """Reports TensorRT build phases and steps."""

        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._steps: dict = {}
            self._lock = threading.Lock()

        def phase_start(self, phase_name: str, parent_phase: Optional[str],
                        num_steps: int) -> None:
            with self._lock:
                self._steps[phase_name] = int(num_steps)
            if parent_phase is None:
                LOGGER.info('engine build phase: %s (%d steps)', phase_name, num_steps)
            callback(phase_name, 0, int(num_steps))

        def step_complete(self, phase_name: str, step: int) -> bool:
            with self._lock:
                steps = self._steps.get(phase_name, 0)
            callback(phase_name, int(step) + 1, steps)
            return True

        def phase_finish(self, phase_name: str) -> None:
            with self._lock:
                self._steps.pop(phase_name, None)

    return Monitor()
