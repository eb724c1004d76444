"""Executor choice under the GIL: 3 cameras at 30 Hz into a 0.2 s backend, in ONE process.

The scenario of test_overload_three_cameras_at_30hz_into_a_slow_backend (the planted model
behind an ONNX Runtime backend that sleeps ``--delay`` s per inference; publisher, detector
nodes and subscriber in one process and one executor), run with each executor and
interpreter switch interval given, ``--repeats`` times each. Per run it records the worst
latency of each camera and how late a 10 ms heartbeat thread of the same process woke (a
thread starved by the GIL wakes late; a separate process would not see it). With
``--dump-dir``, ``faulthandler`` writes every thread's stack whenever the heartbeat has not
run for 150 ms: what the other threads were doing during a stall.

    python benchmarks/bench_executor_gil.py [--executors single multi] [--switch 0.005 0.001]

Writes benchmarks/results/executor_gil.json and .md (machine, versions, date, load).
"""

import argparse
import faulthandler
import json
import os
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
os.environ['ROS_DOMAIN_ID'] = os.environ.get('YOLOX_BENCH_ROS_DOMAIN_ID',
                                             str(160 + os.getpid() % 30))
os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(REPO / 'config' / 'fastdds_large_data.xml')

from benchmarks.machine_info import machine_info  # noqa: E402

RESULTS = REPO / 'benchmarks' / 'results'
CAMERAS = 3


def _slow_factory(delay_s: float) -> Any:
    from tensorrt_yolox_py.backends.onnxruntime_backend import OnnxRuntimeBackend
    from tensorrt_yolox_py.pipeline import Detector

    class SlowOnnxRuntimeBackend(OnnxRuntimeBackend):
        def _infer_impl(self, tensor: np.ndarray) -> np.ndarray:
            time.sleep(delay_s)
            return super()._infer_impl(tensor)

    def factory(config: Any) -> Detector:
        return Detector.from_config(config, backend=SlowOnnxRuntimeBackend(
            config.resolved_model_path, num_threads=1))

    return factory


def _make_executor(kind: str, context: Any) -> Any:
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor

    if kind == 'multi':  # what yolox_multi_camera used before (one thread per camera + 1)
        return MultiThreadedExecutor(num_threads=CAMERAS + 1, context=context)
    return SingleThreadedExecutor(context=context)


def run_once(kind: str, switch_s: float, delay_s: float, seconds: float, model: Path,
             dump: Optional[Any]) -> Dict[str, Any]:
    """One run of the scenario; returns worst latency per camera and heartbeat lateness."""
    import rclpy
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from tensorrt_yolox_py.ros.node import YoloxNode

    previous = sys.getswitchinterval()
    sys.setswitchinterval(switch_s)
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = _make_executor(kind, context)
    params = [Parameter('model_path', value=str(model)), Parameter('device', value='cpu'),
              Parameter('preprocess_on_gpu', value=False), Parameter('num_threads', value=1)]
    nodes = [YoloxNode('tensorrt_yolox', namespace=f'/gil/cam{i}', context=context,
                       parameter_overrides=params, detector_factory=_slow_factory(delay_s))
             for i in range(CAMERAS)]
    peer = rclpy.create_node('gil_peer', context=context)
    clock = peer.get_clock()
    received: Dict[int, List[float]] = {i: [] for i in range(CAMERAS)}
    for i in range(CAMERAS):
        def on_objects(msg: Any, i: int = i) -> None:
            stamp = msg.header.stamp.sec * 1e9 + msg.header.stamp.nanosec
            received[i].append((clock.now().nanoseconds - stamp) / 1e9)
        peer.create_subscription(Detection2DArray, f'/gil/cam{i}/tensorrt_yolox/out/objects',
                                 on_objects, 100)
    pubs = [peer.create_publisher(Image, f'/gil/cam{i}/tensorrt_yolox/in/image', 10)
            for i in range(CAMERAS)]
    for node in nodes + [peer]:
        executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    deadline = time.monotonic() + 30.0
    while not all(p.get_subscription_count() for p in pubs) and time.monotonic() < deadline:
        time.sleep(0.01)
    image = np.full((480, 640, 3), 40, np.uint8)
    msgs = [Image(height=480, width=640, encoding='bgr8', step=640 * 3, data=image.tobytes())
            for _ in range(CAMERAS)]
    late: List[float] = []
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.is_set():
            if dump is not None:
                faulthandler.dump_traceback_later(0.15, file=dump)
            start = time.monotonic()
            time.sleep(0.01)
            late.append(time.monotonic() - start - 0.01)
        if dump is not None:
            faulthandler.cancel_dump_traceback_later()

    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    start, tick = time.monotonic(), 0
    while time.monotonic() - start < seconds:
        for pub, msg in zip(pubs, msgs):
            msg.header.stamp = clock.now().to_msg()
            pub.publish(msg)
        tick += 1
        time.sleep(max(0.0, start + tick / 30.0 - time.monotonic()))
    time.sleep(1.0)
    stop.set()
    beat.join()
    executor.shutdown(timeout_sec=10.0)
    spinner.join(timeout=10.0)
    for node in nodes + [peer]:
        node.destroy_node()
    context.try_shutdown()
    sys.setswitchinterval(previous)
    return {'executor': kind, 'switch_interval_s': switch_s,
            'max_latency_s': [round(max(received[i], default=float('nan')), 3)
                              for i in range(CAMERAS)],
            'results': [len(received[i]) for i in range(CAMERAS)],
            'heartbeat_max_late_s': round(max(late, default=0.0), 3),
            'heartbeat_late_over_100ms': sum(x > 0.1 for x in late),
            'load_average': [round(x, 2) for x in os.getloadavg()]}


def main() -> int:
    """Run the matrix, print and save it."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--executors', nargs='+', default=['single', 'multi'],
                        choices=['single', 'multi'])
    parser.add_argument('--switch', type=float, nargs='+', default=[0.005, 0.001])
    parser.add_argument('--repeats', type=int, default=4)
    parser.add_argument('--seconds', type=float, default=4.0)
    parser.add_argument('--delay', type=float, default=0.2)
    parser.add_argument('--dump-dir', type=Path, default=None)
    parser.add_argument('--output', type=Path, default=RESULTS / 'executor_gil')
    args = parser.parse_args()
    from tensorrt_yolox_py.devkit.synthetic import make_planted_model

    info = machine_info(('numpy', 'cv2', 'onnxruntime'))
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        model = make_planted_model(Path(tmp) / 'planted.onnx', (320, 320))
        for repeat in range(args.repeats):  # interleaved, so load changes hit every config
            for kind in args.executors:
                for switch in args.switch:
                    dump = None
                    if args.dump_dir:
                        args.dump_dir.mkdir(parents=True, exist_ok=True)
                        dump = open(args.dump_dir / f'{kind}_{switch}_{repeat}.txt', 'w')
                    try:
                        runs.append(run_once(kind, switch, args.delay, args.seconds, model,
                                             dump))
                    finally:
                        if dump:
                            dump.close()
                    print(json.dumps(runs[-1]), flush=True)
    lines = [f'# Executor choice under the GIL ({info["date_utc"]})', '',
             f'{info["cpu"]}, {info["cpu_count"]} cores, Python {info["python"]}; 3 cameras '
             f'at 30 Hz, backend {args.delay} s, {args.seconds} s per run, all in one process.',
             '', '| executor | switch interval | runs | worst latency (s) | median of run '
             'maxima (s) | heartbeat worst late (s) | load average |',
             '|---|---|---|---|---|---|---|']
    for kind in args.executors:
        for switch in args.switch:
            mine = [r for r in runs if r['executor'] == kind
                    and r['switch_interval_s'] == switch]
            maxima = [max(r['max_latency_s']) for r in mine]
            lines.append(f'| {kind} | {switch * 1e3:g} ms | {len(mine)} | {max(maxima):.3f} | '
                         f'{float(np.median(maxima)):.3f} | '
                         f'{max(r["heartbeat_max_late_s"] for r in mine):.3f} | '
                         f'{min(r["load_average"][0] for r in mine):.1f}-'
                         f'{max(r["load_average"][0] for r in mine):.1f} |')
    text = '\n'.join(lines) + '\n'
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix('.json').write_text(json.dumps(
        {'machine': info, 'args': {k: str(v) for k, v in vars(args).items()}, 'runs': runs},
        indent=1) + '\n')
    args.output.with_suffix('.md').write_text(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
