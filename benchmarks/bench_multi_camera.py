"""Multi-camera latency: ``yolox_multi_camera`` with N CPU cameras at 30 Hz each, one process.

Starts the runner (its console script, as users do) with N cameras on ``device: cpu`` and a
cheap model (the hand-weighted planted model, 320x320, a few ms per frame), publishes a
640x480 bgr8 image to every camera at ``--rate`` Hz from this process, and records per camera:

- node latency: the node's ``~/debug/pipeline_latency_ms`` (its clock at publish time minus
  the image stamp): what the process under test adds, GIL stalls included;
- end-to-end latency: arrival of the Detection2DArray here minus the image stamp (adds the
  DDS hops and this process's own scheduling);
- detector time: the node's ``~/debug/processing_time_ms`` (preprocess + infer +
  postprocess), the "backend time" of the target: max latency <= 3 x median detector time
  + 50 ms.

Samples from the first ``--warmup`` seconds (start-up, DDS discovery) are dropped. A stall
that hits every camera at once (the GIL symptom of issue 15) shows as max >> p99 on all
cameras. The machine's load average before and after is recorded (other jobs share it).

DDS stays on this machine (LOCALHOST, a domain of its own, the shared-memory profile).

    python benchmarks/bench_multi_camera.py [--cameras 3 6] [--seconds 30]

Writes benchmarks/results/multi_camera_latency.json and .md.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ['ROS_DOMAIN_ID'] = os.environ.get('YOLOX_BENCH_ROS_DOMAIN_ID',
                                             str(130 + os.getpid() % 30))
os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(REPO / 'config' / 'fastdds_large_data.xml')

from benchmarks.machine_info import machine_info  # noqa: E402

RESULTS = REPO / 'benchmarks' / 'results'
#: A separate process sleeping 10 ms in a loop, printing how late each wake-up was (ms) when
#: terminated: how much the MACHINE delays a runnable process (CPU load from other jobs),
#: against which the runner's latencies are read (a GIL stall shows in the runner only).
HEARTBEAT = '''
import signal, sys, time
late = []
signal.signal(signal.SIGTERM, lambda *a: (print(' '.join(f'{x:.2f}' for x in late)), sys.exit(0)))
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    t = time.monotonic(); time.sleep(0.01); late.append((time.monotonic() - t - 0.01) * 1e3)
print(' '.join(f'{x:.2f}' for x in late))
'''


def stats(values: List[float]) -> Dict[str, float]:
    """Median, p99, max (ms) and count of ``values``."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {'median_ms': float('nan'), 'p99_ms': float('nan'), 'max_ms': float('nan'),
                'n': 0}
    return {'median_ms': round(float(np.median(arr)), 2),
            'p99_ms': round(float(np.percentile(arr, 99)), 2),
            'max_ms': round(float(arr.max()), 2), 'n': int(arr.size)}


def _package_version(name: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return 'not installed'


def _runner_command(cameras_file: Path) -> List[str]:
    script = Path(sys.executable).parent / 'yolox_multi_camera'
    base = [str(script)] if script.exists() else [
        sys.executable, '-c', 'from tensorrt_yolox_py.ros.entry_points import '
        'yolox_multi_camera; yolox_multi_camera()']
    return base + ['--cameras', str(cameras_file), '--ros-args', '--log-level', 'warn']


def run_config(count: int, seconds: float, warmup: float, rate_hz: float,
               model: Path, workdir: Path) -> Dict[str, Any]:
    """Run the runner with ``count`` cameras and return the per-camera statistics."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image
    from std_msgs.msg import Float64
    from vision_msgs.msg import Detection2DArray

    cameras = workdir / f'cameras{count}.yaml'
    cameras.write_text(yaml.safe_dump({
        'namespace': '/bench', 'exclusive_dla': True,
        'parameters': {'model_path': str(model), 'preprocess_on_gpu': False,
                       'num_threads': 1},
        'cameras': [{'name': f'cam{i}', 'image_topic': f'/bench_images/cam{i}',
                     'device': 'cpu'} for i in range(count)]}))
    load_before = os.getloadavg()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen(_runner_command(cameras), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, env=env)
    heartbeat = subprocess.Popen([sys.executable, '-c', HEARTBEAT, str(warmup + seconds + 60)],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('bench_multi_camera', context=context)
    clock = node.get_clock()
    start = time.monotonic()
    series: Dict[str, Dict[int, List[float]]] = {
        key: {i: [] for i in range(count)} for key in ('node', 'e2e', 'detector')}

    def keep(key: str, i: int, value: float) -> None:
        if time.monotonic() - start >= warmup:
            series[key][i].append(value)

    def on_objects(i: int) -> Any:
        def callback(msg: Any) -> None:
            stamp = msg.header.stamp.sec * 1e9 + msg.header.stamp.nanosec
            keep('e2e', i, (clock.now().nanoseconds - stamp) / 1e6)
        return callback

    pubs = []
    for i in range(count):
        prefix = f'/bench/cam{i}/tensorrt_yolox'
        node.create_subscription(Detection2DArray, f'{prefix}/out/objects', on_objects(i), 50)
        node.create_subscription(Float64, f'{prefix}/debug/pipeline_latency_ms',
                                 lambda m, i=i: keep('node', i, m.data), 50)
        node.create_subscription(Float64, f'{prefix}/debug/processing_time_ms',
                                 lambda m, i=i: keep('detector', i, m.data), 50)
        pubs.append(node.create_publisher(Image, f'/bench_images/cam{i}', 1))
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    msgs = [Image(height=480, width=640, encoding='bgr8', step=640 * 3, data=image.tobytes())
            for _ in range(count)]
    deadline = time.monotonic() + 60.0
    while not all(p.get_subscription_count() for p in pubs) and time.monotonic() < deadline:
        time.sleep(0.05)
    start = time.monotonic()  # warm-up counts from when every camera listens
    tick = 0
    while time.monotonic() - start < warmup + seconds:
        for pub, msg in zip(pubs, msgs):
            msg.header.stamp = clock.now().to_msg()
            pub.publish(msg)
        tick += 1
        time.sleep(max(0.0, start + tick / rate_hz - time.monotonic()))
    time.sleep(1.0)
    heartbeat.terminate()
    late = [float(x) for x in heartbeat.communicate(timeout=30)[0].split()]
    process.terminate()
    _, err = process.communicate(timeout=60)
    executor.shutdown(timeout_sec=5.0)
    spinner.join(timeout=5.0)
    node.destroy_node()
    context.try_shutdown()
    per_camera = []
    for i in range(count):
        per_camera.append({'camera': f'cam{i}', 'node_latency': stats(series['node'][i]),
                           'end_to_end_latency': stats(series['e2e'][i]),
                           'detector_time': stats(series['detector'][i])})
    detector_median = float(np.median([v for i in range(count)
                                       for v in series['detector'][i]] or [np.nan]))
    target = 3 * detector_median + 50.0
    worst = max((c['node_latency']['max_ms'] for c in per_camera), default=float('nan'))
    return {'cameras': count, 'rate_hz': rate_hz, 'seconds': seconds, 'warmup_s': warmup,
            'published_per_camera': tick, 'runner_exit_status': process.returncode,
            'runner_stderr_tail': err[-500:], 'detector_median_ms': round(detector_median, 2),
            'target_max_ms': round(target, 1), 'worst_node_max_ms': worst,
            'meets_target': bool(worst <= target), 'load_average_before': load_before,
            'outside_heartbeat_late': stats(late[int(warmup * 100):]),
            'load_average_after': os.getloadavg(), 'per_camera': per_camera}


def markdown(results: List[Dict[str, Any]], info: Dict[str, Any]) -> str:
    """Render the results as the .md table."""
    lines = [f'# yolox_multi_camera latency ({info.get("date_utc", "")})', '',
             f'Machine: {info.get("cpu", "")}, {info.get("cpu_count", "")} cores; '
             f'Python {info.get("python", "")}; '
             + ', '.join(f'{k} {v}' for k, v in info.get('versions', {}).items()), '',
             'Latency in ms after the warm-up; node = the node\'s own pipeline_latency_ms, '
             'e2e = arrival in the benchmark process. Target: max <= 3 x detector median + 50.',
             '', '| cameras | camera | detector median | node median | node p99 | node max '
             '| e2e p99 | e2e max | frames |', '|---|---|---|---|---|---|---|---|---|']
    for result in results:
        for cam in result['per_camera']:
            n, e, d = cam['node_latency'], cam['end_to_end_latency'], cam['detector_time']
            lines.append(f'| {result["cameras"]} | {cam["camera"]} | {d["median_ms"]} | '
                         f'{n["median_ms"]} | {n["p99_ms"]} | {n["max_ms"]} | {e["p99_ms"]} | '
                         f'{e["max_ms"]} | {n["n"]} |')
    lines.append('')
    for result in results:
        beat = result['outside_heartbeat_late']
        lines.append(f'- {result["cameras"]} cameras: target {result["target_max_ms"]} ms, '
                     f'worst node max {result["worst_node_max_ms"]} ms: '
                     f'{"meets" if result["meets_target"] else "MISSES"} the target; load '
                     f'average before {[round(x, 2) for x in result["load_average_before"]]}, '
                     f'after {[round(x, 2) for x in result["load_average_after"]]}; a '
                     f'separate 10 ms heartbeat process woke late by p99 {beat["p99_ms"]} ms, '
                     f'max {beat["max_ms"]} ms (the machine\'s own scheduling delay)')
    return '\n'.join(lines) + '\n'


def main() -> int:
    """Run each camera count, print the table, write JSON and markdown."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cameras', type=int, nargs='+', default=[3, 6])
    parser.add_argument('--seconds', type=float, default=30.0)
    parser.add_argument('--warmup', type=float, default=5.0)
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--output', type=Path, default=RESULTS / 'multi_camera_latency')
    args = parser.parse_args()
    from tensorrt_yolox_py.devkit.synthetic import make_planted_model

    info = machine_info(('numpy', 'cv2', 'onnxruntime'))
    info['versions']['rclpy (ros-rclpy)'] = _package_version('ros-rclpy')
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        model = make_planted_model(Path(tmp) / 'planted.onnx', (320, 320))
        for count in args.cameras:
            results.append(run_config(count, args.seconds, args.warmup, args.rate, model,
                                      Path(tmp)))
    text = markdown(results, info)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix('.json').write_text(json.dumps(
        {'machine': info, 'results': results}, indent=1) + '\n')
    args.output.with_suffix('.md').write_text(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
