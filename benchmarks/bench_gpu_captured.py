"""Captured GPU inference (issue 19): the torch backend beside a hand-captured anchor.

Model: full-width YOLOX-S+-Opt at 960x960, 8 classes, seeded random weights (seed 0), exported
to ONNX at run time; the anchor is the package's own PyTorch module (``model.yolox``) built
with the same seed (the same weights), BatchNorm folded into the convolutions by hand
(``torch.nn.utils.fusion``), FP16, channels_last, captured in a CUDA graph (and compiled) by
hand. Rows, each with whether capture / compilation succeeded:

- ``infer``: input already in the static device buffer; GPU time of one graph replay (CUDA
  events, median of ``--reps``), and for the backend also the wall time of one whole call
  (replay + decode/top-k + detection-sized device-to-host copy + stream sync). Variants:
  eager / CUDA graph / ``torch.compile`` + CUDA graph, NCHW vs channels_last, fp16 / fp32;
  batch 1, 2, 4, 8.
- ``e2e``: 1920x1280 bgr8 frames in host memory -> Detections (``pipeline.Detector``: fused
  CUDA kernel writing the captured work's static input, graph replay, GPU decode, NMS on the
  host): 1 camera closed loop (p50 / p99, host CPU time per frame), 4 cameras batched vs one
  call per camera, 8 cameras batched (``BatchScheduler``, the closed loops of
  ``bench_gpu_end_to_end``: every camera waits for its result, so no batch is ready while one
  runs), and 8 cameras as one stream of batches (``run_pipelined``): ``sequential`` (pack,
  infer, wait, in one thread) vs ``pipelined`` (a producer thread stages batch n + 1 into the
  other pinned slot, ``Detector.stage``, while batch n infers: host frames overlap). Every
  e2e row has wall frames/s and p50 / p99 ms beside the host CPU ms per frame (process CPU
  time over frames, all threads).
- ``profile``: a ``torch.profiler`` summary of 1-camera frames (GPU kernel time vs wall, top
  kernels, host time).
- ``warm_start``: seconds to construct + prepare the compiled backend with a warm cache.

Targets (issue 19) are evaluated in the md: met, or missed by how much.

    python benchmarks/bench_gpu_captured.py --tag h100 --compile default   # on the GPU
"""

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine_info import machine_info  # noqa: E402

LOG = logging.getLogger('bench_gpu_captured')
RESULTS = Path(__file__).resolve().parent / 'results'
SOURCE_HW = (1280, 1920)
TARGETS = {'infer_b1_ms': 1.3, 'infer_b8_per_image_ms': 0.5, 'e2e_1cam_p50_ms': 2.5,
           'e2e_1cam_p99_ms': 4.0, 'e2e_8cam_fps': 1500.0, 'e2e_8cam_p99_ms': 15.0,
           'e2e_4cam_speedup': 2.0, 'backend_over_anchor': 1.15}


def gpu_ms(fn: Callable[[], Any], stream: Any, reps: int, warmup: int = 5) -> float:
    """Median GPU time (ms) of ``fn`` enqueued on ``stream`` (CUDA events around each)."""
    import torch

    for _ in range(warmup):
        with torch.cuda.stream(stream):
            fn()
    stream.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.cuda.stream(stream):
            start.record(stream)
            fn()
            end.record(stream)
        end.synchronize()
        times.append(start.elapsed_time(end))
    return float(np.median(times))


def wall_ms(fn: Callable[[], Any], reps: int, warmup: int = 5) -> Dict[str, float]:
    """Median / p99 wall time (ms) of a synchronous ``fn``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return {'p50': float(np.median(times)), 'p99': float(np.percentile(times, 99))}


def anchor_module(variant: str, device: str, dtype: Any, channels_last: bool) -> Any:
    """Return the package's PyTorch model with the export's weights, BN folded by hand."""
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    from tensorrt_yolox_py.model.yolox import BaseConv, build_model

    torch.manual_seed(0)
    model = build_model(variant, 8).eval()
    for module in model.modules():
        if isinstance(module, BaseConv):
            module.conv = fuse_conv_bn_eval(module.conv, module.bn)
            module.bn = torch.nn.Identity()
    model = model.to(device, dtype=dtype)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def capture(fn: Callable[[Any], Any], static: Any) -> Any:
    """Capture ``fn(static)`` in a CUDA graph by hand (3 warm-ups on a side stream)."""
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.inference_mode():
        for _ in range(3):
            fn(static)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(graph):
        fn(static)
    torch.cuda.synchronize()
    return graph


def anchor_rows(variant: str, input_hw, batches: Sequence[int], modes: Sequence[str],
                reps: int, rows: List[Dict[str, Any]], save: Callable[[], None]) -> None:
    """Time the anchor: eager, CUDA graph, compile + graph, per batch size."""
    import torch

    model = anchor_module(variant, 'cuda', torch.float16, True)
    stream = torch.cuda.Stream()
    for mode in modes:
        fn = model
        compile_s = 0.0
        for batch in batches:
            row = {'kind': 'infer', 'impl': 'anchor', 'mode': mode, 'batch': batch,
                   'precision': 'fp16', 'layout': 'nhwc', 'captured': False, 'compiled': False}
            try:
                x = torch.full((batch, 3) + tuple(input_hw), 114.0, dtype=torch.float16,
                               device='cuda').contiguous(memory_format=torch.channels_last)
                x.uniform_(0, 255)
                if mode == 'compile':
                    if fn is model:
                        fn = torch.compile(model, mode='default', dynamic=False)
                    t0 = time.perf_counter()
                    with torch.inference_mode():
                        fn(x)
                    torch.cuda.synchronize()
                    compile_s = time.perf_counter() - t0
                    row['compiled'] = True
                    row['compile_s'] = round(compile_s, 1)
                if mode == 'eager':
                    with torch.inference_mode():
                        row['gpu_ms'] = gpu_ms(lambda: model(x), stream, reps)
                else:
                    graph = capture(fn, x)
                    row['captured'] = True
                    row['gpu_ms'] = gpu_ms(graph.replay, stream, reps)
                row['per_image_ms'] = row['gpu_ms'] / batch
            except Exception as exc:  # noqa: BLE001 - record, go on
                LOG.exception('anchor %s batch %d failed', mode, batch)
                row['error'] = f'{type(exc).__name__}: {exc}'[:300]
            LOG.info('%s', row)
            rows.append(row)
            save()


def backend_rows(model_path: Path, batches: Sequence[int], variants: Sequence[Dict[str, Any]],
                 reps: int, rows: List[Dict[str, Any]], cache_dir: Path,
                 save: Callable[[], None]) -> None:
    """Time the torch backend's captured unit per variant and batch size."""
    import torch
    from tensorrt_yolox_py.backends.torch_backend import TorchBackend

    for var in variants:
        t0 = time.perf_counter()
        try:
            backend = TorchBackend(model_path, device='cuda:0', precision=var['precision'],
                                   max_batch=max(batches), cuda_graph=var['graph'],
                                   channels_last=var['channels_last'],
                                   compile_mode=var['compile'], cache_dir=cache_dir,
                                   decode_select=var.get('select', 'compact'))
            backend.configure_decode(0.3, 'raw')
        except Exception as exc:  # noqa: BLE001
            LOG.exception('backend %s failed', var)
            rows.append(dict(var, kind='infer', impl='backend',
                             error=f'{type(exc).__name__}: {exc}'[:300]))
            continue
        init_s = time.perf_counter() - t0
        stream = torch.cuda.Stream()
        for batch in batches:
            row = {'kind': 'infer', 'impl': 'backend', 'mode': var['name'], 'batch': batch,
                   'precision': backend.precision, 'layout': backend.input_layout,
                   'converter': backend.converter, 'compiled': var['compile'] != 'off',
                   'select': backend.decode_select, 'init_s': round(init_s, 1)}
            try:
                t0 = time.perf_counter()
                backend.prepare([batch])
                row['prepare_s'] = round(time.perf_counter() - t0, 1)
                row['captured'] = backend.captured(batch)
                row['fallback_reason'] = backend.graph_fallback_reason
                runner = backend._runner
                slot = runner.slot(batch)
                slot.input.uniform_(0, 255)
                if slot.graph is not None:
                    row['gpu_ms'] = gpu_ms(slot.graph.replay, stream, reps)
                else:
                    with torch.inference_mode():
                        row['gpu_ms'] = gpu_ms(lambda: runner._body(slot), stream, reps)
                row['per_image_ms'] = row['gpu_ms'] / batch
                call = wall_ms(lambda: runner.run(batch, stream, decoded=True), reps)
                row['call_p50_ms'], row['call_p99_ms'] = call['p50'], call['p99']
                row['d2h_bytes'] = backend._decode.candidate_bytes(batch)
            except Exception as exc:  # noqa: BLE001
                LOG.exception('backend %s batch %d failed', var['name'], batch)
                row['error'] = f'{type(exc).__name__}: {exc}'[:300]
            LOG.info('%s', row)
            rows.append(row)
            save()
        backend.close()
        torch.cuda.empty_cache()


def e2e_rows(model_path: Path, var: Dict[str, Any], seconds: float, rows: List[Dict[str, Any]],
             cache_dir: Path, profile: Dict[str, Any], save: Callable[[], None]) -> None:
    """Host frames -> Detections through the Detector (1, 4 batched / per camera, 8 batched)."""
    import torch
    from benchmarks.bench_gpu_end_to_end import run_batched, run_per_camera, Setup
    from tensorrt_yolox_py.backends.torch_backend import TorchBackend
    from tensorrt_yolox_py.image import SourceImage

    backend = TorchBackend(model_path, device='cuda:0', precision=var['precision'], max_batch=8,
                           cuda_graph=var['graph'], channels_last=var['channels_last'],
                           compile_mode=var['compile'], cache_dir=cache_dir,
                           decode_select=var.get('select', 'compact'))
    rng = np.random.default_rng(0)
    images = [SourceImage.from_array(rng.integers(0, 256, SOURCE_HW + (3,), dtype=np.uint8))
              for _ in range(8)]
    base = {'kind': 'e2e', 'mode': var['name'], 'precision': backend.precision,
            'layout': backend.input_layout}
    try:
        setup = Setup(backend, 'gpu', 1, True, 'device')
        det = setup.detectors[0]
        for _ in range(20):
            det.detect(images[0])
        cpu0, wall0, lat = time.process_time(), time.perf_counter(), []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            det.detect(images[0])
            lat.append((time.perf_counter() - t0) * 1e3)
        wall = time.perf_counter() - wall0
        rows.append(dict(base, cams=1, batched='single', frames=len(lat),
                         fps=len(lat) / wall, p50_ms=float(np.median(lat)),
                         p99_ms=float(np.percentile(lat, 99)),
                         host_cpu_ms_per_frame=(time.process_time() - cpu0) / len(lat) * 1e3,
                         captured=all(backend.captured(b) for b in (1,)),
                         fallback_reason=backend.graph_fallback_reason))
        LOG.info('%s', rows[-1])
        save()
        profile.update(profile_frames(det, images[0]))
        save()
        setup.close()
        for cams, mode in ((4, 'batched'), (4, 'per_camera'), (8, 'batched')):
            setup = Setup(backend, 'gpu', cams, mode == 'batched', 'device')
            cpu0 = time.process_time()
            if mode == 'batched':
                row = run_batched(setup, images[:cams], seconds, 10, 2.0)
            else:
                row = run_per_camera(setup, images[:cams], seconds, 10)
            row['host_cpu_ms_per_frame'] = ((time.process_time() - cpu0) /
                                            max(1, row['frames']) * 1e3)
            setup.close()
            rows.append(dict(base, cams=cams, batched=mode, **row,
                             captured=all(backend.captured(b) for b in range(1, cams + 1)
                                          if b in backend._runner._slots)))
            LOG.info('%s', rows[-1])
            save()
        for mode in ('sequential', 'pipelined'):   # host frames overlap, A/B in one run
            setup = Setup(backend, 'gpu', 8, True, 'device')
            try:
                row = run_pipelined(setup.detectors[0], images, seconds, mode == 'pipelined')
            finally:
                setup.close()
            rows.append(dict(base, cams=8, batched=mode, **row, captured=backend.captured(8)))
            LOG.info('%s', rows[-1])
            save()
    finally:
        backend.close()
        torch.cuda.empty_cache()


def run_pipelined(det: Any, images: List[Any], seconds: float, overlap: bool,
                  warmup: int = 10) -> Dict[str, Any]:
    """Batches of ``images`` back to back: one thread, or a producer staging batch n + 1.

    p50 / p99: from the start of a batch's staging to its results. Host CPU: process time
    (all threads) per frame.
    """
    import queue
    import threading

    for _ in range(warmup):
        det.detect_batch(images)
    lat: List[float] = []
    stop = threading.Event()
    handoff: 'queue.Queue[Any]' = queue.Queue(maxsize=1)

    def producer() -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            handoff.put((t0, det.stage(images)))
        handoff.put(None)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    deadline = wall0 + seconds
    if overlap:
        thread = threading.Thread(target=producer, daemon=True)
        thread.start()
        while True:
            item = handoff.get()
            if item is None:
                break
            t0, staged = item
            det.detect_batch(images, staged=staged)
            lat.append((time.perf_counter() - t0) * 1e3)
            if time.perf_counter() >= deadline:
                stop.set()
        thread.join(60)
    else:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            det.detect_batch(images)
            lat.append((time.perf_counter() - t0) * 1e3)
    wall = time.perf_counter() - wall0
    frames = len(lat) * len(images)
    return {'frames': frames, 'fps': frames / wall, 'p50_ms': float(np.median(lat)),
            'p99_ms': float(np.percentile(lat, 99)),
            'host_cpu_ms_per_frame': (time.process_time() - cpu0) / frames * 1e3,
            'mean_batch_size': float(len(images))}


def profile_frames(det: Any, image: Any, frames: int = 50) -> Dict[str, Any]:
    """torch.profiler over ``frames`` single-camera frames: where the time goes."""
    from torch.profiler import profile, ProfilerActivity

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        t0 = time.perf_counter()
        for _ in range(frames):
            det.detect(image)
        wall = (time.perf_counter() - t0) * 1e3 / frames
    events = prof.key_averages()
    kernels = []
    gpu_total = 0.0
    for evt in events:
        dev = getattr(evt, 'device_time_total', None)
        if dev is None:
            dev = getattr(evt, 'cuda_time_total', 0.0)
        if dev and evt.device_type.name == 'CUDA':
            gpu_total += dev
            kernels.append((dev, evt.key, evt.count))
    kernels.sort(reverse=True)
    table = prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=12)
    return {'frames': frames, 'wall_ms_per_frame': wall,
            'gpu_kernel_ms_per_frame': gpu_total / 1e3 / frames,
            'top_kernels': [{'name': k[:90], 'ms_per_frame': t / 1e3 / frames, 'calls': c}
                            for t, k, c in kernels[:10]],
            'cpu_table': table}


def warm_start(model_path: Path, var: Dict[str, Any], cache_dir: Path) -> Dict[str, Any]:
    """Time a new process: construct, configure, prepare batches 1 and 8 (warm cache)."""
    code = (
        'import time,sys; t=time.perf_counter(); '
        'from tensorrt_yolox_py.backends.torch_backend import TorchBackend as T; '
        f"b=T(r'{model_path}', device='cuda:0', precision='{var['precision']}', max_batch=8, "
        f"channels_last={var['channels_last']}, compile_mode='{var['compile']}', "
        f"cache_dir=r'{cache_dir}'); b.configure_decode(0.3, 'raw'); "
        'ok=b.prepare([1, 8]); print("WARM", time.perf_counter()-t, ok)')
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=300, cwd=str(Path(__file__).resolve().parents[1]))
    line = [x for x in proc.stdout.splitlines() if x.startswith('WARM')]
    return {'mode': var['name'], 'seconds_in_process': float(line[0].split()[1]) if line
            else None, 'seconds_total': time.perf_counter() - t0,
            'ok': proc.returncode == 0, 'stderr_tail': proc.stderr[-400:]}


def evaluate(report: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Return the issue's targets: value, limit, met or missed by how much."""
    rows = report['rows']
    out = []

    def best(kind: str, **match: Any) -> Optional[Dict[str, Any]]:
        cands = [r for r in rows if r.get('kind') == kind and 'error' not in r
                 and all(r.get(k) == v for k, v in match.items())]
        key = 'gpu_ms' if kind == 'infer' else 'p50_ms'
        return min(cands, key=lambda r: r.get(key, float('inf'))) if cands else None

    def add(name: str, value: Optional[float], target: float, higher: bool = False) -> None:
        if value is None:
            out.append({'target': name, 'value': None, 'limit': target, 'status': 'not run'})
            return
        met = value >= target if higher else value <= target
        ratio = (target / value if higher else value / target) if value else float('inf')
        out.append({'target': name, 'value': round(value, 3), 'limit': target,
                    'status': 'met' if met else f'missed by {ratio:.2f}x'})

    b1 = best('infer', impl='backend', batch=1, precision='fp16')
    b8 = best('infer', impl='backend', batch=8, precision='fp16')
    a1 = best('infer', impl='anchor', batch=1)
    a8 = best('infer', impl='anchor', batch=8)
    add('inference batch 1 (ms, GPU)', b1 and b1['gpu_ms'], TARGETS['infer_b1_ms'])
    add('inference batch 8 per image (ms, GPU)', b8 and b8['per_image_ms'],
        TARGETS['infer_b8_per_image_ms'])
    if b1 and a1:
        add('backend / anchor batch 1', b1['gpu_ms'] / a1['gpu_ms'],
            TARGETS['backend_over_anchor'])
    if b8 and a8:
        add('backend / anchor batch 8', b8['gpu_ms'] / a8['gpu_ms'],
            TARGETS['backend_over_anchor'])
    one = [r for r in rows if r.get('kind') == 'e2e' and r.get('cams') == 1]
    if one:
        r = min(one, key=lambda r: r['p50_ms'])
        add('1 camera p50 (ms)', r['p50_ms'], TARGETS['e2e_1cam_p50_ms'])
        add('1 camera p99 (ms)', r['p99_ms'], TARGETS['e2e_1cam_p99_ms'])
    eight = [r for r in rows if r.get('kind') == 'e2e' and r.get('cams') == 8]
    if eight:
        r = max(eight, key=lambda r: r['fps'])
        add('8 cameras batched frames/s', r['fps'], TARGETS['e2e_8cam_fps'], higher=True)
        add('8 cameras batched p99 (ms)', r['p99_ms'], TARGETS['e2e_8cam_p99_ms'])
    for mode in sorted({r['mode'] for r in rows if r.get('kind') == 'e2e'}):
        fb = [r for r in rows if r.get('kind') == 'e2e' and r.get('cams') == 4
              and r['mode'] == mode]
        bat = [r for r in fb if r['batched'] == 'batched']
        per = [r for r in fb if r['batched'] == 'per_camera']
        if bat and per:
            add(f'4 cameras batched / per camera frames/s ({mode})',
                bat[0]['fps'] / per[0]['fps'], TARGETS['e2e_4cam_speedup'], higher=True)
    return out


def markdown(report: Dict[str, Any]) -> str:
    """Return the results as Markdown."""
    m = report['machine']
    lines = [f"# Captured GPU inference ({report['tag']})", '',
             f"Measured {m['date_utc']} on {m['host']}: GPU {m['gpu']}, CPU {m['cpu']} "
             f"({m['cpu_count']} cores), Python {m['python']}, "
             + ', '.join(f'{k} {v}' for k, v in m['versions'].items()) + '.', '',
             'Model: YOLOX-S+-Opt 960x960, 8 classes, seeded random weights (seed 0). Backend: '
             'static ONNX converter -> captured unit (network + GPU decode; candidates selected '
             'by prefix-sum compaction, or top-k in the `_topk` modes). Anchor: the '
             "package's PyTorch module with the same weights, BN folded, fp16 channels_last, "
             'captured / compiled by hand. GPU ms = median CUDA-event time of one replay; call '
             'ms = wall time of one backend call (replay + decode + D2H of the candidates + '
             'sync).', '', '## Inference alone', '',
             '| impl | mode | prec | layout | batch | captured | compiled | GPU ms | '
             'ms/image | call p50 ms | call p99 ms | compile/prepare s | note |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|---|']

    def f(v: Any, digits: int = 3) -> str:
        return f'{v:.{digits}f}' if isinstance(v, float) else ('' if v is None else str(v))

    for r in report['rows']:
        if r.get('kind') != 'infer':
            continue
        lines.append(
            f"| {r.get('impl')} | {r.get('mode', r.get('name'))} | {r.get('precision')} | "
            f"{r.get('layout', '')} | {r.get('batch', '')} | {r.get('captured', '')} | "
            f"{r.get('compiled', '')} | {f(r.get('gpu_ms'))} | {f(r.get('per_image_ms'))} | "
            f"{f(r.get('call_p50_ms'))} | {f(r.get('call_p99_ms'))} | "
            f"{f(r.get('compile_s', r.get('prepare_s')), 1)} | "
            f"{(r.get('error') or r.get('fallback_reason') or '')[:80]} |")
    lines += ['', '## End to end (1920x1280 bgr8 host frames -> Detections)', '',
              '| mode | cams | batching | frames/s | p50 ms | p99 ms | host CPU ms/frame | '
              'mean batch | captured |', '|---|---|---|---|---|---|---|---|---|']
    for r in report['rows']:
        if r.get('kind') == 'e2e':
            lines.append(f"| {r['mode']} | {r['cams']} | {r['batched']} | {r['fps']:.1f} | "
                         f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                         f"{r.get('host_cpu_ms_per_frame', float('nan')):.2f} | "
                         f"{f(r.get('mean_batch_size'), 2)} | {r.get('captured')} |")
    lines += ['', '## Targets (issue 19)', '', '| target | value | limit | status |',
              '|---|---|---|---|']
    for t in report['targets']:
        lines.append(f"| {t['target']} | {f(t['value'])} | {t['limit']} | {t['status']} |")
    prof = report.get('profile') or {}
    if prof:
        lines += ['', '## Where the time goes (torch.profiler, 1 camera)', '',
                  f"{prof['frames']} frames: wall {prof['wall_ms_per_frame']:.3f} ms/frame, "
                  f"GPU kernels {prof['gpu_kernel_ms_per_frame']:.3f} ms/frame; the rest is "
                  'host time (Python, launches, H2D of the frame, NMS) and gaps.', '',
                  '| kernel | ms/frame | calls |', '|---|---|---|']
        for k in prof['top_kernels']:
            lines.append(f"| `{k['name']}` | {k['ms_per_frame']:.4f} | {k['calls']} |")
        lines += ['', '```', prof.get('cpu_table', ''), '```']
    if report.get('warm_start'):
        lines += ['', '## Warm start (new process, cache warm)', '']
        for w in report['warm_start']:
            lines.append(f"- {w['mode']}: {w['seconds_in_process']} s in the process, "
                         f"{w['seconds_total']:.1f} s with interpreter start, ok={w['ok']}")
    return '\n'.join(lines) + '\n'


VARIANTS = {
    'graph_nhwc_fp16': dict(name='graph_nhwc_fp16', precision='fp16', graph=True,
                            channels_last=True, compile='off'),
    'graph_nchw_fp16': dict(name='graph_nchw_fp16', precision='fp16', graph=True,
                            channels_last=False, compile='off'),
    'eager_nhwc_fp16': dict(name='eager_nhwc_fp16', precision='fp16', graph=False,
                            channels_last=True, compile='off'),
    'graph_fp32': dict(name='graph_fp32', precision='fp32', graph=True, channels_last=False,
                       compile='off'),
    'compile_nhwc_fp16': dict(name='compile_nhwc_fp16', precision='fp16', graph=True,
                              channels_last=True, compile='default'),
}
# the same with the decode's top-k selection instead of the prefix-sum compaction (A/B)
VARIANTS.update({f'{name}_topk': dict(var, name=f'{name}_topk', select='topk')
                 for name, var in list(VARIANTS.items())})


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark; write JSON + md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--tag', default='h100')
    parser.add_argument('--out', default=str(RESULTS))
    parser.add_argument('--batches', default='1,2,4,8')
    parser.add_argument('--variants', default='graph_nhwc_fp16,graph_nchw_fp16,'
                        'eager_nhwc_fp16,graph_fp32')
    parser.add_argument('--anchor-modes', default='eager,graph')
    parser.add_argument('--e2e', default='graph_nhwc_fp16', help='variants for e2e rows')
    parser.add_argument('--seconds', type=float, default=3.0)
    parser.add_argument('--reps', type=int, default=50)
    parser.add_argument('--cache-dir', default='')
    parser.add_argument('--warm-start', default='', help='variant to time a warm start of')
    parser.add_argument('--model', default='', help='an existing ONNX instead of exporting')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s: %(message)s')
    import torch

    batches = [int(b) for b in args.batches.split(',') if b]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: Dict[str, Any] = {'tag': args.tag, 'args': vars(args),
                              'machine': machine_info(('numpy', 'torch', 'onnx', 'triton')),
                              'rows': [], 'targets': [], 'profile': {}, 'warm_start': []}

    def save() -> None:
        report['targets'] = evaluate(report)
        (out / f'gpu_captured_{args.tag}.json').write_text(json.dumps(report, indent=1))
        (out / f'gpu_captured_{args.tag}.md').write_text(markdown(report))

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache_dir or tmp) / 'cache'
        model = Path(args.model) if args.model else Path(tmp) / 'splus.onnx'
        if not args.model:
            from tensorrt_yolox_py.devkit.export import export_variant
            try:
                import onnxsim  # noqa: F401
                simplify = True
            except ImportError:
                simplify = False
            export_variant('yolox-s+-opt', str(model), (960, 960), num_classes=8,
                           simplify=simplify, seed=0)
        if not torch.cuda.is_available():
            LOG.error('no CUDA GPU: nothing to measure')
            return 1
        anchor_rows('yolox-s+-opt', (960, 960), batches,
                    [m for m in args.anchor_modes.split(',') if m], args.reps, report['rows'],
                    save)
        backend_rows(model, batches, [VARIANTS[v] for v in args.variants.split(',') if v],
                     args.reps, report['rows'], cache, save)
        for name in [v for v in args.e2e.split(',') if v]:
            e2e_rows(model, VARIANTS[name], args.seconds, report['rows'], cache,
                     report['profile'], save)
            save()
        if args.warm_start:
            report['warm_start'].append(warm_start(model, VARIANTS[args.warm_start], cache))
            save()
    print(markdown(report))
    return 0


if __name__ == '__main__':
    sys.exit(main())
