"""``ros2 launch`` of the installed package, as a user runs it: real processes over real DDS.

Each test starts ``ros2 launch tensorrt_yolox_py <file> ...`` in its own session, from one of the
two documented installs: most from a colcon install built without ``--symlink-install``
(``colcon_install`` in conftest.py: ``source install/setup.bash`` in a shell with nothing else
set), the SIGTERM and Ctrl-C tests from this venv (AMENT_PREFIX_PATH = the venv, where
scripts/setup.sh laid out the ament index marker, ``share/`` and ``lib/tensorrt_yolox_py/``). It
talks to the nodes from this process over DDS (loopback only, this run's domain id:
conftest.py). The nodes run the bundled demo model on
the CPU; the images are frames of the bundled rosbag, and a detection counts when it overlaps a
ground-truth box of the same class (IoU >= 0.5; the ground truth comes from the scene
generator, not from the model). Stopping is checked from the outside: the exit status of
``ros2 launch``, each node's exit status as launch reports it, no traceback, and no process left
(every process started carries a marker in its environment, searched in /proc with psutil).

Also covered: a node that cannot start ends the launch with status 1 (each launch file and
``single_process``); unknown launch arguments are refused; full-size frames through the colcon
install with nothing set by hand (the launch file applies the Fast DDS profile; a control test
shows the loss without it); the shipped cameras file by name from any folder with the CPU
fallback allowed and refused.
The commands of docs/ros_interface.md that these tests run are the ``DOC_*`` strings (a test
checks the docs show them); the ``ros2`` verbs' daemon is stopped at the end of each test that
starts it.

Skipped, with the reason, where the launch system is not installed (it is not on PyPI:
scripts/setup.sh installs it from the wheelhouse named by YOLOX_ROS2_LAUNCH_WHEELHOUSE).
"""

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

import pytest
import yaml
from conftest import REPO, subprocess_env, wait_for
from ros_helpers import box_of, image_msg, publish_until

pytestmark = [pytest.mark.ros, pytest.mark.slow]

PACKAGE = 'tensorrt_yolox_py'
WHEELHOUSE_VARIABLE = 'YOLOX_ROS2_LAUNCH_WHEELHOUSE'
MARKER_VARIABLE = 'YOLOX_LAUNCH_TEST_MARKER'
BAG = REPO / 'tensorrt_yolox_py' / 'data' / 'sample' / 'demo_bag'
#: Start-up of ros2 launch + nodes (Python, rclpy, ONNX Runtime) on a loaded 2-core machine.
START_TIMEOUT_S = 90.0
#: Exec ros2 with SIGINT at its default disposition (a background job inherits it ignored).
TRAMPOLINE = ('import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); '
              'os.execv(sys.argv[1], sys.argv[1:])')
BASH = shutil.which('bash') or '/bin/bash'
_STARTED = re.compile(r'\[INFO\] \[([\w.-]+)\]: process started with pid \[(\d+)\]')
_CLEAN = re.compile(r'process has finished cleanly \[pid (\d+)\]')
_DIED = re.compile(r'process has died \[pid (\d+), exit code (-?\d+)')
#: Commands of docs/ros_interface.md that the tests below run verbatim (from an empty folder).
DOC_LAUNCH_CPU = 'ros2 launch tensorrt_yolox_py yolox.launch.py input/image:=/cam0/image_raw ' \
    'device:=cpu'
DOC_ECHO_OBJECTS = 'ros2 topic echo --once /tensorrt_yolox/out/objects ' \
    'vision_msgs/msg/Detection2DArray'
DOC_PARAM_GET = 'ros2 param get /tensorrt_yolox device'
DOC_CAMERAS = 'ros2 launch tensorrt_yolox_py multi_camera.launch.py cameras:=cameras.yaml'
DOC_CAMERAS_FALLBACK = DOC_CAMERAS + ' allow_cpu_fallback:=true single_process:=true'
DOC_ECHO_DIAGNOSTICS = 'ros2 topic echo --once /diagnostics diagnostic_msgs/msg/DiagnosticArray'
DOC_DAEMON_STOP = 'ros2 daemon stop'
DOC_TYPO = 'ros2 launch tensorrt_yolox_py yolox.launch.py devcie:=cpu'
DOC_COMMANDS = (DOC_TYPO, DOC_LAUNCH_CPU, DOC_ECHO_OBJECTS, DOC_PARAM_GET, DOC_CAMERAS,
                DOC_CAMERAS_FALLBACK, DOC_ECHO_DIAGNOSTICS, DOC_DAEMON_STOP,
                'source install/setup.bash')


def _launch_missing() -> Optional[str]:
    for module in ('launch', 'launch_ros', 'ros2launch'):
        if importlib.util.find_spec(module) is None:
            return (f'the ROS 2 launch system is not installed ({module} is missing; it is not on '
                    f'PyPI): set {WHEELHOUSE_VARIABLE} to its wheelhouse (e.g. '
                    '../shared/vendor/ros2_launch) and re-run bash scripts/setup.sh')
    return None


@pytest.fixture(scope='module')
def ros2() -> Path:
    """Return the venv's ``ros2`` (skip without the launch system, fail without the layout)."""
    pytest.importorskip('rclpy', reason='rclpy is not installed (ROS 2 wheels)')
    pytest.importorskip('vision_msgs.msg', reason='vision_msgs is not built')
    reason = _launch_missing()
    if reason:
        pytest.skip(reason)
    pytest.importorskip('psutil')
    prefix = Path(sys.prefix)
    marker = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / PACKAGE
    executable = prefix / 'lib' / PACKAGE / 'yolox_node'
    assert marker.exists() and executable.exists(), (
        f'{prefix} is not an ament prefix of {PACKAGE}: run python scripts/ament_layout.py '
        '(scripts/setup.sh does)')
    return prefix / 'bin' / 'ros2'


def venv_env() -> Dict[str, str]:
    """This run's environment (loopback DDS, own domain), the venv as ament prefix and on PATH."""
    env = subprocess_env()
    env['AMENT_PREFIX_PATH'] = os.pathsep.join(
        filter(None, [str(Path(sys.prefix)), env.get('AMENT_PREFIX_PATH')]))
    env['PATH'] = os.pathsep.join([str(Path(sys.prefix) / 'bin'), env.get('PATH', '')])
    return env


def installed_env(**extra: str) -> Dict[str, str]:
    """A user's shell for a colcon install: no AMENT_PREFIX_PATH, PYTHONPATH or DDS profile.

    Only this run's DDS isolation (loopback, own domain id; conftest.py) and the venv's bin
    on PATH (where ``ros2`` and ``colcon`` are, as after ``source .venv/bin/activate``).
    """
    env = {k: v for k, v in os.environ.items()
           if k not in ('AMENT_PREFIX_PATH', 'PYTHONPATH', 'COLCON_PREFIX_PATH',
                        'FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE',
                        'YOLOX_DDS_PROFILE_LOGGED')}
    env['PATH'] = os.pathsep.join([str(Path(sys.prefix) / 'bin'), env.get('PATH', '')])
    env['PYTHONUNBUFFERED'] = '1'
    env.update(extra)
    return env


def marked_processes(marker: str) -> List[Any]:
    """Return the live (not zombie) processes whose environment carries ``marker`` (/proc)."""
    import psutil

    found = []
    for process in psutil.process_iter():
        try:
            if (process.environ().get(MARKER_VARIABLE) == marker
                    and process.status() != psutil.STATUS_ZOMBIE):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


class LaunchRun:
    """One ``ros2 launch`` in its own session; its output (stdout + stderr) read by a thread."""

    def __init__(self, ros2: Path, launch_file: str, arguments: Iterable[str],
                 terminal: bool = False, cwd: Optional[Path] = None,
                 env: Optional[Dict[str, str]] = None,
                 command: Optional[List[str]] = None,
                 install: Optional[Path] = None) -> None:
        """Start ``ros2 launch PACKAGE launch_file arguments`` (or ``command``) in ``cwd``.

        ``install``: a colcon workspace whose ``install/setup.bash`` is sourced first, in a
        user's shell (``installed_env``, the default ``env`` then); else ``env`` defaults to
        this run's environment with the venv as the ament prefix.
        """
        if env is None:
            env = installed_env() if install is not None else venv_env()
        env = dict(env)
        self.marker = uuid.uuid4().hex
        env[MARKER_VARIABLE] = self.marker
        self._terminal: List[int] = []
        stdin: Any = subprocess.DEVNULL
        if terminal:  # as from a shell: launch then leaves Ctrl-C's SIGINT to the terminal
            self._terminal = list(os.openpty())
            stdin = self._terminal[1]
        self.command = command or [str(ros2), 'launch', PACKAGE, launch_file] + list(arguments)
        if install is not None:
            self.command = [BASH, '-c', f'source {install}/install/setup.bash && exec "$@"',
                            'launch-test'] + self.command
        self.process = subprocess.Popen(
            [sys.executable, '-c', TRAMPOLINE] + self.command, env=env, stdin=stdin, cwd=cwd,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self._lines: List[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._lock:
                self._lines.append(line)

    def output(self) -> str:
        """Return everything printed so far."""
        with self._lock:
            return ''.join(self._lines)

    def wait_output(self, pattern: str, count: int = 1,
                    timeout: float = START_TIMEOUT_S) -> bool:
        """Wait until ``pattern`` (a regex) has matched ``count`` lines of the output."""
        return wait_for(lambda: len(re.findall(pattern, self.output())) >= count,
                        timeout, every=0.05)

    def started(self) -> Dict[int, str]:
        """Return {pid: launch's process name} of the processes launch started."""
        return {int(pid): name for name, pid in _STARTED.findall(self.output())}

    def exit_codes(self) -> Dict[int, int]:
        """Return {pid: exit status} of the processes launch saw exit."""
        codes = {int(pid): 0 for pid in _CLEAN.findall(self.output())}
        codes.update({int(pid): int(code) for pid, code in _DIED.findall(self.output())})
        return codes

    def marked_processes(self) -> List[Any]:
        """Return the live processes that carry this run's marker."""
        return marked_processes(self.marker)

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for ``ros2 launch`` to exit by itself and return its status."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f'ros2 launch did not end within {timeout} s:\n{self.output()[-4000:]}')
        self._reader.join(timeout=10)
        return code

    def stop(self, sig: int, group: bool = False) -> int:
        """Send ``sig`` to ros2 launch (``group``: to its process group, as Ctrl-C does)."""
        if group:
            os.killpg(self.process.pid, sig)
        else:
            self.process.send_signal(sig)
        return self.wait()

    def assert_stopped_cleanly(self, code: int) -> None:
        """ros2 launch and every node it still ran exited 0; no traceback; nothing left."""
        output = self.output()
        assert code == 0, output[-4000:]
        assert 'Traceback' not in output, output[-4000:]
        assert wait_for(lambda: not self.marked_processes(), 15.0), [
            p.cmdline() for p in self.marked_processes()]

    def close(self) -> None:
        """Kill what is left (after a failed test) and close the terminal."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        for process in self.marked_processes():
            process.kill()
        for fd in self._terminal:
            os.close(fd)
        self._terminal = []


# -- the bag's frames and ground truth -------------------------------------------------------
def _bag_frames() -> Dict[str, Tuple[Any, List[Tuple[str, Tuple[float, ...]]]]]:
    """Return {camera topic: (first BagImage, [(class name, xyxy ground-truth box)])}."""
    from tensorrt_yolox_py.data.rosbag_io import read_images

    truth = json.loads((BAG / 'ground_truth.json').read_text())
    names = {c['id']: c['name'] for c in truth['categories']}
    image_ids = {(i['topic'], i['stamp_ns']): i['id'] for i in truth['images']}
    frames: Dict[str, Any] = {}
    for frame in read_images(BAG):
        if frame.topic in frames:
            continue
        image_id = image_ids[(frame.topic, frame.stamp_ns)]
        boxes = [(names[a['category_id']], (a['bbox'][0], a['bbox'][1],
                                            a['bbox'][0] + a['bbox'][2],
                                            a['bbox'][1] + a['bbox'][3]))
                 for a in truth['annotations'] if a['image_id'] == image_id]
        frames[frame.topic] = (frame, boxes)
    return frames


def _iou(a: Tuple[float, ...], b: Tuple[float, ...]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _frame_msg(frame: Any) -> Any:
    return image_msg(frame.image, frame.encoding, 0, frame.frame_id,
                     stamp=divmod(frame.stamp_ns, 1_000_000_000))


def _assert_detects(result: Any, frame: Any, truth: List[Tuple[str, Tuple[float, ...]]]) -> None:
    """The result answers ``frame`` (header copied) and finds one ground-truth object."""
    assert result.header.frame_id == frame.frame_id
    assert (result.header.stamp.sec * 1_000_000_000 + result.header.stamp.nanosec
            == frame.stamp_ns)
    found = [(d.results[0].hypothesis.class_id, box_of(d)) for d in result.detections]
    matches = [(name, box) for name, box in found
               if any(name == t_name and _iou(box, t_box) >= 0.5 for t_name, t_box in truth)]
    assert matches, f'no detection matches the ground truth {truth}: {found}'


def _answer(peer: Any, image_topic: str, objects_topic: str, frame: Any) -> Any:
    """Publish ``frame`` on ``image_topic`` until a result for it arrives on ``objects_topic``."""
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    got: List[Any] = []
    peer.create_subscription(Detection2DArray, objects_topic, got.append, 10)
    publisher = peer.create_publisher(Image, image_topic, 10)
    assert publish_until(publisher, _frame_msg(frame), lambda: bool(got), timeout=60.0), (
        f'no answer on {objects_topic}')
    return got[0]


def _parameters(peer: Any, node: str, names: List[str]) -> Dict[str, Any]:
    """Return the node's own values of ``names``, read over its parameter services."""
    from rclpy.parameter import parameter_value_to_python
    from rclpy.parameter_client import AsyncParameterClient

    client = AsyncParameterClient(peer, node)
    assert client.wait_for_services(timeout_sec=START_TIMEOUT_S), f"{node}: no parameter services"
    future = client.get_parameters(names)
    assert wait_for(future.done, 30.0), f'{node}: get_parameters did not answer'
    return {name: parameter_value_to_python(value)
            for name, value in zip(names, future.result().values)}


def _publish_continuously(peer: Any, topics: Dict[str, Any], stop: threading.Event,
                          rate_hz: float = 10.0) -> threading.Thread:
    """Publish each topic's frame at ``rate_hz`` until ``stop`` (keeps the nodes inferring)."""
    from sensor_msgs.msg import Image

    publishers = [(peer.create_publisher(Image, topic, 10), _frame_msg(frame))
                  for topic, frame in topics.items()]

    def run() -> None:
        while not stop.is_set():
            for publisher, msg in publishers:
                publisher.publish(msg)
            stop.wait(1.0 / rate_hz)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _processing_counts(peer: Any, topics: List[str]) -> Dict[str, List[Any]]:
    """Subscribe to each node's processing-time topic; return the lists that collect them."""
    from std_msgs.msg import Float64

    counts: Dict[str, List[Any]] = {}
    for topic in topics:
        counts[topic] = []
        peer.create_subscription(Float64, topic, counts[topic].append, 10)
    return counts


def _cameras_file(tmp_path: Path, devices: Dict[str, str], namespace: str) -> Path:
    """Cameras file: one camera per (name, device), image and objects topics per camera."""
    config = {'namespace': namespace, 'exclusive_dla': True,
              'parameters': {'num_threads': 1, 'preprocess_on_gpu': False},
              'cameras': [{'name': name, 'device': device,
                           'image_topic': f'{namespace}_images/{name}',
                           'objects_topic': f'{namespace}_objects/{name}'}
                          for name, device in devices.items()]}
    path = tmp_path / 'cameras.yaml'
    path.write_text(yaml.safe_dump(config))
    return path


# -- tests -----------------------------------------------------------------------------------
def test_single_camera_launch_remaps_serves_and_stops_on_sigterm(ros2: Path, ros: Any,
                                                                 tmp_path: Path) -> None:
    frame, truth = next(iter(_bag_frames().values()))
    params = tmp_path / 'my.param.yaml'
    params.write_text(yaml.safe_dump({'/**': {'ros__parameters': {
        'score_threshold': 0.3, 'num_threads': 1, 'preprocess_on_gpu': False}}}))
    run = LaunchRun(ros2, 'yolox.launch.py', [
        'input/image:=/lt_single/camera/image_raw', 'output/objects:=/lt_single/rois',
        'namespace:=/lt_single', 'node_name:=detector', 'device:=cpu',
        f'params_file:={params}'])
    try:
        peer = ros.peer('launch_test_single')
        assert wait_for(lambda: ('detector', '/lt_single') in
                        peer.get_node_names_and_namespaces(), START_TIMEOUT_S), run.output()
        want_subs = {'/lt_single/camera/image_raw': ['sensor_msgs/msg/Image']}
        want_pubs = {'/lt_single/rois': ['vision_msgs/msg/Detection2DArray'],
                     '/lt_single/detector/out/label_info': ['vision_msgs/msg/LabelInfo'],
                     '/lt_single/detector/out/image': ['sensor_msgs/msg/Image'],
                     '/lt_single/detector/debug/processing_time_ms': ['std_msgs/msg/Float64'],
                     '/lt_single/detector/debug/pipeline_latency_ms': ['std_msgs/msg/Float64']}

        def graph() -> Tuple[Dict[str, List[str]], Dict[str, List[str]]]:
            subs = dict(peer.get_subscriber_names_and_types_by_node('detector', '/lt_single'))
            pubs = dict(peer.get_publisher_names_and_types_by_node('detector', '/lt_single'))
            return subs, pubs

        assert wait_for(lambda: want_subs.items() <= graph()[0].items()
                        and want_pubs.items() <= graph()[1].items()), graph()
        assert [topic for topic, types in graph()[0].items()
                if 'sensor_msgs/msg/Image' in types] == list(want_subs)  # remapped, only
        values = _parameters(peer, '/lt_single/detector', [
            'device', 'dla_core_id', 'score_threshold', 'num_threads', 'model_path'])
        assert values == {'device': 'cpu', 'dla_core_id': -1, 'score_threshold': 0.3,
                          'num_threads': 1, 'model_path': ''}
        _assert_detects(_answer(peer, '/lt_single/camera/image_raw', '/lt_single/rois', frame),
                        frame, truth)
        # SIGTERM while the node is busy: frames keep coming at 10 Hz (inference ~0.1-0.3 s).
        counts = _processing_counts(peer, ['/lt_single/detector/debug/processing_time_ms'])
        stop = threading.Event()
        publisher = _publish_continuously(peer, {'/lt_single/camera/image_raw': frame}, stop)
        try:
            assert wait_for(lambda: all(len(c) >= 3 for c in counts.values()), 60.0)
            code = run.stop(signal.SIGTERM)
        finally:
            stop.set()
            publisher.join()
        run.assert_stopped_cleanly(code)
        assert 'SIGTERM: stopping every node' in run.output()
        assert set(run.exit_codes().values()) == {0}
        assert run.exit_codes().keys() == run.started().keys()
    finally:
        run.close()


def _gpu_backend_here() -> bool:
    """Whether a gpu device can run here without falling back to the CPU."""
    from tensorrt_yolox_py.backends import choose_backend
    from tensorrt_yolox_py.errors import ParameterError
    from tensorrt_yolox_py.params import make_config

    try:
        choose_backend(make_config({'device': 'gpu'}))
    except ParameterError:
        return False
    return True


_LAUNCH_ERROR = re.compile(r'\[ERROR\] \[launch\]: Caught exception in launch \(see debug for '
                           r'traceback\): (.*)')


def _assert_launch_failed(run: LaunchRun, pattern: str) -> str:
    """ros2 launch ended by itself with status 1 and one error line matching ``pattern``."""
    code = run.wait(START_TIMEOUT_S)
    output = run.output()
    errors = _LAUNCH_ERROR.findall(output)
    assert code == 1, output[-4000:]
    assert len(errors) == 1 and re.search(pattern, errors[0]), output[-4000:]
    assert 'Traceback' not in output, output[-4000:]
    assert wait_for(lambda: not run.marked_processes(), 15.0), [
        p.cmdline() for p in run.marked_processes()]
    return errors[0]


def _failing_cameras_file(tmp_path: Path) -> Path:
    """Two CPU cameras that can start and, between them, one whose model file is missing."""
    path = _cameras_file(tmp_path, {'cam0': 'cpu', 'cam_bad': 'cpu', 'cam2': 'cpu'},
                         '/lt_fail')
    config = yaml.safe_load(path.read_text())
    config['cameras'][1]['parameters'] = {'model_path': '/nonexistent/bad.onnx'}
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize('case', ['single', 'single-status-2', 'multi', 'multi-one-process'])
def test_a_node_that_cannot_start_ends_the_launch_with_status_1(
        ros2: Path, colcon_install: Path, tmp_path: Path, case: str) -> None:
    """The launch stops every node and exits 1, naming the camera, its status and cause."""
    missing = r'\(yolox: error: .*model file /nonexistent/bad\.onnx not found\)'
    launch_file, arguments, pattern = {
        'single': ('yolox.launch.py', ['device:=cpu', 'model_path:=/nonexistent/bad.onnx'],
                   r'^node /tensorrt_yolox exited with status 1 ' + missing),
        'single-status-2': ('yolox.launch.py', ['device:=cpu', 'node_name:=det',
                                                'namespace:=/lt_bad',
                                                'params_file:=' + str(tmp_path / 'p.yaml')],
                            r"^node /lt_bad/det exited with status 2 \(yolox: error: "
                            r"parameter 'score_threshold': 2\.0 is above the maximum 1\.0\)"),
        'multi': ('multi_camera.launch.py', [f'cameras:={_failing_cameras_file(tmp_path)}'],
                  r"^camera 'cam_bad' \(node /lt_fail/cam_bad/tensorrt_yolox\) exited with "
                  r'status 1 ' + missing + '; stopping every node$'),
        'multi-one-process': ('multi_camera.launch.py', [
            f'cameras:={_failing_cameras_file(tmp_path)}', 'single_process:=true'],
            r'^yolox_multi_camera \(cameras cam0, cam_bad, cam2\) exited with status 1 '
            r"\(yolox: error: camera 'cam_bad': model file /nonexistent/bad\.onnx not found\)"),
    }[case]
    (tmp_path / 'p.yaml').write_text(yaml.safe_dump({'/**': {'ros__parameters': {
        'score_threshold': 2.0}}}))
    run = LaunchRun(ros2, launch_file, arguments, install=colcon_install)
    try:
        _assert_launch_failed(run, pattern)
        if case == 'multi':  # the cameras that had started were stopped (SIGINT)
            assert len(run.started()) == 3 and run.exit_codes().keys() == run.started().keys()
    finally:
        run.close()


@pytest.mark.parametrize('launch_file, argument, suggestion', [
    ('yolox.launch.py', DOC_TYPO.split()[-1], 'device'),
    ('yolox.launch.py', 'input_image:=/cam0/image_raw', 'input/image'),
    ('multi_camera.launch.py', 'camera:=cameras.yaml', 'cameras'),
])
def test_an_unknown_launch_argument_is_refused_with_the_valid_names(
        ros2: Path, colcon_install: Path, launch_file: str, argument: str,
        suggestion: str) -> None:
    run = LaunchRun(ros2, launch_file, [argument], install=colcon_install)
    try:
        name = argument.split(':=')[0]
        error = _assert_launch_failed(
            run, rf"^unknown launch argument '{re.escape(name)}' \(did you mean "
                 rf"'{re.escape(suggestion)}'\?\); {re.escape(launch_file)} takes: ")
        assert 'params_file' in error and 'process started' not in run.output()
    finally:
        run.close()


def test_a_missing_params_file_is_an_error_before_any_node_starts(
        ros2: Path, colcon_install: Path, tmp_path: Path) -> None:
    run = LaunchRun(ros2, 'yolox.launch.py', ['params_file:=nope.param.yaml'], cwd=tmp_path,
                    install=colcon_install)
    try:
        _assert_launch_failed(run, rf'^params_file:=nope\.param\.yaml: no such file '
                                   rf'\({re.escape(str(tmp_path))}/nope\.param\.yaml or ')
        assert 'process started' not in run.output()
    finally:
        run.close()


def test_multi_camera_launch_maps_devices_and_stops_every_node_on_sigint(
        ros2: Path, ros: Any, colcon_install: Path, tmp_path: Path) -> None:
    frames = list(_bag_frames().values())
    devices = {'cam_cpu0': 'cpu', 'cam_cpu1': 'cpu', 'cam_gpu': 'gpu'}
    cameras = _cameras_file(tmp_path, devices, '/lt_multi')
    config = yaml.safe_load(cameras.read_text())
    config['cameras'][2]['parameters'] = {'allow_cpu_fallback': True}  # a GPU-less machine
    cameras.write_text(yaml.safe_dump(config))
    run = LaunchRun(ros2, 'multi_camera.launch.py', [f'cameras:={cameras}',
                                                     'use_sim_time:=true'],
                    install=colcon_install)
    try:
        assert run.wait_output(_STARTED.pattern, count=len(devices)), run.output()
        assert len(run.started()) == len(devices)  # one process per camera
        peer = ros.peer('launch_test_multi')
        for index, name in enumerate(devices):
            node = f'/lt_multi/{name}/tensorrt_yolox'
            values = _parameters(peer, node, ['device', 'dla_core_id', 'allow_cpu_fallback',
                                              'use_sim_time'])
            assert values == {'device': devices[name], 'dla_core_id': -1,
                              'allow_cpu_fallback': name == 'cam_gpu', 'use_sim_time': True}
            frame, truth = frames[index % len(frames)]
            result = _answer(peer, f'/lt_multi_images/{name}', f'/lt_multi_objects/{name}',
                             frame)
            _assert_detects(result, frame, truth)
        assert not run.exit_codes()
        code = run.stop(signal.SIGINT)
        run.assert_stopped_cleanly(code)
        assert set(run.exit_codes().values()) == {0}, run.output()
    finally:
        run.close()


@pytest.mark.parametrize('terminal', [True, False], ids=['terminal', 'no-terminal'])
def test_multi_camera_single_process_serves_all_and_stops_on_ctrl_c(
        ros2: Path, ros: Any, tmp_path: Path, terminal: bool) -> None:
    """Ctrl-C reaches launch and the node process; without a terminal launch sends a 2nd SIGINT."""
    import psutil

    frames = list(_bag_frames().values())
    names = [f'cam{i}' for i in range(len(frames))]
    cameras = _cameras_file(tmp_path, {name: 'cpu' for name in names}, '/lt_one')
    run = LaunchRun(ros2, 'multi_camera.launch.py', [f'cameras:={cameras}',
                                                     'single_process:=true',
                                                     'use_sim_time:=true'], terminal)
    try:
        assert run.wait_output(r'running 3 camera node\(s\)'), run.output()
        children = psutil.Process(run.process.pid).children(recursive=True)
        assert len(run.started()) == 1 and [p.pid for p in children] == list(run.started())
        assert any('yolox_multi_camera' in part for part in children[0].cmdline())
        peer = ros.peer('launch_test_one')
        topics = {}
        for name, (frame, truth) in zip(names, frames):
            _assert_detects(_answer(peer, f'/lt_one_images/{name}', f'/lt_one_objects/{name}',
                                    frame), frame, truth)
            topics[f'/lt_one_images/{name}'] = frame
            assert _parameters(peer, f'/lt_one/{name}/tensorrt_yolox', ['use_sim_time']) == {
                'use_sim_time': True}
        # Ctrl-C while all three are busy: SIGINT to the whole foreground process group.
        counts = _processing_counts(peer, [f'/lt_one/{name}/tensorrt_yolox/debug/'
                                           'processing_time_ms' for name in names])
        stop = threading.Event()
        publisher = _publish_continuously(peer, topics, stop)
        try:
            assert wait_for(lambda: all(len(c) >= 2 for c in counts.values()), 60.0)
            code = run.stop(signal.SIGINT, group=True)
        finally:
            stop.set()
            publisher.join()
        run.assert_stopped_cleanly(code)
        assert list(run.exit_codes().values()) == [0], run.output()
        assert 'escalating' not in run.output()  # no SIGTERM / SIGKILL was needed
    finally:
        run.close()


# -- the documented commands (docs/ros_interface.md runs exactly these) ----------------------
def test_the_docs_show_the_commands_these_tests_run() -> None:
    text = (REPO / 'docs' / 'ros_interface.md').read_text()
    for command in DOC_COMMANDS:
        assert command in text, command


def _ros2_verb(command: str, env: Dict[str, str], cwd: Path, timeout: float = 60.0,
               source: bool = False) -> subprocess.CompletedProcess:
    """Run a documented ``ros2 ...`` command line with bash (after sourcing, for colcon)."""
    script = ('source install/setup.bash && ' if source else '') + command
    return subprocess.run(['bash', '-c', script], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def _retry_verb(command: str, env: Dict[str, str], cwd: Path, expect: str,
                source: bool = False, tries: int = 10) -> str:
    """Run a graph query until its output contains ``expect`` (the daemon's graph fills slowly)."""
    output = ''
    for _ in range(tries):
        result = _ros2_verb(command, env, cwd, source=source)
        output = result.stdout + result.stderr
        if result.returncode == 0 and expect in output:
            return output
        wait_for(lambda: False, 2.0)
    pytest.fail(f'{command}: no {expect!r} after {tries} tries:\n{output[-2000:]}')


def _stop_daemon(env: Dict[str, str], cwd: Path, source: bool = False) -> None:
    _ros2_verb(DOC_DAEMON_STOP, env, cwd, source=source)


def _bag_sequence(topic: str, count: int, scale: int = 1
                  ) -> List[Tuple[Any, List[Tuple[str, Tuple[float, ...]]]]]:
    """Return the first ``count`` frames of ``topic``, ``scale`` times larger, with their truth."""
    from types import SimpleNamespace

    import cv2

    from tensorrt_yolox_py.data.rosbag_io import read_images

    truth = json.loads((BAG / 'ground_truth.json').read_text())
    names = {c['id']: c['name'] for c in truth['categories']}
    image_ids = {(i['topic'], i['stamp_ns']): i['id'] for i in truth['images']}
    frames = []
    for frame in read_images(BAG):
        if frame.topic != topic or len(frames) == count:
            continue
        image_id = image_ids[(frame.topic, frame.stamp_ns)]
        boxes = [(names[a['category_id']], tuple(scale * v for v in (
            a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2], a['bbox'][1] + a['bbox'][3])))
            for a in truth['annotations'] if a['image_id'] == image_id]
        image = cv2.resize(frame.image, None, fx=scale, fy=scale,
                           interpolation=cv2.INTER_LINEAR) if scale != 1 else frame.image
        frames.append((SimpleNamespace(image=image, encoding=frame.encoding,
                                       frame_id=frame.frame_id, stamp_ns=frame.stamp_ns), boxes))
    assert len(frames) == count
    return frames


def _full_size_round_trips(peer: Any, frames: List[Any]) -> Tuple[int, List[Any], List[Any]]:
    """Send each full-size frame ONCE (after a warm-up) and collect answers and annotated images.

    Returns (frames answered, results in order, the list that collects the annotated images,
    still filling: the warm-up's first). The annotated images (``~/out/image``, as large as
    the input) go to a best-effort subscriber, as image viewers subscribe: they arrive only
    where the node's DDS carries large samples.
    """
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    results: List[Any] = []
    annotated: List[Any] = []
    peer.create_subscription(Detection2DArray, '/tensorrt_yolox/out/objects', results.append, 10)
    peer.create_subscription(Image, '/tensorrt_yolox/out/image', annotated.append,
                             qos_profile_sensor_data)
    publisher = peer.create_publisher(Image, '/cam0/image_raw', 10)
    warm_frame = frames[0][0]
    warm = image_msg(warm_frame.image[:64, :64].copy(), 'bgr8', 0, 'warm-up', stamp=(1, 0))
    assert publish_until(publisher, warm, lambda: any(
        r.header.frame_id == 'warm-up' for r in results) and any(
        a.header.frame_id == 'warm-up' for a in annotated), timeout=START_TIMEOUT_S), (
        'the node never answered a small frame')
    answered = 0
    for frame, _ in frames:
        stamp = divmod(frame.stamp_ns, 1_000_000_000)
        publisher.publish(_frame_msg(frame))
        if wait_for(lambda: any((r.header.stamp.sec, r.header.stamp.nanosec) == stamp
                                for r in results), 30.0):
            answered += 1
    ordered = [r for r in results if r.header.frame_id != 'warm-up']
    return answered, ordered, annotated


def _annotated_frames(annotated: List[Any]) -> List[Any]:
    return [a for a in annotated if a.header.frame_id != 'warm-up']


def test_full_size_frames_arrive_through_a_colcon_install_with_no_environment_set(
        ros2: Path, ros: Any, colcon_install: Path) -> None:
    """The documented colcon steps: full-size frames in, detections and annotated frames out.

    The launch file applies the package's Fast DDS profile (nobody set one): every 1920x1280
    frame (the bag's, scaled 2x) is answered and every annotated 1920x1280 frame reaches a
    best-effort subscriber.
    The test's own publisher uses the profile too (conftest.py, as the docs tell camera
    drivers to).
    """
    env = installed_env()
    prefix = colcon_install / 'install' / PACKAGE
    frames = _bag_sequence('/sensing/camera/camera0/image_rect_color', 6, scale=2)
    run = LaunchRun(ros2, '', [], cwd=colcon_install, env=env, command=[
        BASH, '-c', f'source install/setup.bash && exec {DOC_LAUNCH_CPU}'])
    echo: Optional[subprocess.Popen] = None
    try:
        peer = ros.peer('launch_test_colcon')
        answered, results, annotated = _full_size_round_trips(peer, frames)
        output = run.output()
        assert f'DDS: FASTDDS_DEFAULT_PROFILES_FILE={prefix}/share/{PACKAGE}/config/' \
               'fastdds_large_data.xml' in output, output[-3000:]
        assert output.count('DDS: ') == 1  # logged once (by launch, not again by the node)
        import psutil

        (pid,) = run.started()  # the node's executable and Python package: the install's
        assert f'{prefix}/lib/{PACKAGE}/yolox_node' in psutil.Process(pid).cmdline()
        assert f'model {prefix}/lib/python' in output
        assert answered == len(frames), output[-3000:]
        for (frame, truth), result in zip(frames, results):
            _assert_detects(result, frame, truth)
        assert wait_for(lambda: len(_annotated_frames(annotated)) >= len(frames)), len(
            _annotated_frames(annotated))
        assert {(a.width, a.height) for a in _annotated_frames(annotated)} == {(1920, 1280)}
        # The documented verbs see the same: one detection message, the node's parameter.
        from sensor_msgs.msg import Image

        echo = subprocess.Popen([BASH, '-c', f'source install/setup.bash && {DOC_ECHO_OBJECTS}'],
                                cwd=colcon_install, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        publisher = peer.create_publisher(Image, '/cam0/image_raw', 10)
        assert publish_until(publisher, _frame_msg(frames[0][0]),
                             lambda: echo.poll() is not None, timeout=60.0, every=1.0)
        echoed = echo.communicate(timeout=30)[0]
        assert echo.returncode == 0 and 'class_id: ' in echoed, echoed[-2000:]
        assert f'frame_id: {frames[0][0].frame_id}' in echoed, echoed[-2000:]
        _retry_verb(DOC_PARAM_GET, env, colcon_install, 'String value is: cpu', source=True)
        code = run.stop(signal.SIGINT)
        run.assert_stopped_cleanly(code)
    finally:
        if echo is not None and echo.poll() is None:
            echo.kill()
            echo.wait(timeout=30)
        _stop_daemon(env, colcon_install, source=True)
        run.close()


def test_without_the_profile_full_size_annotated_frames_are_lost(
        ros2: Path, ros: Any, colcon_install: Path, tmp_path: Path) -> None:
    """The control of the test above: the user's own (default) profile is kept, and then the
    node's full-size annotated frames mostly never reach a best-effort subscriber.

    Measured here (Fast DDS of the Kilted wheels, 2 cores, 1920x1280 bgr8): 0 of 6 arrive
    without the profile, 6 of 6 with it (at 960x640: 4 of 6 without it); inside the whole
    suite on the loaded machine, 3 of 6 arrived without it. So the test above depends on the
    profile the launch file applies, and this one asserts that not all frames arrive.
    """
    plain = tmp_path / 'plain_fastdds.xml'
    plain.write_text('<?xml version="1.0" encoding="UTF-8" ?>\n'
                     '<profiles xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles">\n'
                     '  <participant profile_name="plain" is_default_profile="true">'
                     '<rtps/></participant>\n</profiles>\n')
    env = installed_env(FASTDDS_DEFAULT_PROFILES_FILE=str(plain))
    run = LaunchRun(ros2, '', [], cwd=colcon_install, env=env, command=[
        BASH, '-c', f'source install/setup.bash && exec {DOC_LAUNCH_CPU}'])
    try:
        frames = _bag_sequence('/sensing/camera/camera0/image_rect_color', 6, scale=2)
        peer = ros.peer('launch_test_plain')
        answered, _, annotated = _full_size_round_trips(peer, frames)
        assert f"DDS: using your FASTDDS_DEFAULT_PROFILES_FILE='{plain}'" in run.output()
        assert answered == len(frames)  # the input side: our publisher has the profile
        wait_for(lambda: False, 10.0)  # what is still on its way arrives (it does not)
        assert len(_annotated_frames(annotated)) < len(frames), len(annotated)
        code = run.stop(signal.SIGINT)
        run.assert_stopped_cleanly(code)
    finally:
        run.close()


def test_cameras_file_by_name_from_any_folder_with_an_allowed_cpu_fallback(
        ros2: Path, ros: Any, colcon_install: Path, tmp_path: Path) -> None:
    """The shipped Orin layout (gpu, dla0, dla1, gpu) from an empty folder, on the CPU.

    Where nothing can use those devices, each camera logs a WARN line and publishes a WARN
    diagnostics status; the documented verbs read its result and its diagnostics.
    """
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    env = venv_env()
    fallback = not _gpu_backend_here()
    run = LaunchRun(ros2, '', [], cwd=tmp_path, command=DOC_CAMERAS_FALLBACK.split(),
                    install=colcon_install)
    try:
        assert run.wait_output(r'running 4 camera node\(s\)'), run.output()
        frame, truth = _bag_frames()['/sensing/camera/camera0/image_rect_color']
        peer = ros.peer('launch_test_shipped')
        statuses: List[Any] = []
        peer.create_subscription(DiagnosticArray, '/diagnostics',
                                 lambda msg: statuses.extend(msg.status), 10)
        _assert_detects(_answer(peer, '/sensing/camera/camera0/image_rect_color',
                                '/perception/object_recognition/detection/rois0', frame),
                        frame, truth)
        camera0 = '/perception/object_recognition/detection/camera0/tensorrt_yolox'
        assert 'Boolean value is: True' in _retry_verb(
            f'ros2 param get {camera0} allow_cpu_fallback', env, tmp_path, 'Boolean value')
        if fallback:
            output = run.output()
            for camera, device in (('camera0', 'gpu'), ('camera1', 'dla0'),
                                   ('camera2', 'dla1'), ('camera3', 'gpu')):
                assert re.search(rf'\[WARN\] \[[\d.]+\] \[perception\.object_recognition\.'
                                 rf'detection\.{camera}\.tensorrt_yolox\]: backend: '
                                 rf'onnxruntime \(CPU fallback: device={device} cannot run '
                                 'here', output), camera
            assert wait_for(lambda: any(
                s.name == f'{camera0}: detector' and s.level == DiagnosticStatus.WARN
                and 'CPU fallback: device=gpu' in s.message for s in statuses), 30.0)
            echoed = _retry_verb(DOC_ECHO_DIAGNOSTICS, env, tmp_path, 'CPU fallback')
            assert '- level: "\\x01"' in echoed, echoed[-2000:]  # WARN
        code = run.stop(signal.SIGINT)
        run.assert_stopped_cleanly(code)
    finally:
        _stop_daemon(env, tmp_path)
        run.close()


def test_a_refused_cpu_fallback_ends_the_launch_naming_the_camera(
        ros2: Path, colcon_install: Path, tmp_path: Path) -> None:
    """By default a gpu / DLA camera that nothing here can run refuses to start: status 1."""
    if _gpu_backend_here():
        pytest.skip('a GPU backend runs here: the shipped cameras start without a fallback')
    run = LaunchRun(ros2, '', [], cwd=tmp_path, command=DOC_CAMERAS.split(),
                    install=colcon_install)
    try:
        _assert_launch_failed(
            run, r"^camera 'camera\d' \(node /perception/object_recognition/detection/camera\d/"
                 r"tensorrt_yolox\) exited with status 2 \(yolox: error: parameter 'device': "
                 r"'(gpu|dla0|dla1)' cannot run here .*set allow_cpu_fallback:=true to run on "
                 r'the CPU instead, or device:=cpu\); stopping every node$')
    finally:
        run.close()
