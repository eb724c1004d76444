"""Host image -> preprocessed GPU tensor: what a camera frame costs, and each input encoding.

    python benchmarks/bench_host_path.py [--iters 200] [--out benchmarks/results]

Two parts, one run, one GPU (a CUDA GPU is required; the JSON names it):

1. Host path (issue 12, item 3): a 1920x1280 bgr8 frame in ordinary (pageable) host memory,
   as a ROS message gives it, to the 960x960 float16 tensor on the GPU. Reference: the pinned
   H2D copy of the frame plus the fused kernel, timed from the host (``pinned_h2d_kernel``).
   Options, each ``enqueue(host image) + synchronize`` timed from the host: ``direct`` (the
   default: one H2D straight from the frame, which the driver stages itself when the frame is
   pageable, an async DMA when it is page-locked: ``direct_pinned_frame``), ``single`` (one
   memcpy into pinned staging, one H2D), ``pipelined`` (1 MiB chunks, each sent while the next
   is copied), ``parallel`` with 2 / 4 / 8 copy threads (chunks copied concurrently, each sent
   as soon as it is there), ``pageable_h2d`` (no staging: cuMemcpyHtoD straight from the
   pageable frame, which the driver stages itself, then the kernel), ``register_per_frame``
   (cuMemHostRegister of the frame's own memory, H2D, kernel, unregister: no host copy),
   and ``direct_read`` (the kernel reads the pageable frame itself, where the device reports
   pageable memory access, i.e. HMM). The target is at most 1.3x the reference.
   ``runtime_run``: the runtime ``CudaPreprocessor.run([source])`` + synchronize (the
   pipeline's call; 'direct' staging); the other rows use the lab
   (``benchmarks/cuda_lab.py``).
2. Encodings (issue 13): kernel-only time of the fused preprocessing of a 1920x1280 frame in
   each input encoding to 960x960 float32 and float16: ``amortized`` = per launch of a CUDA
   graph of 20 back-to-back launches (as the README's preprocessing table), ``single`` = one
   launch between CUDA events (launch overhead included); the same frame each time (L2 warm).

Writes ``host_path_<card>.json`` and ``.md`` under ``--out`` and prints the tables.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_preprocess_gpu import stats, wall_us  # noqa: E402
from benchmarks.machine_info import machine_info  # noqa: E402
from tensorrt_yolox_py.cuda.check import cuda_call  # noqa: E402
from benchmarks.cuda_lab import LabPreprocessor  # noqa: E402
from tensorrt_yolox_py.cuda.preprocess import CudaPreprocessor  # noqa: E402
from tensorrt_yolox_py.image import ENCODINGS, SourceImage  # noqa: E402
from tensorrt_yolox_py.stages.preprocess import compute_letterbox  # noqa: E402


def host_path(iters: int) -> Dict[str, Any]:
    """Part 1 (see the module docstring)."""
    from cuda.bindings import driver as drv

    h, w, in_hw = 1280, 1920, (960, 960)
    frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    nbytes = frame.nbytes
    lb = compute_letterbox(h, w, *in_hw)
    out: Dict[str, Any] = {'frame': f'{w}x{h} bgr8', 'bytes': nbytes, 'input': '960x960 fp16'}
    with LabPreprocessor(in_hw, np.float16) as pre:
        stream = pre.stream_handle
        pinned = int(cuda_call(drv.cuMemHostAlloc(nbytes, 0)))
        dev = int(cuda_call(drv.cuMemAlloc(nbytes + 64)))
        try:
            np.ctypeslib.as_array((np.ctypeslib.ctypes.c_uint8 * nbytes).from_address(
                pinned))[:] = frame.reshape(-1)

            def pinned_h2d_kernel() -> None:
                cuda_call(drv.cuMemcpyHtoDAsync(dev, pinned, nbytes, stream))
                pre.launch_fused(dev, 3 * w, lb, False, pre.device_ptr)
                pre.synchronize()

            def pageable_h2d() -> None:
                cuda_call(drv.cuMemcpyHtoDAsync(dev, frame.ctypes.data, nbytes, stream))
                pre.launch_fused(dev, 3 * w, lb, False, pre.device_ptr)
                pre.synchronize()

            def memcpy_only() -> None:
                np.copyto(staging, frame.reshape(-1))

            def register_per_frame() -> None:
                ptr = frame.ctypes.data
                cuda_call(drv.cuMemHostRegister(ptr, nbytes, 0))
                try:
                    cuda_call(drv.cuMemcpyHtoDAsync(dev, ptr, nbytes, stream))
                    pre.launch_fused(dev, 3 * w, lb, False, pre.device_ptr)
                    pre.synchronize()
                finally:
                    cuda_call(drv.cuMemHostUnregister(ptr))

            def direct_read() -> None:
                pre.launch_fused(frame.ctypes.data, 3 * w, lb, False, pre.device_ptr)
                pre.synchronize()

            staging = np.empty(nbytes, np.uint8)
            pinned_frame = np.ctypeslib.as_array(
                (np.ctypeslib.ctypes.c_uint8 * nbytes).from_address(pinned)).reshape(h, w, 3)
            out['direct_pinned_frame'] = wall_us(
                lambda: (pre.enqueue(SourceImage.from_array(pinned_frame)), pre.synchronize()),
                iters)
            out['pinned_h2d_kernel'] = wall_us(pinned_h2d_kernel, iters)
            out['pageable_h2d'] = wall_us(pageable_h2d, iters)
            out['host_memcpy_only_pageable'] = wall_us(memcpy_only, iters)
            out['register_per_frame'] = wall_us(register_per_frame, iters)
            attr = drv.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS
            pageable = int(cuda_call(drv.cuDeviceGetAttribute(attr, pre.gpu_id)))
            out['pageable_memory_access'] = pageable
            if pageable:
                out['direct_read'] = wall_us(direct_read, iters)
        finally:
            cuda_call(drv.cuMemFreeHost(pinned))
            cuda_call(drv.cuMemFree(dev))
    source = SourceImage.from_array(frame)
    for mode, threads in (('direct', 1), ('single', 1), ('pipelined', 1), ('parallel', 2),
                          ('parallel', 4), ('parallel', 8)):
        name = mode if mode != 'parallel' else f'parallel_{threads}'
        with LabPreprocessor(in_hw, np.float16, host_copy=mode, copy_threads=threads) as pre:
            out[name] = wall_us(lambda: (pre.enqueue(source), pre.synchronize()), iters)
    with CudaPreprocessor(in_hw, np.float16) as pre:   # the runtime class's one interface
        out['runtime_run'] = wall_us(lambda: (pre.run([source]), pre.synchronize()), iters)
    ref = out['pinned_h2d_kernel']['median']
    out['ratio_to_pinned_h2d_kernel'] = {
        k: round(v['median'] / ref, 3) for k, v in out.items()
        if isinstance(v, dict) and 'median' in v}
    return out


def encodings(iters: int) -> Dict[str, Any]:
    """Part 2 (see the module docstring)."""
    from cuda.bindings import driver as drv

    from benchmarks.bench_preprocess_gpu import Gpu

    h, w = 1280, 1920
    out: Dict[str, Any] = {'frame': f'{w}x{h}', 'input': '960x960'}
    for dtype in (np.float32, np.float16):
        with LabPreprocessor((960, 960), dtype) as pre:
            ev0 = cuda_call(drv.cuEventCreate(0))
            ev1 = cuda_call(drv.cuEventCreate(0))
            try:
                for name, enc in ENCODINGS.items():
                    pixels = np.random.default_rng(1).integers(
                        0, 256, (h, w, enc.channels), dtype=np.uint8)
                    pre.enqueue(SourceImage.from_array(pixels, name))   # stages the frame
                    pre.synchronize()
                    slot = pre._slots[0]
                    lb = compute_letterbox(h, w, 960, 960)

                    def launch() -> None:
                        pre.launch_encoding(slot.dev_ptr, w * enc.channels, lb, enc,
                                            pre.device_ptr)

                    samples = []
                    for i in range(iters + 10):
                        cuda_call(drv.cuEventRecord(ev0, pre.stream_handle))
                        launch()
                        cuda_call(drv.cuEventRecord(ev1, pre.stream_handle))
                        cuda_call(drv.cuEventSynchronize(ev1))
                        if i >= 10:
                            samples.append(float(cuda_call(drv.cuEventElapsedTime(ev0, ev1)))
                                           * 1e3)
                    key = f'{name}_{np.dtype(dtype).name}'
                    out[f'{key}_single_us'] = stats(samples)
                    gpu = Gpu(pre)
                    try:
                        out[f'{key}_amortized_us'] = gpu.amortized(lambda i: launch(), 20, iters)
                    finally:
                        gpu.close()
            finally:
                cuda_call(drv.cuEventDestroy(ev0))
                cuda_call(drv.cuEventDestroy(ev1))
    return out


def markdown(res: Dict[str, Any]) -> str:
    """Render the two tables."""
    host = res['host_path']
    lines = [f"# Host image to GPU tensor, and input encodings ({res['machine']['gpu']})", '',
             f"{res['machine']['date_utc']}, {res['machine']['cpu']} "
             f"({res['machine']['cpu_count']} cores), Python {res['machine']['python']}.", '',
             f"## Host path: {host['frame']} -> {host['input']}, enqueue + sync from the host",
             '', '| path | median us | p90 us | x pinned H2D + kernel |', '|---|---|---|---|']
    if not host.get('pageable_memory_access'):
        lines.insert(-2, 'The device reports no pageable memory access (no HMM): the '
                     '`direct_read` option cannot run here.\n')
    for key, ratio in host['ratio_to_pinned_h2d_kernel'].items():
        lines.append(f"| {key} | {host[key]['median']:.1f} | {host[key]['p90']:.1f} | "
                     f"{ratio:.2f} |")
    enc = res['encodings']
    lines += ['', f"## Fused kernel per input encoding: {enc['frame']} -> {enc['input']} "
              '(L2 warm; amortized = per launch of a 20-launch CUDA graph, single = one '
              'launch between events)', '',
              '| encoding | float32 amortized us | float16 amortized us | float32 single us | '
              'float16 single us |', '|---|---|---|---|---|']
    for name in ENCODINGS:
        cells = [enc[f'{name}_{d}_{kind}_us']['median'] for kind in ('amortized', 'single')
                 for d in ('float32', 'float16')]
        lines.append(f'| {name} | ' + ' | '.join(f'{c:.2f}' for c in cells) + ' |')
    return '\n'.join(lines) + '\n'


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iters', type=int, default=200)
    parser.add_argument('--out', default=str(ROOT / 'benchmarks' / 'results'))
    parser.add_argument('--name', default='', help='results file stem (default: by card)')
    args = parser.parse_args()
    res = {'machine': machine_info(('numpy', 'cuda.core', 'cuda.bindings')),
           'host_path': host_path(args.iters), 'encodings': encodings(args.iters)}
    card = 'h200' if 'H200' in res['machine']['gpu'] else (
        'h100' if 'H100' in res['machine']['gpu'] else 'gpu')
    stem = args.name or f'host_path_{card}'
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f'{stem}.json').write_text(json.dumps(res, indent=2) + '\n')
    text = markdown(res)
    (out / f'{stem}.md').write_text(text)
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
