#!/usr/bin/env python3
"""Shutdown stress: signal ``yolox_node`` / ``yolox_multi_camera`` at random moments.

Each trial starts the console script (CPU, the bundled demo model) while this process
publishes 640x480 images at 30 Hz to every camera, waits until the entry point has installed
its signal handlers (``SigCgt`` in /proc shows SIGTERM caught: before that the interpreter
itself is starting and Python's default handling applies, see docs/ros_interface.md), then
sends SIGINT or SIGTERM after a random delay (start-up: imports, rclpy init, model load;
running: mid-inference), and in half the trials a second signal 0-300 ms later (during the
shutdown; the issue's double Ctrl-C within 50 ms is inside that range). A trial passes when
the process exits with status 0 within the time limit and its stderr has no traceback, abort
or rclpy error.

    .venv/bin/python scripts/shutdown_stress.py --trials 200 [--entry yolox_node] [--json out]

The CI test (test/ros/test_shutdown_stress.py) runs tens of trials through ``run_trials``.
"""

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
ENTRY_POINTS = ('yolox_node', 'yolox_multi_camera')
CAMERAS = 2
#: What must never appear on stderr (tracebacks, aborts, the rclpy shutdown race's errors).
BAD_OUTPUT = re.compile(r'Traceback|terminate called|Aborted|Segmentation fault|RCLError|'
                        r'never retrieved|Destroyable|Fatal Python error|core dumped')


def set_dds_environment() -> None:
    """Keep DDS on this machine, in a domain of this run (before rclpy starts)."""
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    os.environ.setdefault('ROS_DOMAIN_ID', str(10 + os.getpid() % 90))
    os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(REPO / 'config' / 'fastdds_large_data.xml')


@dataclass
class Trial:
    """One signalled run and what came of it."""

    entry: str
    signals: List[str]
    delay_s: float
    second_after_s: Optional[float]
    returncode: Optional[int] = None
    exit_s: float = 0.0
    handlers_after_s: float = 0.0
    ok: bool = False
    problem: str = ''
    stderr_tail: str = field(default='', repr=False)


def _console_script(name: str) -> List[str]:
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script)]
    return [sys.executable, '-c', f'from tensorrt_yolox_py.ros.entry_points import {name}; '
            f'{name}()']


def _caught_signals(pid: int) -> int:
    try:
        with open(f'/proc/{pid}/status', encoding='ascii') as status:
            for line in status:
                if line.startswith('SigCgt:'):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def _command(entry: str, workdir: Path) -> List[str]:
    params = {'device': 'cpu', 'preprocess_on_gpu': False, 'num_threads': 1}
    if entry == 'yolox_node':
        args = ['--ros-args', '-r', '__node:=stress_det']
        for key, value in params.items():
            args += ['-p', f'{key}:={str(value).lower() if isinstance(value, bool) else value}']
        return _console_script(entry) + args
    import yaml

    cameras = workdir / 'cameras.yaml'
    cameras.write_text(yaml.safe_dump({
        'namespace': '/stress', 'exclusive_dla': True, 'parameters': params,
        'cameras': [{'name': f'cam{i}', 'image_topic': f'/stress_images/cam{i}',
                     'device': 'cpu'} for i in range(CAMERAS)]}))
    return _console_script(entry) + ['--cameras', str(cameras)]


def image_topics(entry: str) -> List[str]:
    """Input topics of an entry point as ``_command`` starts it."""
    if entry == 'yolox_node':
        return ['/stress_det/in/image']
    return [f'/stress_images/cam{i}' for i in range(CAMERAS)]


class ImageFeed:
    """Publish a 640x480 bgr8 image at ``rate_hz`` to every topic, in a background thread."""

    def __init__(self, topics: List[str], rate_hz: float = 30.0) -> None:
        import numpy as np
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import Image

        self._rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('shutdown_stress_feed', context=self.context)
        self._pubs = [self.node.create_publisher(Image, topic, 1) for topic in topics]
        image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
        self._msg = Image(height=480, width=640, encoding='bgr8', step=640 * 3,
                          data=image.tobytes())
        self._period = 1.0 / rate_hz
        self._stop = threading.Event()
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._threads = [threading.Thread(target=self._executor.spin, daemon=True),
                         threading.Thread(target=self._publish, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _publish(self) -> None:
        while not self._stop.wait(self._period):
            self._msg.header.stamp = self.node.get_clock().now().to_msg()
            for pub in self._pubs:
                pub.publish(self._msg)

    def close(self) -> None:
        """Stop publishing and shut the feed's context down."""
        self._stop.set()
        self._executor.shutdown(timeout_sec=5.0)
        for thread in self._threads:
            thread.join(timeout=5.0)
        self.node.destroy_node()
        self.context.try_shutdown()


def run_trial(entry: str, rng: random.Random, max_delay_s: float, workdir: Path,
              timeout_s: float = 60.0) -> Trial:
    """Start ``entry``, signal it once or twice at random moments, check how it ended."""
    sig = rng.choice([signal.SIGINT, signal.SIGTERM])
    second = rng.choice([None, rng.uniform(0.0, 0.3)])
    second_sig = rng.choice([signal.SIGINT, signal.SIGTERM])
    trial = Trial(entry, [sig.name] + ([second_sig.name] if second is not None else []),
                  round(rng.uniform(0.0, max_delay_s), 3),
                  None if second is None else round(second, 3))
    start = time.monotonic()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO), os.environ.get('PYTHONPATH')])))
    process = subprocess.Popen(_command(entry, workdir), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, env=env)
    err_chunks: List[str] = []
    reader = threading.Thread(target=lambda: err_chunks.append(process.stderr.read()),
                              daemon=True)
    reader.start()
    term_bit = 1 << (signal.SIGTERM - 1)
    while not _caught_signals(process.pid) & term_bit and process.poll() is None:
        if time.monotonic() - start > timeout_s:
            break
        time.sleep(0.001)
    trial.handlers_after_s = round(time.monotonic() - start, 3)
    time.sleep(trial.delay_s)
    if process.poll() is None:
        process.send_signal(sig)
    signalled = time.monotonic()
    if second is not None:
        time.sleep(second)
        if process.poll() is None:
            process.send_signal(second_sig)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        trial.problem = f'no exit within {timeout_s:.0f} s of the signal'
    reader.join(timeout=5.0)
    err = ''.join(err_chunks)
    trial.exit_s = round(time.monotonic() - signalled, 3)
    trial.returncode = process.returncode
    bad = BAD_OUTPUT.search(err)
    if not trial.problem and process.returncode != 0:
        trial.problem = f'exit status {process.returncode}'
    if not trial.problem and bad:
        trial.problem = f'stderr has {bad.group(0)!r}'
    trial.ok = not trial.problem
    if not trial.ok:
        trial.stderr_tail = err[-3000:]
    return trial


def run_trials(entries: List[str], trials: int, seed: int = 0, max_delay_s: float = 4.0,
               log: Any = None) -> Dict[str, Any]:
    """Run ``trials`` trials per entry point; return a summary with every failure."""
    set_dds_environment()
    rng = random.Random(seed)
    results: List[Trial] = []
    with tempfile.TemporaryDirectory() as tmp:
        for entry in entries:
            feed = ImageFeed(image_topics(entry))
            try:
                for index in range(trials):
                    trial = run_trial(entry, rng, max_delay_s, Path(tmp))
                    results.append(trial)
                    if log:
                        log(f'{entry} {index + 1}/{trials}: {"ok" if trial.ok else "FAIL"} '
                            f'{"+".join(trial.signals)} at {trial.delay_s:.3f} s'
                            + (f' (+{trial.second_after_s:.3f} s)'
                               if trial.second_after_s is not None else '')
                            + f', exit {trial.returncode} after {trial.exit_s:.2f} s'
                            + (f': {trial.problem}' if trial.problem else ''))
            finally:
                feed.close()
    failures = [t for t in results if not t.ok]
    return {'trials': len(results), 'passed': len(results) - len(failures),
            'failed': len(failures),
            'tracebacks': sum('Traceback' in t.stderr_tail for t in failures),
            'aborts': sum(bool(re.search(r'terminate called|Aborted|core dumped|'
                                         r'Segmentation', t.stderr_tail))
                          or (t.returncode or 0) < 0 for t in failures),
            'per_entry': {e: sum(t.ok for t in results if t.entry == e) for e in entries},
            'double_signal_trials': sum(t.second_after_s is not None for t in results),
            'max_exit_s': max((t.exit_s for t in results), default=0.0),
            'failures': [asdict(t) for t in failures]}


def main(argv: Optional[List[str]] = None) -> int:
    """Run the trials, print one line per trial and a summary; write JSON when asked."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--trials', type=int, default=100, help='trials per entry point')
    parser.add_argument('--entry', choices=ENTRY_POINTS, action='append',
                        help='entry point(s) to test (default: both)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--max-delay', type=float, default=4.0,
                        help='signal at a uniform random delay up to this many seconds '
                        'after the signal handlers are installed')
    parser.add_argument('--json', type=Path, default=None, help='write the summary here')
    args = parser.parse_args(argv)
    started = time.time()
    summary = run_trials(args.entry or list(ENTRY_POINTS), args.trials, args.seed,
                         args.max_delay, log=lambda line: print(line, flush=True))
    summary.update({'date': time.strftime('%Y-%m-%d %H:%M:%S %z', time.localtime(started)),
                    'duration_s': round(time.time() - started, 1), 'seed': args.seed,
                    'max_delay_s': args.max_delay, 'cpu_count': os.cpu_count(),
                    'load_average_at_end': os.getloadavg()})
    print(json.dumps({k: v for k, v in summary.items() if k != 'failures'}, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1) + '\n')
    return 0 if summary['failed'] == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
