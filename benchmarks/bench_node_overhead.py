"""ROS node overhead: end-to-end latency over DDS minus the detector's own pipeline time.

Starts ``yolox_node`` as a separate process (ONNX Runtime on the CPU, a hand-weighted planted
model at 960x608 by default, so inference is cheap and the node's own cost stands out), then
publishes 1920x1280 bgr8 images one at a time from this process and waits for each
Detection2DArray. Per frame:

- end-to-end = arrival of the Detection2DArray here - the image's header stamp (set at publish;
  both from this machine's system clock);
- pipeline = the node's ``~/debug/processing_time_ms`` (preprocess + infer + postprocess);
- overhead = end-to-end - pipeline: DDS transport both ways, rclpy (de)serialisation, image
  conversion, message building, thread hand-over.

For scale, the same frames also go to a bare rclpy echo process (subscribes to the image with
the node's QoS and publishes its header back): the round trip every rclpy node pays to receive
such an image (``--no-echo`` skips it).

DDS stays on this machine: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, a ROS_DOMAIN_ID of its own,
and the shared-memory Fast DDS profile config/fastdds_large_data.xml (``--transport default``
uses Fast DDS defaults and a reliable input instead, as large images sent best effort between
processes are mostly lost with those). Prints a table and writes
benchmarks/results/node_overhead.json.

    python benchmarks/bench_node_overhead.py [--frames 200] [--model yolox.onnx]
"""

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
# One domain for this run, shared with the processes it starts (they re-run this module).
os.environ['YOLOX_BENCH_ROS_DOMAIN_ID'] = os.environ.get('YOLOX_BENCH_ROS_DOMAIN_ID',
                                                         str(100 + os.getpid() % 30))
os.environ['ROS_DOMAIN_ID'] = os.environ['YOLOX_BENCH_ROS_DOMAIN_ID']

from benchmarks.machine_info import machine_info  # noqa: E402

RESULTS = REPO / 'benchmarks' / 'results'
NODE = 'bench_yolox'
ECHO = 'bench_echo'
PROFILE = REPO / 'config' / 'fastdds_large_data.xml'


def stats(values: List[float]) -> Dict[str, float]:
    """Median, p90, p99, mean, min, max of ``values`` (ms)."""
    arr = np.asarray(values, dtype=np.float64)
    return {'median_ms': float(np.median(arr)), 'p90_ms': float(np.percentile(arr, 90)),
            'p99_ms': float(np.percentile(arr, 99)), 'mean_ms': float(arr.mean()),
            'min_ms': float(arr.min()), 'max_ms': float(arr.max()), 'n': int(arr.size)}


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return 'not installed'


def start_node(model: Path, transport: str) -> subprocess.Popen:
    """Start the node under test in its own process."""
    args = [sys.executable, '-c', 'from tensorrt_yolox_py.ros.entry_points import yolox_node; '
            'yolox_node()', '--ros-args',
            '-r', f'__node:={NODE}', '-p', f'model_path:={model}', '-p', 'device:=cpu',
            '-p', 'preprocess_on_gpu:=false', '--log-level', 'warn']
    if transport == 'default':
        args += ['-p', f'qos_overrides./{NODE}/in/image.subscription.reliability:=reliable']
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def echo_server() -> int:
    """Run the bare echo node: image in (sensor-data QoS) -> its header out."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                     reliability=ReliabilityPolicy.BEST_EFFORT)
    try:
        with rclpy.init():
            node = rclpy.create_node(ECHO)
            publisher = node.create_publisher(Header, f'/{ECHO}/header', 10)
            node.create_subscription(Image, f'/{ECHO}/in/image',
                                     lambda msg: publisher.publish(msg.header), qos)
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0


def start_echo(transport: str) -> subprocess.Popen:
    """Start the bare echo node in its own process."""
    args = [sys.executable, str(Path(__file__).resolve()), '--echo-server']
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def run(args: argparse.Namespace, model: Optional[Path]) -> Dict[str, Any]:
    """Publish the frames, collect per-frame latencies, return the summary.

    ``model`` None measures the bare echo node instead of the detector node.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image
    from std_msgs.msg import Float64, Header
    from vision_msgs.msg import Detection2DArray

    from tensorrt_yolox_py.ros.image_conversion import fill_image_msg

    image = np.full((args.height, args.width, 3), 60, np.uint8)
    image[400:700, 600:900] = (0, 0, 255)  # something for the planted model to find
    msg = fill_image_msg(Image(), image, 'bgr8')
    msg.header.frame_id = 'bench_camera'
    echo = model is None
    target = ECHO if echo else NODE
    process = start_echo(args.transport) if echo else start_node(model, args.transport)
    rclpy.init()
    node = rclpy.create_node('bench_node_overhead')
    arrivals: Dict[int, int] = {}
    pipeline: List[float] = []
    cond = threading.Condition()

    def on_objects(out: Any) -> None:
        with cond:
            header = out if echo else out.header
            key = header.stamp.sec * 10**9 + header.stamp.nanosec
            arrivals[key] = time.time_ns()
            cond.notify_all()

    def on_time(out: Any) -> None:
        with cond:
            pipeline.append(out.data)
            cond.notify_all()

    if echo:
        node.create_subscription(Header, f'/{ECHO}/header', on_objects, 10)
    else:
        node.create_subscription(Detection2DArray, f'/{NODE}/out/objects', on_objects, 10)
        node.create_subscription(Float64, f'/{NODE}/debug/processing_time_ms', on_time, 10)
    publisher = node.create_publisher(Image, f'/{target}/in/image', 10)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    samples: List[Dict[str, float]] = []
    lost = 0
    try:
        deadline = time.monotonic() + 60
        while publisher.get_subscription_count() < 1:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f'{target} did not start: ' + process.stderr.read()[-2000:])
            time.sleep(0.05)
        for index in range(args.warmup + args.frames):
            with cond:
                seen = len(pipeline)
            stamp_ns = time.time_ns()
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
            publisher.publish(msg)
            with cond:
                ok = cond.wait_for(lambda: stamp_ns in arrivals
                                   and (echo or len(pipeline) > seen), timeout=args.timeout)
                if not ok:
                    lost += 1
                    continue
                end_to_end = (arrivals[stamp_ns] - stamp_ns) / 1e6
                own = 0.0 if echo else pipeline[seen]
            if index >= args.warmup:
                samples.append({'end_to_end': end_to_end, 'pipeline': own,
                                'overhead': end_to_end - own})
            time.sleep(args.gap)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    if not samples:
        raise RuntimeError('no frame came back')
    return {name: stats([s[name] for s in samples])
            for name in ('end_to_end', 'pipeline', 'overhead')} | {'lost_frames': lost}


def main(argv: Optional[List[str]] = None) -> int:
    """Run the benchmark, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--frames', type=int, default=200)
    parser.add_argument('--warmup', type=int, default=10)
    parser.add_argument('--width', type=int, default=1920)
    parser.add_argument('--height', type=int, default=1280)
    parser.add_argument('--model', help='YOLOX ONNX (default: the planted model at 960x608)')
    parser.add_argument('--transport', choices=('shm', 'default'), default='shm',
                        help='shm: config/fastdds_large_data.xml; default: Fast DDS defaults '
                        'with a reliable input')
    parser.add_argument('--gap', type=float, default=0.02, help='pause between frames (s)')
    parser.add_argument('--timeout', type=float, default=10.0, help='per-frame wait (s)')
    parser.add_argument('--no-echo', action='store_true', help='skip the bare echo baseline')
    parser.add_argument('--out', default=str(RESULTS / 'node_overhead.json'))
    parser.add_argument('--echo-server', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.echo_server:
        return echo_server()
    if args.transport == 'shm':
        os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(PROFILE)
    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            model = Path(args.model).resolve()
        else:
            from tensorrt_yolox_py.devkit.synthetic import make_planted_model

            model = make_planted_model(Path(tmp) / 'planted_960x608.onnx', (608, 960))
        summary = run(args, model)
    baseline = None if args.no_echo else run(args, None)['end_to_end']
    result = {
        'benchmark': 'node_overhead',
        'description': 'end-to-end latency over DDS (image publish -> Detection2DArray '
                       'arrival, separate processes) minus the node-reported pipeline time '
                       '(preprocess + infer + postprocess)',
        'image': f'{args.width}x{args.height} bgr8',
        'model': args.model or 'planted (hand-weighted) YOLOX-contract model, 960x608',
        'backend': 'onnxruntime (CPU), CPU preprocessing',
        'transport': ('Fast DDS, shared memory only (config/fastdds_large_data.xml), '
                      'best-effort input' if args.transport == 'shm'
                      else 'Fast DDS defaults, reliable input'),
        'frames': args.frames, 'warmup': args.warmup,
        'load_average_1_5_15min_at_end': list(os.getloadavg()),
        'results': summary,
        'bare_rclpy_echo_round_trip': baseline,
        'machine': machine_info() | {'ros': {
            name: _package_version(name) for name in
            ('ros-rclpy', 'ros-rmw-fastrtps-cpp', 'ros-fastdds', 'ros-sensor-msgs')},
            'rmw': os.environ.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp (default)')},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + '\n')
    print(f'node overhead, {result["image"]}, {result["transport"]}, '
          f'{summary["end_to_end"]["n"]} frames ({summary["lost_frames"]} lost)')
    print(f'{"":12} {"median":>9} {"p90":>9} {"p99":>9} {"mean":>9}  (ms)')
    for name in ('end_to_end', 'pipeline', 'overhead'):
        row = summary[name]
        print(f'{name:12} {row["median_ms"]:9.2f} {row["p90_ms"]:9.2f} {row["p99_ms"]:9.2f} '
              f'{row["mean_ms"]:9.2f}')
    if baseline:
        print(f'{"bare echo":12} {baseline["median_ms"]:9.2f} {baseline["p90_ms"]:9.2f} '
              f'{baseline["p99_ms"]:9.2f} {baseline["mean_ms"]:9.2f}  (image in, header '
              'back: an rclpy node doing nothing)')
    print(f'machine: {result["machine"]["cpu"]}, {result["machine"]["cpu_count"]} cores, '
          f'GPU: {result["machine"]["gpu"]}; written to {out}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
