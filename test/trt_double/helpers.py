"""Helpers for the TensorRT tests: call-order checks and config shortcuts."""

from pathlib import Path
from typing import Any, Iterable, List, Sequence, Tuple

from tensorrt_yolox_py.params import DetectorConfig, make_config


def config(model: Path, cache: Path, **values: Any) -> DetectorConfig:
    """Return a validated config for ``model`` with its engine cache in ``cache``."""
    return make_config({'model_path': str(model), 'engine_cache_dir': str(cache), **values})


def calls_named(calls: Iterable[Tuple[Any, ...]], name: str) -> List[Tuple[Any, ...]]:
    """Return the recorded calls of ``name``."""
    return [c for c in calls if c[0] == name]


def in_order(calls: Sequence[Tuple[Any, ...]], expected: Sequence[Tuple[Any, ...]]) -> bool:
    """Return whether ``expected`` appears in ``calls`` as a subsequence (entries are prefixes)."""
    position = 0
    for want in expected:
        while position < len(calls) and tuple(calls[position][:len(want)]) != tuple(want):
            position += 1
        if position == len(calls):
            return False
        position += 1
    return True


def first_missing(calls: Sequence[Tuple[Any, ...]], expected: Sequence[Tuple[Any, ...]]) -> Any:
    """Return the first entry of ``expected`` that breaks the order (for assertion messages)."""
    for count in range(1, len(expected) + 1):
        if not in_order(calls, expected[:count]):
            return expected[count - 1]
    return None


def recording_logger(trt: Any) -> Any:
    """Return a ``trt.ILogger`` that keeps ``(severity, msg)`` in ``messages`` (test use)."""

    class RecordingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: List[Tuple[Any, str]] = []

        def log(self, severity: Any, msg: str) -> None:
            self.messages.append((severity, msg))

    return RecordingLogger()
