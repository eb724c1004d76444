"""SIGINT / SIGTERM at random moments end both entry points with 0, no traceback, no abort.

Runs scripts/shutdown_stress.py's trials (the script runs hundreds; here tens per entry
point, about a minute and a half on 2 cores): start-up, mid-inference under a 30 Hz image
feed, and a second signal 0-300 ms after the first.
"""

import importlib.util
import json
import os
import time
from pathlib import Path

import pytest
from conftest import REPO, require_ros

pytestmark = [pytest.mark.ros, pytest.mark.timing]
TRIALS_PER_ENTRY_POINT = 15


def _stress_module():
    spec = importlib.util.spec_from_file_location('shutdown_stress',
                                                  REPO / 'scripts' / 'shutdown_stress.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_signals_at_random_moments_end_both_entry_points_cleanly() -> None:
    require_ros()
    stress = _stress_module()
    seed = int(os.environ.get('YOLOX_STRESS_SEED', time.time_ns() % 100000))
    lines = []
    summary = stress.run_trials(list(stress.ENTRY_POINTS), TRIALS_PER_ENTRY_POINT, seed=seed,
                                max_delay_s=3.0, log=lines.append)
    report = '\n'.join(lines) + '\n' + json.dumps(summary['failures'], indent=1)[-6000:]
    assert summary['trials'] == 2 * TRIALS_PER_ENTRY_POINT
    assert summary['double_signal_trials'] > 0
    assert summary['failed'] == 0, f'seed {seed}:\n{report}'


def test_the_stress_check_catches_a_traceback_and_a_bad_status(tmp_path: Path) -> None:
    """The trial's verdict is not vacuous: a traceback or a non-zero status fails it."""
    stress = _stress_module()
    assert stress.BAD_OUTPUT.search('Traceback (most recent call last):')
    assert stress.BAD_OUTPUT.search('terminate called without an active exception')
    assert stress.BAD_OUTPUT.search('rclpy._rclpy_pybind11.RCLError: failed to initialize '
                                    'wait set: the given context is not valid')
    assert not stress.BAD_OUTPUT.search('[INFO] [yolox]: SIGTERM received: shutting down')
