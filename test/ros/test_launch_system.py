"""``ros2 launch`` of the installed package, as a user runs it: real processes over real DDS.

Each test starts ``ros2 launch tensorrt_yolox_py <file> ...`` from this venv (AMENT_PREFIX_PATH =
the venv, where scripts/setup.sh laid out the ament index marker, ``share/`` and
``lib/tensorrt_yolox_py/``), in its own session, and talks to the nodes from this process over
DDS (loopback only, this run's domain id: conftest.py). The nodes run the bundled demo model on
the CPU; the images are frames of the bundled rosbag, and a detection counts when it overlaps a
ground-truth box of the same class (IoU >= 0.5; the ground truth comes from the scene
generator, not from the model). Stopping is checked from the outside: the exit status of
``ros2 launch``, each node's exit status as launch reports it, no traceback, and no process left
(every process started carries a marker in its environment, searched in /proc with psutil).

Skipped, with the reason, where the launch system is not installed (it is not on PyPI:
scripts/setup.sh installs it from the wheelhouse named by YOLOX_ROS2_LAUNCH_WHEELHOUSE).
"""

import importlib.util
import json
import os
import re
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
_STARTED = re.compile(r'\[INFO\] \[([\w.-]+)\]: process started with pid \[(\d+)\]')
_CLEAN = re.compile(r'process has finished cleanly \[pid (\d+)\]')
_DIED = re.compile(r'process has died \[pid (\d+), exit code (-?\d+)')


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
                 terminal: bool = False) -> None:
        env = subprocess_env()
        prefix = str(Path(sys.prefix))
        env['AMENT_PREFIX_PATH'] = os.pathsep.join(
            filter(None, [prefix, env.get('AMENT_PREFIX_PATH')]))
        self.marker = uuid.uuid4().hex
        env[MARKER_VARIABLE] = self.marker
        self._terminal: List[int] = []
        stdin: Any = subprocess.DEVNULL
        if terminal:  # as from a shell: launch then leaves Ctrl-C's SIGINT to the terminal
            self._terminal = list(os.openpty())
            stdin = self._terminal[1]
        self.command = [str(ros2), 'launch', PACKAGE, launch_file] + list(arguments)
        self.process = subprocess.Popen(
            [sys.executable, '-c', TRAMPOLINE] + self.command, env=env, stdin=stdin,
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


def test_bad_parameter_ends_the_launch_with_one_line_and_status_2(ros2: Path) -> None:
    run = LaunchRun(ros2, 'yolox.launch.py', ['device:=cpu', 'precision:=fp64'])
    try:
        code = run.wait()
        output = run.output()
        errors = [line for line in output.splitlines() if 'yolox: error:' in line]
        assert len(errors) == 1, output
        assert errors[0].endswith("yolox: error: parameter 'precision': 'fp64' is not one of "
                                  'fp32, fp16, int8'), errors
        assert list(run.exit_codes().values()) == [2], output
        assert 'Traceback' not in output
        assert code == 0  # ros2 launch itself fails only for errors of the launch file
        assert wait_for(lambda: not run.marked_processes(), 15.0)
    finally:
        run.close()


def test_multi_camera_launch_maps_devices_and_stops_every_node_on_sigint(
        ros2: Path, ros: Any, tmp_path: Path) -> None:
    from tensorrt_yolox_py.backends import tensorrt_importable

    frames = list(_bag_frames().values())
    devices = {'cam_cpu0': 'cpu', 'cam_cpu1': 'cpu', 'cam_gpu': 'gpu', 'cam_dla0': 'dla0',
               'cam_dla1': 'dla1'}
    cameras = _cameras_file(tmp_path, devices, '/lt_multi')
    run = LaunchRun(ros2, 'multi_camera.launch.py', [f'cameras:={cameras}'])
    try:
        assert run.wait_output(_STARTED.pattern, count=len(devices)), run.output()
        assert len(run.started()) == len(devices)  # one process per camera
        serving = ['cam_cpu0', 'cam_cpu1', 'cam_gpu']
        if not tensorrt_importable():
            # The DLA cameras refuse to start, each with its device named, and exit with 2.
            for dla in ('dla0', 'dla1'):
                assert run.wait_output(rf"yolox: error: parameter 'device': '{dla}' needs "
                                       'TensorRT'), run.output()
            assert run.wait_output(r'process has died \[pid \d+, exit code 2', 2)
            assert sorted(run.exit_codes().values()) == [2, 2], run.output()
        else:  # a TensorRT machine: the DLA cameras serve too
            serving += ['cam_dla0', 'cam_dla1']
        peer = ros.peer('launch_test_multi')
        for index, name in enumerate(serving):
            node = f'/lt_multi/{name}/tensorrt_yolox'
            values = _parameters(peer, node, ['device', 'dla_core_id'])
            device = devices[name]
            assert values == {'device': device,
                              'dla_core_id': int(device[-1]) if 'dla' in device else -1}
            frame, truth = frames[index % len(frames)]
            result = _answer(peer, f'/lt_multi_images/{name}', f'/lt_multi_objects/{name}',
                             frame)
            _assert_detects(result, frame, truth)
        running = [pid for pid in run.started() if pid not in run.exit_codes()]
        assert len(running) == len(serving)  # the refused cameras took no other one down
        code = run.stop(signal.SIGINT)
        run.assert_stopped_cleanly(code)
        assert all(run.exit_codes()[pid] == 0 for pid in running), run.output()
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
                                                     'single_process:=true'], terminal)
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


def test_colcon_build_installs_a_package_that_ros2_launch_runs(ros2: Path, tmp_path: Path
                                                               ) -> None:
    """The ROS user's way: colcon build, source install/setup.bash, ros2 launch."""
    colcon = Path(sys.prefix) / 'bin' / 'colcon'
    if not colcon.exists():
        pytest.skip('colcon is not installed (pip install colcon-common-extensions)')
    env = subprocess_env()
    env.pop('AMENT_PREFIX_PATH', None)
    env['PATH'] = os.pathsep.join([str(Path(sys.prefix) / 'bin'), env.get('PATH', '')])
    env[MARKER_VARIABLE] = marker = uuid.uuid4().hex
    build = subprocess.run([str(colcon), '--log-base', 'log', 'build', '--base-paths', str(REPO),
                            '--packages-select', PACKAGE], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    prefix = tmp_path / 'install' / PACKAGE
    for path in (f'lib/{PACKAGE}/yolox_node', f'lib/{PACKAGE}/yolox_multi_camera',
                 f'share/ament_index/resource_index/packages/{PACKAGE}',
                 f'share/{PACKAGE}/launch/yolox.launch.py',
                 f'share/{PACKAGE}/launch/multi_camera.launch.py',
                 f'share/{PACKAGE}/config/yolox.param.yaml',
                 f'share/{PACKAGE}/config/cameras.yaml'):
        assert (prefix / path).exists(), path
    script = (f'source install/setup.bash && ros2 pkg prefix {PACKAGE} && '
              f'ros2 launch {PACKAGE} yolox.launch.py device:=cpu precision:=fp64')
    result = subprocess.run(['bash', '-c', script], cwd=tmp_path, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=120)
    output = result.stdout
    assert result.returncode == 0 and output.splitlines()[0] == str(prefix), output
    # The node ran from colcon's install: its executable and its parameter file.
    assert f"cmd '{prefix}/lib/{PACKAGE}/yolox_node " in output, output
    assert f'--params-file {prefix}/share/{PACKAGE}/config/yolox.param.yaml' in output
    assert "yolox: error: parameter 'precision'" in output
    assert re.search(r'process has died \[pid \d+, exit code 2', output), output
    assert 'Traceback' not in output
    assert wait_for(lambda: not marked_processes(marker), 15.0)
