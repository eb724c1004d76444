"""Several cameras through the multi-camera runner over real DDS; overload; clean shutdown."""

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest
import yaml
from conftest import subprocess_env, wait_for
from ros_helpers import box_of, image_msg, planted_image, publish_until

pytestmark = pytest.mark.ros

CELLS = [(1, 1), (4, 2), (6, 5)]


def _cameras_file(tmp_path: Path, params: Dict[str, Any], count: int = 3) -> Path:
    config = {'namespace': '/test', 'exclusive_dla': True, 'parameters': params,
              'cameras': [{'name': f'cam{i}', 'image_topic': f'/test_images/cam{i}',
                           'device': 'cpu', 'objects_topic': f'/test_objects/cam{i}'}
                          for i in range(count)]}
    path = tmp_path / 'cameras.yaml'
    path.write_text(yaml.safe_dump(config))
    return path


def _three_camera_round_trip(peer: Any) -> None:
    """Publish a different planted object to each camera; each answers on its own topic."""
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    outputs: Dict[int, List[Any]] = {}
    publishers = []
    for i in range(3):
        outputs[i] = []
        peer.create_subscription(Detection2DArray, f'/test_objects/cam{i}', outputs[i].append,
                                 10)
        publishers.append(peer.create_publisher(Image, f'/test_images/cam{i}', 10))
    expected = {}
    for i, cell in enumerate(CELLS):
        image, expected[i] = planted_image(480, 640, cell)
        msg = image_msg(image, 'bgr8', 4 * i, f'frame_cam{i}')
        assert publish_until(publishers[i], msg, lambda: len(outputs[i]) >= 1), i
    for i in range(3):
        assert {m.header.frame_id for m in outputs[i]} == {f'frame_cam{i}'}
        boxes = [box_of(d) for m in outputs[i] for d in m.detections]
        assert boxes, i
        for box in boxes:
            np.testing.assert_allclose(box, expected[i], atol=0.5)


def test_three_cameras_in_one_process(ros: Any, cpu_params: dict, tmp_path: Path) -> None:
    from tensorrt_yolox_py.ros.camera_mapping import load_cameras_file
    from tensorrt_yolox_py.ros.multi_camera import create_nodes

    specs = load_cameras_file(_cameras_file(tmp_path, cpu_params))
    nodes = create_nodes(specs, context=ros.context)
    for node in nodes:
        ros.add(node)
    assert sorted(n.get_fully_qualified_name() for n in nodes) == [
        '/test/cam0/tensorrt_yolox', '/test/cam1/tensorrt_yolox', '/test/cam2/tensorrt_yolox']
    _three_camera_round_trip(ros.peer())


def _slow_factory(delay_s: float) -> Any:
    """Detector factory whose real ONNX Runtime backend sleeps ``delay_s`` per inference."""
    from tensorrt_yolox_py.backends.onnxruntime_backend import OnnxRuntimeBackend
    from tensorrt_yolox_py.pipeline import Detector

    class SlowOnnxRuntimeBackend(OnnxRuntimeBackend):
        def _infer_impl(self, tensor: np.ndarray) -> np.ndarray:
            time.sleep(delay_s)
            return super()._infer_impl(tensor)

    def factory(config: Any) -> Detector:
        backend = SlowOnnxRuntimeBackend(config.resolved_model_path, num_threads=1)
        return Detector.from_config(config, backend=backend)

    return factory


@pytest.mark.timing
def test_overload_three_cameras_at_30hz_into_a_slow_backend(ros: Any, cpu_params: dict,
                                                            tmp_path: Path) -> None:
    psutil = pytest.importorskip('psutil')
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from tensorrt_yolox_py.ros.camera_mapping import load_cameras_file
    from tensorrt_yolox_py.ros.multi_camera import create_nodes

    delay_s, rate_hz, duration_s = 0.2, 30.0, 4.0
    nodes = create_nodes(load_cameras_file(_cameras_file(tmp_path, cpu_params)),
                         context=ros.context, detector_factory=_slow_factory(delay_s))
    for node in nodes:
        ros.add(node)
    peer = ros.peer()
    clock = peer.get_clock()
    received: Dict[int, List[Tuple[float, float]]] = {i: [] for i in range(3)}

    def on_objects(i: int) -> Any:
        def callback(msg: Any) -> None:
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            received[i].append((stamp, clock.now().nanoseconds * 1e-9))
        return callback

    publishers = []
    for i in range(3):
        peer.create_subscription(Detection2DArray, f'/test_objects/cam{i}', on_objects(i), 100)
        publishers.append(peer.create_publisher(Image, f'/test_images/cam{i}', 10))
    assert wait_for(lambda: all(p.get_subscription_count() >= 1 for p in publishers))
    images = [image_msg(planted_image(480, 640, cell)[0], 'bgr8', 0, f'cam{i}')
              for i, cell in enumerate(CELLS)]
    process = psutil.Process()
    published: Dict[int, List[float]] = {i: [] for i in range(3)}
    rss: List[float] = []

    def publish_all() -> None:
        start = time.monotonic()
        tick = 0
        while time.monotonic() - start < duration_s:
            for i, msg in enumerate(images):
                msg.header.stamp = clock.now().to_msg()
                publishers[i].publish(msg)
                published[i].append(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)
            tick += 1
            if tick % 15 == 0:
                rss.append(process.memory_info().rss / 2**20)
            time.sleep(max(0.0, start + tick / rate_hz - time.monotonic()))

    thread = threading.Thread(target=publish_all)
    thread.start()
    thread.join()

    def settled() -> bool:
        return all(n.stats.received == n.stats.processed + n.stats.dropped + n.stats.skipped
                   + n.stats.failed for n in nodes)

    assert wait_for(settled)
    # Every processed frame's result was published before it was counted: wait for them all.
    assert wait_for(lambda: all(len(received[i]) >= nodes[i].stats.processed for i in range(3)))
    worst = [max((arrival - stamp for stamp, arrival in received[i]), default=0.0)
             for i in range(3)]
    print(f'overload: max latency per camera {[round(w, 3) for w in worst]} s '
          f'(bound {6 * delay_s + 0.3:.2f} s)')
    for i, node in enumerate(nodes):
        stats = node.stats
        sent = len(published[i])
        assert sent >= 0.5 * rate_hz * duration_s  # (a loaded machine publishes slower)
        assert stats.dropped > 0, 'frames faster than inference must be dropped and counted'
        assert stats.processed < 0.5 * stats.received
        assert stats.skipped == 0 and stats.failed == 0
        stamps = [stamp for stamp, _ in received[i]]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        # Newest frame wins: the last result is for one of the last frames sent.
        assert stamps[-1] >= published[i][-3]
        latencies = [arrival - stamp for stamp, arrival in received[i]]
        # Bounded: a few inference periods; a FIFO queue would reach ~duration_s by the end.
        assert max(latencies) < 6 * delay_s + 0.3, max(latencies)
    # Memory: pending frames are replaced, not queued (a queue would grow ~80 MB per second).
    assert len(rss) >= 4
    assert max(rss[1:]) - rss[1] < 60.0, rss


def _start(entry: str, args: List[str]) -> subprocess.Popen:
    command = [sys.executable, '-c',
               f'from tensorrt_yolox_py.ros.entry_points import {entry}; {entry}()']
    return subprocess.Popen(command + args, env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen, sig: int) -> Tuple[int, str]:
    process.send_signal(sig)
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        pytest.fail(f'did not exit on signal {sig}: {err[-2000:]}')
    return process.returncode, err


def test_runner_process_serves_three_cameras_and_stops_cleanly_on_sigterm(
        ros: Any, cpu_params: dict, tmp_path: Path) -> None:
    path = _cameras_file(tmp_path, cpu_params)
    process = _start('yolox_multi_camera', ['--cameras', str(path)])
    try:
        _three_camera_round_trip(ros.peer())
    finally:
        code, err = _finish(process, signal.SIGTERM)
    assert code == 0, err[-2000:]
    assert 'Traceback' not in err
    assert 'running 3 camera node(s)' in err


def test_node_process_serves_and_stops_cleanly_on_sigint(ros: Any, cpu_params: dict) -> None:
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    args = ['--ros-args', '-r', '__node:=proc_det']
    for key, value in cpu_params.items():
        args += ['-p', f'{key}:={str(value).lower() if isinstance(value, bool) else value}']
    process = _start('yolox_node', args)
    try:
        peer = ros.peer()
        got: List[Any] = []
        peer.create_subscription(Detection2DArray, '/proc_det/out/objects', got.append, 10)
        pub = peer.create_publisher(Image, '/proc_det/in/image', 10)
        image, expected = planted_image(480, 640, (2, 3))
        assert publish_until(pub, image_msg(image, 'bgr8', 2, 'proc'), lambda: bool(got))
        np.testing.assert_allclose(box_of(got[0].detections[0]), expected, atol=0.5)
    finally:
        code, err = _finish(process, signal.SIGINT)
    assert code == 0, err[-2000:]
    assert 'Traceback' not in err
