"""Fixtures for tests with real rclpy and real DDS (Fast DDS), kept on this machine.

ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST keeps discovery on the loopback, and a ROS_DOMAIN_ID
specific to this test run (from the process id) keeps parallel runs apart. The Fast DDS profile
config/fastdds_large_data.xml (shared memory only, 64 MiB segments) carries camera-sized images
to best-effort subscribers in other processes, which Fast DDS defaults mostly drop, and keeps
every packet off the network. All are set here, at collection time, before any test initialises
rclpy; subprocesses inherit them. Tests needing rclpy or vision_msgs skip cleanly without them.
"""

import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ['ROS_DOMAIN_ID'] = os.environ.get('YOLOX_TEST_ROS_DOMAIN_ID',
                                             str(10 + os.getpid() % 90))
REPO = Path(__file__).resolve().parents[2]
os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(REPO / 'config' / 'fastdds_large_data.xml')
#: Generous limit for waits on conditions (never a fixed sleep standing in for a condition).
TIMEOUT_S = 30.0


def wait_for(predicate: Callable[[], bool], timeout: float = TIMEOUT_S,
             every: float = 0.01) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return bool(predicate())


def require_ros() -> Any:
    """Import rclpy and vision_msgs or skip the test."""
    rclpy = pytest.importorskip('rclpy', reason='rclpy is not installed (ROS 2 wheels)')
    pytest.importorskip('vision_msgs.msg',
                        reason='vision_msgs is not built (scripts/build_vision_msgs.sh)')
    return rclpy


class RosHarness:
    """One rclpy Context, a background executor and the nodes of one test.

    The executor is the one the entry points use (``lifecycle.spin_until_stopped``: one
    SingleThreadedExecutor thread), so timing tests see the runner's threading.
    """

    def __init__(self, rclpy: Any) -> None:
        from rclpy.executors import SingleThreadedExecutor

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.nodes: List[Any] = []
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def add(self, node: Any) -> Any:
        """Spin ``node`` in the background executor; it is destroyed at teardown."""
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def peer(self, name: str = 'test_peer') -> Any:
        """Return a spinning plain node for the test's own publishers and subscribers."""
        return self.add(self.rclpy.create_node(name, context=self.context))

    def yolox(self, name: str, params: Dict[str, Any], **kwargs: Any) -> Any:
        """Create and spin a YoloxNode with ``params`` as parameter overrides."""
        from rclpy.parameter import Parameter

        from tensorrt_yolox_py.ros.node import YoloxNode

        overrides = [Parameter(key, value=value) for key, value in params.items()]
        return self.add(YoloxNode(name, context=self.context, parameter_overrides=overrides,
                                  **kwargs))

    def close(self) -> None:
        """Stop spinning, destroy every node, shut the context down."""
        self.executor.shutdown(timeout_sec=10.0)
        self._thread.join(timeout=10.0)
        for node in reversed(self.nodes):
            node.destroy_node()
        self.context.try_shutdown()


@pytest.fixture()
def ros() -> Iterator[RosHarness]:
    """Yield a RosHarness (fresh Context and executor), closed after the test."""
    rclpy = require_ros()
    assert os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    harness = RosHarness(rclpy)
    yield harness
    harness.close()


@pytest.fixture()
def cpu_params(planted_model: Path) -> Dict[str, Any]:
    """Node parameters for the planted model on the CPU (ONNX Runtime, CPU preprocessing)."""
    return {'model_path': str(planted_model), 'device': 'cpu', 'preprocess_on_gpu': False,
            'num_threads': 1}


def subprocess_env() -> Dict[str, str]:
    """Environment for a node started as a subprocess: this run's DDS settings, repo on path."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(REPO), env.get('PYTHONPATH')]))
    env['PYTHONUNBUFFERED'] = '1'
    return env


#: The package's files that a colcon build installs (build input of ``colcon_install``).
COLCON_INPUTS = ('setup.py', 'setup.cfg', 'package.xml', 'resource', 'tensorrt_yolox_py',
                 'launch', 'config')


@pytest.fixture(scope='session')
def colcon_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a colcon workspace with this package built WITHOUT --symlink-install.

    ``colcon build`` (this venv's colcon and Python) into a temporary workspace, once per test
    session (a few seconds: no cache needed), from a copy of the checkout's files (``git
    ls-files``; ``COLCON_INPUTS`` outside git) so nothing is written into the checkout. The
    workspace's ``install/setup.bash`` is what a ROS user sources;
    ``install/tensorrt_yolox_py`` holds real copies (no links into the checkout). Skips without
    colcon.
    """
    import shutil
    import subprocess
    import sys

    colcon = Path(sys.prefix) / 'bin' / 'colcon'
    if not colcon.exists():
        pytest.skip('colcon is not installed (pip install colcon-common-extensions)')
    workspace = tmp_path_factory.mktemp('colcon_ws')
    source = workspace / 'src' / 'tensorrt_yolox_py'
    source.mkdir(parents=True)
    listed = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard', '-z'], cwd=REPO,
                            capture_output=True)
    if listed.returncode == 0:  # the checkout's files (tracked, or new and not ignored)
        for name in filter(None, listed.stdout.decode().split('\0')):
            if (REPO / name).is_file():
                (source / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / name, source / name)
    else:  # not a git checkout: the package's own files
        ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '*.egg-info')
        for name in COLCON_INPUTS:
            if (REPO / name).is_dir():
                shutil.copytree(REPO / name, source / name, ignore=ignore)
            else:
                shutil.copy2(REPO / name, source / name)
    env = {k: v for k, v in os.environ.items()
           if k not in ('AMENT_PREFIX_PATH', 'PYTHONPATH', 'COLCON_PREFIX_PATH')}
    env['PATH'] = os.pathsep.join([str(Path(sys.prefix) / 'bin'), env.get('PATH', '')])
    build = subprocess.run([str(colcon), '--log-base', 'log', 'build'], cwd=workspace,
                           env=env, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return workspace
