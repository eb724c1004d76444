"""End to end per frame on the GPU, 1..8 cameras, batched vs one call per camera (issue 12).

Host image in memory -> Detections, through ``pipeline.Detector`` with the torch backend
(onnx2torch, CUDA) and the fused CUDA preprocessing kernel. For each model, precision, path,
mode and camera count it runs N camera threads in a closed loop (each submits its next frame
when the previous one's detections are back) for ``--seconds`` after a warm-up, and records:

- frames/s over all cameras, latency p50 / p99 per frame (submit -> Detections), and the
  median time per stage (preprocess / infer / postprocess, as ``DetectionResult.timings``);
- modes: ``batched`` (one ``BatchScheduler``: the cameras' newest frames preprocessed by one
  batched kernel launch into one (N, 3, H, W) buffer, one inference call, split per camera)
  and ``per_camera`` (each camera thread calls ``detect`` itself: one call per camera, its own
  CUDA stream, one shared model);
- paths: ``device`` (GPU-resident: kernel output bound as the model input, no host round
  trip), ``host`` (same kernel, output copied to the host and back: through the host) and
  ``cpu_pre`` (OpenCV preprocessing on the CPU);
- models: full-width YOLOX-S+-Opt (random weights, exported at run time) at 960x960 and the
  bundled demo model at 960x640 (W x H); sources are 1920x1280 bgr8;
- precisions fp32 / fp16; ``--cuda-graph on|both`` runs the torch backend's CUDA graphs.
  One backend per (model, precision, graph), batch 1..max cameras, shared by all its runs.

Targets (issue 12): 4 cameras batched >= 1.5x the frames/s of one call per camera, with p99
latency <= 2x that of a single camera; the JSON / md say met or by how much missed.
Writes benchmarks/results/gpu_end_to_end_<tag>.json and .md with machine, card, versions, date.

    python benchmarks/bench_gpu_end_to_end.py --tag h100             # the H100 run (~6 min)
    python benchmarks/bench_gpu_end_to_end.py --cuda-graph on --paths device --tag h100_graph
    python benchmarks/bench_gpu_end_to_end.py --quick                # CPU smoke test
"""

import argparse
import json
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine_info import machine_info  # noqa: E402
from tensorrt_yolox_py.backends import create_backend  # noqa: E402
from tensorrt_yolox_py.batching import BatchScheduler  # noqa: E402
from tensorrt_yolox_py.labels import load_labels  # noqa: E402
from tensorrt_yolox_py.params import DEFAULT_MODEL_PATH, make_config  # noqa: E402
from tensorrt_yolox_py.pipeline import Detector, make_preprocessor  # noqa: E402
from tensorrt_yolox_py.stages.postprocess import Postprocessor  # noqa: E402
from tensorrt_yolox_py.image import SourceImage  # noqa: E402
from tensorrt_yolox_py.stages.preprocess import CpuPreprocessor, Preprocessor  # noqa: E402
from tensorrt_yolox_py.tensors import HostTensor  # noqa: E402

LOG = logging.getLogger('bench_gpu_end_to_end')
RESULTS = Path(__file__).resolve().parent / 'results'
SOURCE_HW = (1280, 1920)
TARGET_SPEEDUP = 1.5
TARGET_P99_RATIO = 2.0


def percentile(values: Sequence[float], q: float) -> float:
    """Percentile of ``values`` (nan when empty)."""
    return float(np.percentile(values, q)) if len(values) else float('nan')


def export_splus(path: Path, input_hw) -> Path:
    """Export full-width YOLOX-S+-Opt with seeded random weights (onnxsim when present)."""
    from tensorrt_yolox_py.devkit.export import export_variant

    try:
        import onnxsim  # noqa: F401
        simplify = True
    except ImportError:
        simplify = False
    export_variant('yolox-s+-opt', str(path), input_hw, num_classes=8, simplify=simplify)
    return path


def export_tiny(path: Path, input_hw) -> Path:
    """Export the tiny test variant (the ``--quick`` model)."""
    from tensorrt_yolox_py.devkit.export import export_variant

    export_variant('yolox-tiny-test', str(path), input_hw, num_classes=8, simplify=True)
    return path


def make_backend(model: Path, precision: str, device: str, max_batch: int,
                 cuda_graph: bool) -> Any:
    """Create the torch backend of one (model, precision, graph), batch 1..max_batch."""
    return create_backend(make_config({
        'model_path': str(model), 'backend': 'torch', 'device': device,
        'precision': precision, 'max_batch': max_batch, 'cuda_graph': cuda_graph}))


class HostRoundTrip(Preprocessor):
    """The 'host' path: a CUDA preprocessor whose tensor is copied to pinned host memory.

    The runtime keeps a device tensor on the GPU whenever the backend reads device memory;
    this benchmark-only wrapper forces the host round trip to measure what that saves.
    """

    name = 'cuda+host'

    def __init__(self, inner: Preprocessor) -> None:
        super().__init__(inner.input_hw, inner.dtype)
        self.inner = inner
        self._host: Dict[int, np.ndarray] = {}

    def run(self, sources: Sequence[SourceImage]) -> Any:
        tensor, letterboxes = self.inner.run(sources)
        out = self._host.get(tensor.batch)
        if out is None:
            pinned = self.inner._mem.pinned_empty
            out = self._host[tensor.batch] = pinned(tensor.shape, tensor.dtype)
        return HostTensor(tensor.to_host(out)), letterboxes

    def close(self) -> None:
        self._host.clear()     # freed with the inner preprocessor's memory layer
        self.inner.close()


class Setup:
    """Per-camera detectors (own preprocessor and CUDA stream) around one shared backend."""

    def __init__(self, backend: Any, device: str, cameras: int, batched: bool,
                 path: str) -> None:
        self.config = make_config({'device': device, 'preprocess_on_gpu': path != 'cpu_pre',
                                   'gpu_id': 0})
        self.backend = backend
        labels = load_labels(self.config.resolved_label_path)
        count = 1 if batched else cameras
        self.detectors: List[Detector] = []
        for _ in range(count):
            pre = (make_preprocessor(self.config, self.backend) if path != 'cpu_pre'
                   else CpuPreprocessor(self.backend.input_hw, dtype=self.backend.input_dtype))
            if path == 'host' and pre.name == 'cuda':
                pre = HostRoundTrip(pre)
            post = Postprocessor(self.backend.input_hw, self.config.score_threshold,
                                 self.config.nms_threshold, self.config.max_detections, 'raw')
            self.detectors.append(Detector(self.backend, pre, post, labels))
        pre = self.detectors[0].preprocessor
        self.path_used = ('device' if pre.name == 'cuda'
                          and self.backend.capabilities.device_memory else
                          f'host ({pre.name} preprocessing)')

    def close(self) -> None:
        """Close the preprocessors (the backend is shared and closed by its owner)."""
        for det in self.detectors:
            det.preprocessor.close()


def run_per_camera(setup: Setup, images: List[SourceImage], seconds: float, warmup: int
                   ) -> Dict[str, Any]:
    """N threads, each calling its own detector's ``detect`` in a closed loop."""
    latencies: List[List[float]] = [[] for _ in images]
    stages: List[Dict[str, float]] = []
    lock = threading.Lock()
    start_evt, stop = threading.Event(), threading.Event()

    def camera(k: int) -> None:
        det = setup.detectors[k]
        for _ in range(warmup):
            det.detect(images[k])
        start_evt.wait()
        while not stop.is_set():
            t0 = time.perf_counter()
            result = det.detect(images[k])
            latencies[k].append((time.perf_counter() - t0) * 1e3)
            with lock:
                stages.append(result.timings)

    threads = [threading.Thread(target=camera, args=(k,), daemon=True)
               for k in range(len(images))]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    return _measure(threads, start_evt, stop, seconds, latencies, stages, [1])


def run_batched(setup: Setup, images: List[SourceImage], seconds: float, warmup: int,
                wait_ms: float) -> Dict[str, Any]:
    """N threads submitting to one BatchScheduler, each waiting for its result."""
    det = setup.detectors[0]
    for _ in range(warmup):
        det.detect_batch(images)
    latencies: List[List[float]] = [[] for _ in images]
    stages: List[Dict[str, float]] = []
    sizes: List[int] = []
    done = [threading.Event() for _ in images]
    outcome: List[Any] = [None] * len(images)

    def on_result(result: Any) -> None:
        k = int(result.camera)
        outcome[k] = result
        done[k].set()

    start_evt, stop = threading.Event(), threading.Event()
    scheduler = BatchScheduler(det, on_result, max_batch=len(images),
                               max_wait_s=wait_ms / 1e3)

    def camera(k: int) -> None:
        start_evt.wait()
        while not stop.is_set():
            done[k].clear()
            t0 = time.perf_counter()
            scheduler.submit(str(k), images[k])
            if not done[k].wait(60):
                LOG.error('camera %d: no result within 60 s', k)
                return
            latencies[k].append((time.perf_counter() - t0) * 1e3)
            result = outcome[k]
            if result.error is not None:
                LOG.error('camera %d: %s', k, result.error)
                return
            stages.append(result.result.timings)
            sizes.append(result.batch_size)

    threads = [threading.Thread(target=camera, args=(k,), daemon=True)
               for k in range(len(images))]
    for thread in threads:
        thread.start()
    try:
        return _measure(threads, start_evt, stop, seconds, latencies, stages, sizes)
    finally:
        scheduler.close()


def _measure(threads, start_evt, stop, seconds, latencies, stages, sizes) -> Dict[str, Any]:
    t0 = time.perf_counter()
    start_evt.set()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(120)
    wall = time.perf_counter() - t0
    flat = [v for per_cam in latencies for v in per_cam]
    stage_ms = {}
    for name in ('preprocess', 'infer', 'postprocess', 'total'):
        values = [s[name] for s in stages if name in s]
        stage_ms[name] = float(np.median(values)) if values else float('nan')
    return {'frames': len(flat), 'wall_s': round(wall, 3),
            'fps': len(flat) / wall if wall > 0 else 0.0,
            'p50_ms': percentile(flat, 50), 'p99_ms': percentile(flat, 99),
            'per_camera_frames': [len(v) for v in latencies],
            'stage_median_ms': stage_ms,
            'mean_batch_size': float(np.mean(sizes)) if sizes else float('nan')}


def run_one(label: str, backend: Any, device: str, count: int, mode: str, path: str,
            images: List[SourceImage], args: Any, errors: List[Dict[str, str]]
            ) -> Optional[Dict[str, Any]]:
    """Run one configuration; on failure record it in ``errors`` and return None."""
    LOG.info('running %s', label)
    setup = None
    try:
        setup = Setup(backend, device, count, mode == 'batched', path)
        if mode == 'batched':
            row = run_batched(setup, images, args.seconds, args.warmup, args.batch_wait_ms)
        else:
            row = run_per_camera(setup, images, args.seconds, args.warmup)
        row['path_used'] = setup.path_used
    except Exception as exc:  # noqa: BLE001 - report, go on with the next configuration
        LOG.exception('%s failed', label)
        errors.append({'config': label, 'error': repr(exc)})
        return None
    finally:
        if setup is not None:
            setup.close()
    LOG.info('  %.1f frames/s, p50 %.2f ms, p99 %.2f ms', row['fps'], row['p50_ms'],
             row['p99_ms'])
    return row


def targets(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Evaluate the issue's two targets for every (model, precision, path) with 1 and 4 cams."""
    out = []
    keys = {(r['model'], r['precision'], r['path'], r['cuda_graph']) for r in rows}
    for key in sorted(keys):
        def find(mode: str, cams: int) -> Optional[Dict[str, Any]]:
            for r in rows:
                if (r['model'], r['precision'], r['path'], r['cuda_graph']) == key and \
                        r['mode'] == mode and r['cameras'] == cams:
                    return r
            return None
        batched4, per4 = find('batched', 4), find('per_camera', 4)
        single = find('per_camera', 1)
        if not (batched4 and per4 and single):
            continue
        speedup = batched4['fps'] / per4['fps'] if per4['fps'] else float('nan')
        p99_ratio = batched4['p99_ms'] / single['p99_ms'] if single['p99_ms'] else float('nan')
        out.append({'model': key[0], 'precision': key[1], 'path': key[2],
                    'cuda_graph': key[3],
                    'speedup_4cam_batched_vs_per_camera': round(speedup, 3),
                    'speedup_target': TARGET_SPEEDUP,
                    'speedup_met': bool(speedup >= TARGET_SPEEDUP),
                    'p99_4cam_batched_over_single': round(p99_ratio, 3),
                    'p99_target': TARGET_P99_RATIO,
                    'p99_met': bool(p99_ratio <= TARGET_P99_RATIO)})
    return out


def markdown(report: Dict[str, Any]) -> str:
    """Render the report as a markdown page."""
    info = report['machine']
    lines = [f"# GPU end to end ({report['tag']})", '',
             f"Measured {info['date_utc']} on {info['host']}: GPU {info['gpu']}, CPU "
             f"{info['cpu']} ({info['cpu_count']} cores), Python {info['python']}, "
             + ', '.join(f'{k} {v}' for k, v in info['versions'].items()) + '.', '',
             f"Sources {SOURCE_HW[1]}x{SOURCE_HW[0]} bgr8; closed loop per camera for "
             f"{report['seconds']} s after {report['warmup']} warm-up frames; batch wait "
             f"{report['batch_wait_ms']} ms. Latency = submit -> Detections. Stage times "
             'are host wall times: on the device path `preprocess` is the asynchronous '
             'enqueue (H2D + kernel launch) and the kernel itself ends inside `infer`; one '
             'model in memory, shared by the cameras (per_camera: one call per camera, each '
             'camera its own CUDA stream).', '',
             '| model | prec | path | graph | mode | cams | frames/s | p50 ms | p99 ms | '
             'pre ms | infer ms | post ms | mean batch |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    for r in report['rows']:
        s = r['stage_median_ms']
        lines.append(f"| {r['model']} | {r['precision']} | {r['path']} | "
                     f"{'yes' if r['cuda_graph'] else 'no'} | {r['mode']} | {r['cameras']} | "
                     f"{r['fps']:.1f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                     f"{s['preprocess']:.2f} | {s['infer']:.2f} | {s['postprocess']:.2f} | "
                     f"{r['mean_batch_size']:.2f} |")
    lines += ['', '## Targets (4 cameras)', '',
              '| model | prec | path | graph | batched/per-camera fps (>= 1.5) | '
              'p99 batched / single (<= 2.0) |', '|---|---|---|---|---|---|']
    for t in report['targets']:
        lines.append(
            f"| {t['model']} | {t['precision']} | {t['path']} | "
            f"{'yes' if t['cuda_graph'] else 'no'} | "
            f"{t['speedup_4cam_batched_vs_per_camera']:.2f} "
            f"({'met' if t['speedup_met'] else 'missed'}) | "
            f"{t['p99_4cam_batched_over_single']:.2f} "
            f"({'met' if t['p99_met'] else 'missed'}) |")
    if report.get('errors'):
        lines += ['', '## Configurations that failed', '']
        lines += [f"- {e['config']}: {e['error']}" for e in report['errors']]
    return '\n'.join(lines) + '\n'


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='CPU smoke test: tiny model at 320x320, 1-2 cameras, fp32, '
                             'per-stage paths that exist here; seconds, not minutes')
    parser.add_argument('--cameras', default='1,2,4,8')
    parser.add_argument('--models', default='splus,demo', help='splus (960x960), demo')
    parser.add_argument('--precisions', default='fp32,fp16')
    parser.add_argument('--paths', default='device,host', help='device, host, cpu_pre')
    parser.add_argument('--modes', default='batched,per_camera')
    parser.add_argument('--cuda-graph', choices=('off', 'on', 'both'), default='off',
                        help='torch backend CUDA graphs (both = each configuration twice)')
    parser.add_argument('--seconds', type=float, default=4.0)
    parser.add_argument('--warmup', type=int, default=10)
    parser.add_argument('--batch-wait-ms', type=float, default=5.0)
    parser.add_argument('--tag', default='')
    parser.add_argument('--out', type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    LOG.setLevel(logging.INFO)

    import torch

    cuda = torch.cuda.is_available()
    device = 'gpu' if cuda and not args.quick else 'cpu'
    if args.quick:
        args.cameras, args.models, args.precisions = '1,4', 'tiny', 'fp32'
        args.paths = 'device,host' if cuda else 'cpu_pre'
        args.seconds, args.warmup = min(args.seconds, 1.5), 1
    elif not cuda:
        LOG.error('no CUDA GPU for torch here: run with --quick for the CPU smoke test')
        return 2
    tag = args.tag or ('quick_cpu' if args.quick and not cuda else
                       torch.cuda.get_device_name(0).split()[-1].lower() if cuda else 'cpu')
    cameras = [int(c) for c in args.cameras.split(',')]
    rng = np.random.default_rng(0)
    images = [SourceImage.from_array(rng.integers(0, 256, SOURCE_HW + (3,), dtype=np.uint8))
              for _ in range(max(cameras))]
    rows: List[Dict[str, Any]] = []
    errors: List[Dict[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        models = {}
        for name in args.models.split(','):
            if name == 'splus':
                models[name] = (export_splus(Path(tmp) / 'splus.onnx', (960, 960)), '960x960')
            elif name == 'demo':
                models[name] = (DEFAULT_MODEL_PATH, '960x640')
            elif name == 'tiny':
                models[name] = (export_tiny(Path(tmp) / 'tiny.onnx', (320, 320)), '320x320')
            else:
                parser.error(f'unknown model {name}')
        graphs = {'off': [False], 'on': [True], 'both': [False, True]}[args.cuda_graph]
        plan = [(name, precision, graph) for name in models
                for precision in args.precisions.split(',') for graph in graphs]
        for name, precision, graph in plan:
            model, size = models[name]
            try:
                backend = make_backend(model, precision, device, max(cameras), graph)
            except Exception as exc:  # noqa: BLE001 - report, go on
                LOG.exception('backend %s %s graph=%s failed', name, precision, graph)
                errors.append({'config': f'{name} {precision} graph={graph}',
                               'error': repr(exc)})
                continue
            try:
                for path in args.paths.split(','):
                    for mode in args.modes.split(','):
                        for count in cameras:
                            label = (f'{name} {size} {precision} {path} graph={graph} '
                                     f'{mode} x{count}')
                            row = run_one(label, backend, device, count, mode, path,
                                          images[:count], args, errors)
                            if row is not None:
                                row.update({'model': f'{name} {size}',
                                            'precision': backend.precision, 'path': path,
                                            'cuda_graph': graph, 'mode': mode,
                                            'cameras': count})
                                rows.append(row)
            finally:
                backend.close()
    report = {'tag': tag, 'quick': args.quick, 'device': device, 'seconds': args.seconds,
              'warmup': args.warmup, 'batch_wait_ms': args.batch_wait_ms,
              'machine': machine_info(('numpy', 'cv2', 'onnxruntime', 'onnx', 'torch',
                                       'onnx2torch')),
              'cuda_device': torch.cuda.get_device_name(0) if cuda else 'none',
              'rows': rows, 'targets': targets(rows), 'errors': errors}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f'gpu_end_to_end_{tag}'
    stem.with_suffix('.json').write_text(json.dumps(report, indent=2) + '\n')
    text = markdown(report)
    stem.with_suffix('.md').write_text(text)
    sys.stdout.write(text)
    return 1 if errors else 0


if __name__ == '__main__':
    raise SystemExit(main())
