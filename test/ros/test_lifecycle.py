"""The entry points' life cycle: stop requests, spinning until stopped, error mapping."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import require_ros, wait_for

from tensorrt_yolox_py.errors import FileError, ModelContractError, ParameterError
from tensorrt_yolox_py.ros import lifecycle
from tensorrt_yolox_py.ros.camera_mapping import CameraConfigError

pytestmark = pytest.mark.ros


def test_exit_status_of_each_error_kind() -> None:
    assert lifecycle.exit_status(FileError('/m.onnx', 'gone')) == 1
    assert lifecycle.exit_status(ModelContractError('bad output')) == 1
    assert lifecycle.exit_status(OSError('disk')) == 1
    assert lifecycle.exit_status(ParameterError('score_threshold', 'too big')) == 2
    assert lifecycle.exit_status(CameraConfigError('duplicate camera')) == 2
    assert lifecycle.exit_status(lifecycle.UsageError('bad option')) == 2


def test_rcl_argument_errors_become_file_or_usage_errors() -> None:
    params = lifecycle.translate_rcl_init_error(RuntimeError(
        "failed to initialize rcl: Couldn't parse params file: '--params-file /x.yaml'. "
        'Error: Error opening YAML file, at /project/src/parser.c:271, at '
        '/project/src/rcl/arguments.c:415'))
    assert isinstance(params, FileError) and str(params) == (
        'ROS parameter file /x.yaml: cannot open it')
    remap = lifecycle.translate_rcl_init_error(RuntimeError(
        "failed to initialize rcl: Couldn't parse remap rule: '-r bad'. Error: Expected "
        'lexeme type (19) not found, search ended at index 3, at /project/src/rcl/x.c:238'))
    assert isinstance(remap, lifecycle.UsageError)
    assert str(remap).startswith("ROS arguments: Couldn't parse remap rule: '-r bad'")
    assert '/project' not in str(remap)


@pytest.mark.timing
def test_stop_request_never_blocks_and_wakes_waiters() -> None:
    stop = lifecycle.StopRequest()
    assert not stop.wait(0.05)
    threading.Timer(0.1, stop.set, args=(15,)).start()
    started = time.monotonic()
    assert stop.wait(10.0)
    assert time.monotonic() - started < 5.0 and stop.signals == [15]
    stop.reset()
    assert not stop.is_set() and stop.signals == []


def _spin_in_thread(rclpy: Any, stop: lifecycle.StopRequest):
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('lifecycle_probe', context=context)
    ticks = []
    node.create_timer(0.01, lambda: ticks.append(1))
    errors = []

    def run() -> None:
        try:
            lifecycle.spin_until_stopped([node], context, stop)
        except BaseException as exc:  # noqa: B902 (reported by the test)
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert wait_for(lambda: len(ticks) >= 3)  # it spins
    return context, node, thread, errors


def test_spin_until_stopped_returns_on_a_stop_request() -> None:
    rclpy = require_ros()
    stop = lifecycle.StopRequest()
    context, node, thread, errors = _spin_in_thread(rclpy, stop)
    stop.set()
    thread.join(timeout=30.0)
    assert not thread.is_alive() and errors == []
    node.destroy_node()
    context.try_shutdown()


def test_spin_until_stopped_returns_when_the_context_is_shut_down() -> None:
    rclpy = require_ros()
    stop = lifecycle.StopRequest()
    context, node, thread, errors = _spin_in_thread(rclpy, stop)
    context.try_shutdown()
    thread.join(timeout=30.0)
    assert not thread.is_alive() and errors == []
    assert stop.is_set()
    node.destroy_node()


_CRASH = '''
import faulthandler, os, sys, tempfile
from tensorrt_yolox_py.ros import lifecycle

def starting_the_participant():
    held = tempfile.TemporaryFile()      # what init_ros does while rclpy.init runs
    os.dup2(held.fileno(), 2)
    faulthandler._sigsegv()

sys.exit(lifecycle.run_entry_point(starting_the_participant))
'''


def test_a_native_crash_while_stderr_is_held_back_still_prints_where(tmp_path: Path) -> None:
    """A SIGSEGV in rclpy.init (stderr pointed at a file) leaves a Python stack on stderr."""
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONFAULTHANDLER'}
    done = subprocess.run([sys.executable, '-c', _CRASH], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == -11, done.stderr
    assert 'Fatal Python error: Segmentation fault' in done.stderr, done.stderr
    assert 'starting_the_participant' in done.stderr, done.stderr
