"""Per-stage timing shared by the pipeline, the node's diagnostics, the evaluator and benchmarks.

Times are wall-clock milliseconds from ``time.perf_counter``. GPU stages that run
asynchronously are timed by their own CUDA events where they report them.
"""

import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Mapping, Sequence

import numpy as np


class StageTimer:
    """Collect durations of named stages of one run: ``with timer.stage('infer'): ...``."""

    def __init__(self) -> None:
        self.times_ms: Dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block and add its duration to stage ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = (time.perf_counter() - start) * 1e3
            self.times_ms[name] = self.times_ms.get(name, 0.0) + elapsed


def summarize(samples: Sequence[Mapping[str, float]]) -> Dict[str, Dict[str, float]]:
    """Return per-stage {median, p90, p99, mean, n} in ms over many runs' timing dicts."""
    by_stage: Dict[str, List[float]] = {}
    for sample in samples:
        for name, value in sample.items():
            by_stage.setdefault(name, []).append(float(value))
    result = {}
    for name, values in by_stage.items():
        arr = np.asarray(values)
        result[name] = {'median': float(np.median(arr)), 'p90': float(np.percentile(arr, 90)),
                        'p99': float(np.percentile(arr, 99)), 'mean': float(arr.mean()),
                        'n': int(arr.size)}
    return result
