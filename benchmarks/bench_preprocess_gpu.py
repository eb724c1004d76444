"""CUDA preprocessing benchmark: 1920x1280 bgr8 -> 960x960 and 960x608, one process, one run.

Measures, on the same host and GPU:

- OpenCV on the CPU: the reference ``preprocess_cpu`` and the seed's three steps (cv::resize +
  cv::copyMakeBorder + cv::dnn::blobFromImage), default OpenCV threads and one thread;
- on the GPU, for float32 and float16 output: the unfused 4-kernel chain and every fused-kernel
  variant, kernel-only and with the H2D copy from pinned memory;
- each GPU number two ways: amortized (a CUDA graph of many back-to-back launches replayed
  between two events, divided by the launch count; "cold": rotating over input/output sets
  larger than L2, so each launch reads/writes device memory; "hot": one set, L2-resident) and
  single-launch latency (an event pair around one launch from Python: launch-bound);
- roofline: bytes moved (source read once + output written once) over the device bandwidth
  measured in the same run by a large device-to-device copy (bytes read + written);
- beyond the seed: several cameras in one launch vs one launch each, a CUDA graph of
  H2D + kernel vs direct calls (host-to-completion latency), H2D overlapped with the previous
  frame's (simulated) inference, and the host cost of each API call.

CUDA events, warm-up, >= 200 samples, median and p90. Writes
benchmarks/results/preprocess_<tag>.json and .md (tag defaults to the GPU, e.g. h100).

    python3 benchmarks/bench_preprocess_gpu.py [--iters 200] [--tag h100] [--ncu-mode]
"""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cuda_lab import DeviceImage, LabPreprocessor  # noqa: E402
from benchmarks.cuda_variants.variants import BENCH_KERNELS, launch_unfused  # noqa: E402
from benchmarks.machine_info import machine_info  # noqa: E402
from tensorrt_yolox_py.cuda import kernels as K  # noqa: E402
from tensorrt_yolox_py.cuda.check import cuda_call  # noqa: E402
from tensorrt_yolox_py.cuda.preprocess import cuda_unavailable_reason  # noqa: E402
from tensorrt_yolox_py.image import SourceImage  # noqa: E402
from tensorrt_yolox_py.stages.preprocess import (  # noqa: E402
    compute_letterbox, PAD_VALUE, preprocess_cpu)

RESULTS = Path(__file__).resolve().parent / 'results'
SRC_HW = (1280, 1920)
MODEL_SIZES = {'960x960': (960, 960), '960x608': (608, 960)}
DTYPES = {'f32': np.float32, 'f16': np.float16}
TARGETS = {'fused_f32_us': 7.4, 'fused_f16_us': 5.0, 'fused_vs_unfused': 3.0,
           'fused_vs_opencv': 300.0}


def stats(samples: List[float]) -> Dict[str, float]:
    """Median / p90 / min / mean of samples (same unit), and their count."""
    arr = np.asarray(samples, np.float64)
    return {'median': float(np.median(arr)), 'p90': float(np.percentile(arr, 90)),
            'min': float(arr.min()), 'mean': float(arr.mean()), 'n': int(arr.size)}


def wall_us(fn: Callable[[], Any], iters: int, warmup: int = 10) -> Dict[str, float]:
    """Host wall-clock time of ``fn`` in microseconds."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e6)
    return stats(samples)


# ---------------------------------------------------------------- CPU baselines
def seed_three_step(image: np.ndarray, in_hw: Tuple[int, int]) -> np.ndarray:
    """Run the seed's CPU chain: cv::resize, cv::copyMakeBorder, cv::dnn::blobFromImage."""
    import cv2

    lb = compute_letterbox(image.shape[0], image.shape[1], in_hw[0], in_hw[1])
    resized = cv2.resize(image, (lb.resized_w, lb.resized_h), interpolation=cv2.INTER_LINEAR)
    padded = cv2.copyMakeBorder(resized, 0, in_hw[0] - lb.resized_h, 0,
                                in_hw[1] - lb.resized_w, cv2.BORDER_CONSTANT,
                                value=(PAD_VALUE,) * 3)
    return cv2.dnn.blobFromImage(padded)


def bench_cpu(image: np.ndarray, in_hw: Tuple[int, int], iters: int) -> Dict[str, Any]:
    """Time the CPU reference and the seed's three steps, default threads and one thread."""
    import cv2

    out = {}
    source = SourceImage.from_array(image)
    default_threads = cv2.getNumThreads()
    ref_out = np.empty((1, 3) + in_hw, np.float32)
    for threads in (default_threads, 1):
        cv2.setNumThreads(threads)
        key = f'{threads}thr'
        out[f'preprocess_cpu_{key}'] = wall_us(
            lambda: preprocess_cpu(source, in_hw, out=ref_out), iters)
        out[f'seed_3step_{key}'] = wall_us(lambda: seed_three_step(image, in_hw), iters)
    cv2.setNumThreads(default_threads)
    ref, _ = preprocess_cpu(source, in_hw)
    seed = seed_three_step(image, in_hw)
    out['seed_3step_max_abs_diff_vs_reference'] = float(np.abs(seed - ref).max())
    out['opencv_threads_default'] = default_threads
    return out


# ---------------------------------------------------------------- GPU helpers
class Gpu:
    """Driver-level helpers (events, graphs, buffers) on one LabPreprocessor's stream."""

    def __init__(self, pre: LabPreprocessor) -> None:
        from cuda.bindings import driver

        self.drv = driver
        self.pre = pre
        self.stream = pre.stream_handle
        self.ev0 = cuda_call(driver.cuEventCreate(0))
        self.ev1 = cuda_call(driver.cuEventCreate(0))
        self.allocs: List[int] = []
        self.host_allocs: List[int] = []

    def alloc(self, nbytes: int) -> int:
        ptr = int(cuda_call(self.drv.cuMemAlloc(int(nbytes))))
        self.allocs.append(ptr)
        return ptr

    def alloc_pinned(self, nbytes: int) -> int:
        ptr = int(cuda_call(self.drv.cuMemHostAlloc(int(nbytes), 0)))
        self.host_allocs.append(ptr)
        return ptr

    def upload(self, ptr: int, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array)
        cuda_call(self.drv.cuMemcpyHtoD(ptr, array.ctypes.data, array.nbytes))

    def sync(self) -> None:
        cuda_call(self.drv.cuStreamSynchronize(self.stream))

    def elapsed_us(self, fn: Callable[[], Any]) -> float:
        """GPU time between events recorded before and after ``fn()``'s enqueued work."""
        drv = self.drv
        cuda_call(drv.cuEventRecord(self.ev0, self.stream))
        fn()
        cuda_call(drv.cuEventRecord(self.ev1, self.stream))
        cuda_call(drv.cuEventSynchronize(self.ev1))
        return float(cuda_call(drv.cuEventElapsedTime(self.ev0, self.ev1))) * 1e3

    def time_events(self, fn: Callable[[], Any], iters: int, warmup: int = 10,
                    per: int = 1) -> Dict[str, float]:
        for _ in range(warmup):
            self.elapsed_us(fn)
        return stats([self.elapsed_us(fn) / per for _ in range(iters)])

    def capture(self, fn: Callable[[], Any]) -> Tuple[Any, Any]:
        drv = self.drv
        mode = drv.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
        cuda_call(drv.cuStreamBeginCapture(self.stream, mode))
        try:
            fn()
        finally:
            graph = cuda_call(drv.cuStreamEndCapture(self.stream))
        return graph, cuda_call(drv.cuGraphInstantiate(graph, 0))

    def graph_launcher(self, fn: Callable[[], Any]) -> Callable[[], None]:
        graph, exec_ = self.capture(fn)
        self._graphs = getattr(self, '_graphs', []) + [(graph, exec_)]
        return lambda: cuda_call(self.drv.cuGraphLaunch(exec_, self.stream))

    def amortized(self, launch_one: Callable[[int], Any], launches: int, iters: int
                  ) -> Dict[str, float]:
        """Per-launch time of a graph of ``launches`` back-to-back launches (launch_one(i))."""
        replay = self.graph_launcher(lambda: [launch_one(i) for i in range(launches)])
        return self.time_events(replay, iters, warmup=5, per=launches)

    def close(self) -> None:
        drv = self.drv
        self.sync()
        for graph, exec_ in getattr(self, '_graphs', []):
            cuda_call(drv.cuGraphExecDestroy(exec_))
            cuda_call(drv.cuGraphDestroy(graph))
        for ptr in self.allocs:
            cuda_call(drv.cuMemFree(ptr))
        for ptr in self.host_allocs:
            cuda_call(drv.cuMemFreeHost(ptr))
        cuda_call(drv.cuEventDestroy(self.ev0))
        cuda_call(drv.cuEventDestroy(self.ev1))


def measure_bandwidth(gpu: Gpu, nbytes: int = 1 << 30, iters: int = 20) -> Dict[str, float]:
    """Device-to-device copy bandwidth in GB/s, counting bytes read + bytes written."""
    src, dst = gpu.alloc(nbytes), gpu.alloc(nbytes)
    cuda_call(gpu.drv.cuMemsetD8Async(src, 7, nbytes, gpu.stream))
    res = gpu.time_events(
        lambda: cuda_call(gpu.drv.cuMemcpyDtoDAsync(dst, src, nbytes, gpu.stream)), iters, 3)
    res_gbps = 2 * nbytes / (res['median'] * 1e-6) / 1e9
    for ptr in (src, dst):
        gpu.allocs.remove(ptr)
        cuda_call(gpu.drv.cuMemFree(ptr))
    return {'bytes_per_copy': nbytes, 'copy_us': res, 'GBps_read_plus_write': res_gbps}


def device_info(pre: LabPreprocessor) -> Dict[str, Any]:
    """GPU name, SMs, L2, clocks, driver and CUDA versions, cuda-python versions."""
    from cuda.bindings import driver, runtime
    import cuda.bindings
    import cuda.core

    dev = int(cuda_call(driver.cuDeviceGet(pre.gpu_id)))
    attr = driver.CUdevice_attribute

    def get(name: str) -> Optional[int]:
        try:
            return int(cuda_call(driver.cuDeviceGetAttribute(getattr(attr, name), dev)))
        except Exception:  # noqa: BLE001 - attribute absent in this CUDA version
            return None

    return {
        'name': pre.device.name, 'arch': pre.arch,
        'sm_count': get('CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT'),
        'l2_bytes': get('CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE'),
        'sm_clock_khz': get('CU_DEVICE_ATTRIBUTE_CLOCK_RATE'),
        'driver_cuda_version': int(cuda_call(driver.cuDriverGetVersion())),
        'runtime_version': int(cuda_call(runtime.cudaRuntimeGetVersion())),
        'cuda_core': getattr(cuda.core, '__version__', 'unknown'),
        'cuda_bindings': getattr(cuda.bindings, '__version__', 'unknown'),
    }


# ---------------------------------------------------------------- GPU benchmarks
def unfused_bytes(lb, itemsize: int) -> int:
    """Device bytes the 4-kernel chain moves (each intermediate written once, read once)."""
    src = lb.src_h * lb.src_w * 3
    resized = lb.resized_h * lb.resized_w * 3
    canvas = lb.in_h * lb.in_w * 3
    return src + 2 * resized + 2 * canvas + 2 * canvas + canvas * itemsize


def bench_size(label: str, in_hw: Tuple[int, int], image: np.ndarray, iters: int,
               bandwidth_gbps: float, rotate: int, launches: int) -> Dict[str, Any]:
    """All GPU measurements for one model input size."""
    h, w = image.shape[:2]
    lb = compute_letterbox(h, w, in_hw[0], in_hw[1])
    src_bytes = h * w * 3
    result: Dict[str, Any] = {'letterbox': lb.__dict__.copy(), 'gpu': {}}
    for tag, dtype in DTYPES.items():
        pre = LabPreprocessor(in_hw, dtype, kernels=BENCH_KERNELS)
        gpu = Gpu(pre)
        try:
            out_bytes = pre.output_nbytes
            pitch = 3 * w
            srcs = [gpu.alloc(src_bytes + 64) for _ in range(rotate)]
            dsts = [gpu.alloc(out_bytes) for _ in range(rotate)]
            for i, ptr in enumerate(srcs):
                gpu.upload(ptr, np.roll(image, i, axis=1))
            pinned = gpu.alloc_pinned(src_bytes)
            np.ctypeslib.as_array((np.ctypeslib.ctypes.c_uint8 * src_bytes).from_address(
                pinned))[:] = image.reshape(-1)
            h2d = lambda i=0: cuda_call(gpu.drv.cuMemcpyHtoDAsync(  # noqa: E731
                srcs[i % rotate], pinned, src_bytes, gpu.stream))

            impls: Dict[str, Callable[[int], Any]] = {}
            for variant in BENCH_KERNELS.variants[np.dtype(dtype).name]:
                impls[f'fused_{variant.name}'] = (
                    lambda i, v=variant.name: pre.launch_fused(
                        srcs[i % rotate], pitch, lb, False, dsts[i % rotate], v))
            impls['unfused'] = lambda i: launch_unfused(pre, srcs[i % rotate], pitch, lb, False,
                                                        dsts[i % rotate])
            for name, launch in impls.items():
                rec: Dict[str, Any] = {}
                launch(0)
                gpu.sync()
                rec['amortized_cold_us'] = gpu.amortized(launch, launches, iters)
                rec['amortized_hot_us'] = gpu.amortized(lambda i: launch(0), launches, iters)
                rec['single_launch_us'] = gpu.time_events(lambda: launch(0), iters)
                rec['h2d_only_us'] = gpu.time_events(h2d, iters) if name == 'unfused' else None
                rec['h2d_kernel_single_us'] = gpu.time_events(lambda: (h2d(), launch(0)), iters)
                rec['h2d_kernel_amortized_us'] = gpu.amortized(
                    lambda i: (h2d(i), launch(i)), max(4, launches // 4), max(50, iters // 4))
                moved = (unfused_bytes(lb, pre.dtype.itemsize) if name == 'unfused'
                         else src_bytes + out_bytes)
                roofline_us = moved / (bandwidth_gbps * 1e9) * 1e6
                rec['bytes_moved'] = moved
                rec['roofline_us'] = roofline_us
                rec['amortized_cold_vs_roofline'] = (rec['amortized_cold_us']['median']
                                                     / roofline_us)
                rec['achieved_GBps_cold'] = moved / (rec['amortized_cold_us']['median'] * 1e3)
                result['gpu'][f'{name}_{tag}'] = rec
                print(f'  {label} {name}_{tag}: cold {rec["amortized_cold_us"]["median"]:.2f} us'
                      f' hot {rec["amortized_hot_us"]["median"]:.2f} us'
                      f' single {rec["single_launch_us"]["median"]:.1f} us'
                      f' h2d+k {rec["h2d_kernel_single_us"]["median"]:.1f} us'
                      f' roofline {roofline_us:.2f} us', flush=True)
            result['gpu'][f'h2d_only_{tag}'] = gpu.time_events(h2d, iters)
            # practical roofline at this size: a D2D copy moving the same bytes (half read,
            # half written), cold (rotating sets) like the kernels
            half = (src_bytes + out_bytes) // 2
            pairs = [(gpu.alloc(half), gpu.alloc(half)) for _ in range(rotate)]
            copy = lambda i: cuda_call(gpu.drv.cuMemcpyDtoDAsync(  # noqa: E731
                pairs[i % rotate][1], pairs[i % rotate][0], half, gpu.stream))
            result['gpu'][f'd2d_copy_same_bytes_{tag}'] = {
                'bytes_moved': 2 * half,
                'amortized_cold_us': gpu.amortized(copy, launches, iters),
                'amortized_hot_us': gpu.amortized(lambda i: copy(0), launches, iters)}
            # correctness of what was timed: every variant equals the CPU reference within 1
            ref, _ = preprocess_cpu(SourceImage.from_array(image), in_hw)
            worst = {}
            for name, launch in impls.items():
                cuda_call(gpu.drv.cuMemsetD8Async(dsts[0], 0xFF, out_bytes, gpu.stream))
                launch(0)
                got = pre.download(dsts[0])[0].astype(np.float32)
                worst[name] = float(np.abs(got - ref[0]).max())
            result['gpu'][f'max_abs_diff_vs_cpu_{tag}'] = worst
        finally:
            gpu.close()
            pre.close()
    return result


def bench_batch(image: np.ndarray, in_hw: Tuple[int, int], cameras: int, iters: int,
                launches: int) -> Dict[str, Any]:
    """Several cameras in one launch vs one fused launch per camera (float16 and float32)."""
    out: Dict[str, Any] = {'cameras': cameras}
    h, w = image.shape[:2]
    lb = compute_letterbox(h, w, in_hw[0], in_hw[1])
    for tag, dtype in DTYPES.items():
        pre = LabPreprocessor(in_hw, dtype, kernels=BENCH_KERNELS)
        gpu = Gpu(pre)
        try:
            srcs = [gpu.alloc(h * w * 3 + 64) for _ in range(cameras)]
            for i, ptr in enumerate(srcs):
                gpu.upload(ptr, np.roll(image, 3 * i, axis=0))
            dst = pre.batch_device_ptr(cameras)
            images = [DeviceImage(p, h, w) for p in srcs]
            pre.enqueue_batch(images)  # uploads the descriptor table once
            gpu.sync()

            def separate(_i: int = 0) -> None:
                for c in range(cameras):
                    pre.launch_fused(srcs[c], 3 * w, lb, False, dst + c * pre.output_nbytes)

            def batched(_i: int = 0) -> None:
                pre.enqueue_batch(images)

            for name, fn in (('separate_launches', separate), ('one_batch_launch', batched)):
                out[f'{name}_{tag}'] = {
                    'amortized_us_per_frame_set': gpu.amortized(fn, max(2, launches // 4),
                                                                iters),
                    'single_us_per_frame_set': gpu.time_events(fn, iters),
                    'host_call_us': wall_us(fn, iters),
                }
            gpu.sync()
        finally:
            gpu.close()
            pre.close()
    return out


def bench_graph_latency(image: np.ndarray, in_hw: Tuple[int, int], iters: int
                        ) -> Dict[str, Any]:
    """Host call -> completion latency: direct launches vs a CUDA graph (float16 output)."""
    out: Dict[str, Any] = {}
    h, w = image.shape[:2]
    lb = compute_letterbox(h, w, in_hw[0], in_hw[1])
    pre = LabPreprocessor(in_hw, np.float16, kernels=BENCH_KERNELS)
    gpu = Gpu(pre)
    try:
        src = gpu.alloc(h * w * 3 + 64)
        gpu.upload(src, image)
        pinned = gpu.alloc_pinned(h * w * 3)
        drv = gpu.drv

        def kernel() -> None:
            pre.launch_fused(src, 3 * w, lb, False, pre.device_ptr)

        def h2d_kernel() -> None:
            cuda_call(drv.cuMemcpyHtoDAsync(src, pinned, h * w * 3, gpu.stream))
            kernel()

        for name, fn in (('kernel', kernel), ('h2d_kernel', h2d_kernel)):
            replay = gpu.graph_launcher(fn)
            for mode, call in (('direct', fn), ('graph', replay)):
                out[f'{name}_{mode}_host_to_done_us'] = wall_us(lambda: (call(), gpu.sync()),
                                                                iters)
                out[f'{name}_{mode}_events_us'] = gpu.time_events(call, iters)
                out[f'{name}_{mode}_host_call_us'] = wall_us(call, iters)
                gpu.sync()
        # the class API: enqueue() of a host image (includes the copy into pinned memory)
        for use_graph in (False, True):
            with LabPreprocessor(in_hw, np.float16, use_graph=use_graph,
                                 kernels=BENCH_KERNELS) as p2:
                out[f'enqueue_host_image_graph={use_graph}_host_to_done_us'] = wall_us(
                    lambda: (p2.enqueue(image), p2.synchronize()), iters)
        with LabPreprocessor(in_hw, np.float32, kernels=BENCH_KERNELS) as p3:
            out['call_roundtrip_f32_host_to_host_us'] = wall_us(lambda: p3(image), iters)
    finally:
        gpu.close()
        pre.close()
    return out


def bench_overlap(image: np.ndarray, in_hw: Tuple[int, int], frames: int, infer_us: float
                  ) -> Dict[str, Any]:
    """Per-frame time with a simulated inference: H2D on the main stream vs overlapped.

    GPU-side (driver-level, pinned buffers pre-filled): one stream (H2D, kernel, inference in
    order) vs a copy stream + two staging slots (frame n+1's H2D during frame n's inference).
    Class-level: ``enqueue`` of host images (incl. the host copy into pinned memory), with
    ``overlap_h2d`` False / True.
    """
    from cuda.bindings import driver as drv

    out: Dict[str, Any] = {'frames': frames, 'simulated_inference_us': infer_us}
    h, w = image.shape[:2]
    nbytes = h * w * 3
    lb = compute_letterbox(h, w, in_hw[0], in_hw[1])
    pre = LabPreprocessor(in_hw, np.float16, kernels=BENCH_KERNELS)
    gpu = Gpu(pre)
    try:
        busy = pre._kernel('busy_wait')
        cfg = pre._core.LaunchConfig(grid=1, block=1)
        cycles = np.int64(1_000_000)
        t = gpu.time_events(lambda: pre._core.launch(pre.stream, cfg, busy, cycles), 20, 3)
        cycles_per_us = 1_000_000 / t['median']
        infer_cycles = np.int64(int(infer_us * cycles_per_us))

        def infer(stream: Any) -> None:
            pre._core.launch(stream, cfg, busy, infer_cycles)

        pinned = [gpu.alloc_pinned(nbytes) for _ in range(2)]
        for p in pinned:
            np.ctypeslib.as_array((np.ctypeslib.ctypes.c_uint8 * nbytes).from_address(p))[:] = \
                image.reshape(-1)
        dev = [gpu.alloc(nbytes + 64) for _ in range(2)]
        copy_stream = pre.device.create_stream(options=pre._core.StreamOptions(nonblocking=True))
        copied = [cuda_call(drv.cuEventCreate(2)) for _ in range(2)]
        consumed = [cuda_call(drv.cuEventCreate(2)) for _ in range(2)]
        cs = int(copy_stream.handle)

        def run(overlap: bool) -> float:
            def frames_fn() -> None:
                for f in range(frames):
                    s = f % 2 if overlap else 0
                    if overlap:
                        cuda_call(drv.cuStreamWaitEvent(cs, consumed[s], 0))
                        cuda_call(drv.cuMemcpyHtoDAsync(dev[s], pinned[s], nbytes, cs))
                        cuda_call(drv.cuEventRecord(copied[s], cs))
                        cuda_call(drv.cuStreamWaitEvent(gpu.stream, copied[s], 0))
                    else:
                        cuda_call(drv.cuMemcpyHtoDAsync(dev[s], pinned[s], nbytes, gpu.stream))
                    pre.launch_fused(dev[s], 3 * w, lb, False, pre.device_ptr)
                    if overlap:
                        cuda_call(drv.cuEventRecord(consumed[s], gpu.stream))
                    infer(pre.stream)
            gpu.elapsed_us(frames_fn)  # warm-up
            return float(np.median([gpu.elapsed_us(frames_fn) / frames for _ in range(5)]))

        out['gpu_side_per_frame_us'] = {'one_stream': run(False), 'overlapped_h2d': run(True)}
        out['h2d_us'] = gpu.time_events(
            lambda: cuda_call(drv.cuMemcpyHtoDAsync(dev[0], pinned[0], nbytes, gpu.stream)),
            50)['median']
        gpu.sync()
        cuda_call(drv.cuStreamSynchronize(cs))
        for e in copied + consumed:
            cuda_call(drv.cuEventDestroy(e))
        copy_stream.close()
        # class level, host images
        for overlap in (False, True):
            with LabPreprocessor(in_hw, np.float16, overlap_h2d=overlap,
                                 kernels=BENCH_KERNELS) as p2:
                def frames_cls() -> None:
                    for _ in range(frames):
                        p2.enqueue(image)
                        infer(p2.stream)
                    p2.synchronize()
                frames_cls()
                t0 = time.perf_counter()
                for _ in range(3):
                    frames_cls()
                out[f'class_overlap_h2d={overlap}_wall_per_frame_us'] = (
                    (time.perf_counter() - t0) / (3 * frames) * 1e6)
    finally:
        gpu.close()
        pre.close()
    return out


def ncu_mode(image: np.ndarray) -> None:
    """Launch each fused variant and the unfused chain a few times (for ncu to profile)."""
    h, w = image.shape[:2]
    for in_hw in MODEL_SIZES.values():
        lb = compute_letterbox(h, w, in_hw[0], in_hw[1])
        for dtype in DTYPES.values():
            with LabPreprocessor(in_hw, dtype, kernels=BENCH_KERNELS) as pre:
                gpu = Gpu(pre)
                src = gpu.alloc(h * w * 3 + 64)
                gpu.upload(src, image)
                for variant in BENCH_KERNELS.variants[np.dtype(dtype).name]:
                    for _ in range(2):
                        pre.launch_fused(src, 3 * w, lb, False, pre.device_ptr, variant.name)
                launch_unfused(pre, src, 3 * w, lb, False, pre.device_ptr)
                gpu.close()


# ---------------------------------------------------------------- report
def evaluate_targets(res: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Check the issue's targets at 960x960 with the best fused variant; say by how much."""
    out = []
    size = res['sizes']['960x960']
    gpu = size['gpu']
    best = {}
    for tag in DTYPES:
        fused = {k: v for k, v in gpu.items()
                 if k.startswith('fused_') and k.endswith(f'_{tag}') and isinstance(v, dict)
                 and 'amortized_cold_us' in v}
        name = min(fused, key=lambda k: fused[k]['amortized_cold_us']['median'])
        best[tag] = (name, fused[name])
    cpu = size['cpu']
    opencv_best = min(cpu[k]['median'] for k in cpu if isinstance(cpu[k], dict))
    for tag, key in (('f32', 'fused_f32_us'), ('f16', 'fused_f16_us')):
        name, rec = best[tag]
        cold = rec['amortized_cold_us']['median']
        hot = rec['amortized_hot_us']['median']
        out.append({'target': f'fused {tag} 960x960 amortized <= {TARGETS[key]} us',
                    'kernel': name, 'measured_cold_us': cold, 'measured_hot_us': hot,
                    'roofline_us': rec['roofline_us'], 'met': cold <= TARGETS[key],
                    'miss_factor': cold / TARGETS[key]})
    for tag in DTYPES:
        name, rec = best[tag]
        unf = gpu[f'unfused_{tag}']['amortized_cold_us']['median']
        ratio = unf / rec['amortized_cold_us']['median']
        out.append({'target': f'fused {tag} >= {TARGETS["fused_vs_unfused"]}x faster than '
                              'unfused (amortized, cold)',
                    'kernel': name, 'measured_ratio': ratio,
                    'met': ratio >= TARGETS['fused_vs_unfused']})
    name, rec = best['f32']
    ratio = opencv_best / rec['amortized_cold_us']['median']
    out.append({'target': f'fused f32 >= {TARGETS["fused_vs_opencv"]}x faster than OpenCV '
                          '(fastest CPU variant, same host)',
                'kernel': name, 'opencv_us': opencv_best, 'measured_ratio': ratio,
                'met': ratio >= TARGETS['fused_vs_opencv']})
    return out


def markdown(res: Dict[str, Any]) -> str:
    """Render the results as the README's markdown tables."""
    dev = res['device']
    bw = res['bandwidth']['GBps_read_plus_write']
    lines = [f"### Preprocessing on {dev['name']} ({res['machine']['date_utc'][:10]})", '',
             f"1920x1280 bgr8 source. GPU: {dev['name']}, {dev['sm_count']} SMs, "
             f"L2 {dev['l2_bytes'] / 2**20:.0f} MiB, driver CUDA {dev['driver_cuda_version']}, "
             f"cuda.core {dev['cuda_core']}, cuda.bindings {dev['cuda_bindings']}. "
             f"Host CPU: {res['machine']['cpu']} ({res['machine']['cpu_count']} cores). "
             f"Measured D2D bandwidth {bw:.0f} GB/s (read + write). Default fused variant: "
             f"{res.get('default_variants', {})}.", '',
             'Times in microseconds, median (p90). *Amortized*: a CUDA graph of back-to-back '
             'launches between two events, per launch; *cold* rotates over buffers larger '
             'than L2, *hot* reuses one set (L2-resident). *Single*: an event pair around one '
             'launch from Python (launch-bound). *Roofline*: (source read once + output '
             'written once) / measured bandwidth.', '']
    for label, size in res['sizes'].items():
        cpu = size['cpu']
        lines += [f'#### {label}', '',
                  '| implementation | amortized cold | amortized hot | single launch | '
                  'H2D + kernel (single) | H2D + kernel (amortized) | roofline | '
                  'cold / roofline | max abs diff vs CPU |',
                  '|---|---|---|---|---|---|---|---|---|']
        gpu = size['gpu']
        for key, rec in gpu.items():
            if not (isinstance(rec, dict) and 'amortized_cold_us' in rec) \
                    or key.startswith('d2d_copy'):
                continue
            tag = key.rsplit('_', 1)[1]
            diff = gpu[f'max_abs_diff_vs_cpu_{tag}'][key.rsplit('_', 1)[0]]

            def ms(s: Dict[str, float]) -> str:
                return f"{s['median']:.2f} ({s['p90']:.2f})"
            lines.append(f"| {key} | {ms(rec['amortized_cold_us'])} | "
                         f"{ms(rec['amortized_hot_us'])} | {ms(rec['single_launch_us'])} | "
                         f"{ms(rec['h2d_kernel_single_us'])} | "
                         f"{ms(rec['h2d_kernel_amortized_us'])} | {rec['roofline_us']:.2f} | "
                         f"{rec['amortized_cold_vs_roofline']:.2f}x | {diff:.3f} |")
        for tag in DTYPES:
            lines.append(f"| H2D only (pinned, {tag} case) | | | "
                         f"{gpu[f'h2d_only_{tag}']['median']:.1f} | | | | | |")
        for tag in DTYPES:
            copy = gpu.get(f'd2d_copy_same_bytes_{tag}')
            if copy:
                lines.append(f"| D2D copy of the fused {tag} bytes | "
                             f"{copy['amortized_cold_us']['median']:.2f} | "
                             f"{copy['amortized_hot_us']['median']:.2f} | | | | | | |")
        for key, rec in cpu.items():
            if isinstance(rec, dict):
                lines.append(f"| CPU {key} | | | {rec['median']:.0f} ({rec['p90']:.0f}) "
                             '| | | | | |')
        lines.append('')
    lines += ['#### Targets (960x960, best fused variant, amortized cold)', '',
              '| target | measured | met |', '|---|---|---|']
    for t in res['targets']:
        if 'measured_cold_us' in t:
            meas = (f"{t['measured_cold_us']:.2f} us cold ({t['kernel']}), "
                    f"{t['measured_hot_us']:.2f} us hot, roofline {t['roofline_us']:.2f} us")
        else:
            meas = f"{t['measured_ratio']:.1f}x ({t['kernel']})"
        lines.append(f"| {t['target']} | {meas} | {'yes' if t['met'] else 'NO'} |")
    lines.append('')
    b = res.get('batch')
    if b:
        lines += [f"#### {b['cameras']} cameras of 1920x1280 -> 960x608: one launch vs one "
                  'launch each', '', '| dtype | mode | amortized per set | single (events) | '
                  'host call |', '|---|---|---|---|---|']
        for tag in DTYPES:
            for mode in ('separate_launches', 'one_batch_launch'):
                r = b[f'{mode}_{tag}']
                lines.append(f"| {tag} | {mode} | {r['amortized_us_per_frame_set']['median']:.2f}"
                             f" | {r['single_us_per_frame_set']['median']:.2f} | "
                             f"{r['host_call_us']['median']:.1f} |")
        lines.append('')
    g = res.get('graph')
    if g:
        lines += ['#### CUDA graph vs direct launch (960x608 f16; host call -> done, wall)', '',
                  '| work | direct | graph |', '|---|---|---|']
        for work in ('kernel', 'h2d_kernel'):
            lines.append(f"| {work} | {g[f'{work}_direct_host_to_done_us']['median']:.1f} | "
                         f"{g[f'{work}_graph_host_to_done_us']['median']:.1f} |")
        lines.append(f"| enqueue(host image) + sync | "
                     f"{g['enqueue_host_image_graph=False_host_to_done_us']['median']:.1f} | "
                     f"{g['enqueue_host_image_graph=True_host_to_done_us']['median']:.1f} |")
        lines.append('')
    o = res.get('overlap')
    if o:
        lines += [f"#### H2D overlapped with the previous frame (simulated "
                  f"{o['simulated_inference_us']:.0f} us inference, 960x608 f16)", '',
                  '| level | one stream | overlapped |', '|---|---|---|',
                  f"| GPU side, per frame | {o['gpu_side_per_frame_us']['one_stream']:.1f} | "
                  f"{o['gpu_side_per_frame_us']['overlapped_h2d']:.1f} |",
                  f"| class enqueue(host image), wall per frame | "
                  f"{o['class_overlap_h2d=False_wall_per_frame_us']:.1f} | "
                  f"{o['class_overlap_h2d=True_wall_per_frame_us']:.1f} |", '',
                  f"H2D of one frame: {o['h2d_us']:.1f} us.", '']
    for note in res.get('notes', []):
        lines.append(f'- {note}')
    return '\n'.join(lines) + '\n'


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--iters', type=int, default=200)
    parser.add_argument('--launches', type=int, default=20, help='launches per graph')
    parser.add_argument('--rotate', type=int, default=6, help='buffer sets for cold timing')
    parser.add_argument('--tag', default='', help='results file tag (default: from the GPU)')
    parser.add_argument('--out', default=str(RESULTS))
    parser.add_argument('--ncu-mode', action='store_true', help='only launch kernels (ncu)')
    parser.add_argument('--skip-extras', action='store_true')
    parser.add_argument('--notes', default='', help='text file: one analysis note per line, '
                        'stored in the JSON and listed under the markdown tables')
    parser.add_argument('--render', default='', help='only re-render the markdown of this JSON')
    args = parser.parse_args(argv)
    notes = ([line.strip() for line in Path(args.notes).read_text().splitlines()
              if line.strip()] if args.notes else [])
    if args.render:
        res = json.loads(Path(args.render).read_text())
        if notes:
            res['notes'] = notes
            Path(args.render).write_text(json.dumps(res, indent=1, default=str))
        md = markdown(res)
        Path(args.render).with_suffix('.md').write_text(md)
        print(md)
        return 0
    reason = cuda_unavailable_reason()
    if reason:
        print(f'CUDA preprocessing unavailable: {reason}')
        return 2
    image = np.random.default_rng(0).integers(0, 256, SRC_HW + (3,), dtype=np.uint8)
    if args.ncu_mode:
        ncu_mode(image)
        return 0
    t_start = time.time()
    with LabPreprocessor((960, 960)) as pre:
        dev = device_info(pre)
        gpu = Gpu(pre)
        bandwidth = measure_bandwidth(gpu)
        gpu.close()
    print(f"{dev['name']}: D2D {bandwidth['GBps_read_plus_write']:.0f} GB/s", flush=True)
    res: Dict[str, Any] = {'machine': machine_info(('numpy', 'cv2')), 'device': dev,
                           'bandwidth': bandwidth, 'source_hw': SRC_HW, 'iters': args.iters,
                           'launches_per_graph': args.launches, 'rotate_sets': args.rotate,
                           'default_variants': dict(K.DEFAULT_VARIANT), 'sizes': {}}
    for label, in_hw in MODEL_SIZES.items():
        print(f'{label}: CPU', flush=True)
        cpu = bench_cpu(image, in_hw, args.iters)
        print(f'{label}: GPU', flush=True)
        size = bench_size(label, in_hw, image, args.iters,
                          bandwidth['GBps_read_plus_write'], args.rotate, args.launches)
        size['cpu'] = cpu
        res['sizes'][label] = size
    if not args.skip_extras:
        print('batch / graph / overlap', flush=True)
        res['batch'] = bench_batch(image, (608, 960), 4, args.iters, args.launches)
        res['graph'] = bench_graph_latency(image, (608, 960), args.iters)
        res['overlap'] = bench_overlap(image, (608, 960), 20, 1000.0)
    res['targets'] = evaluate_targets(res)
    res['notes'] = notes
    res['elapsed_s'] = time.time() - t_start
    tag = args.tag or ('h100' if 'H100' in dev['name'] else
                       dev['name'].lower().replace(' ', '_')[:20])
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f'preprocess_{tag}.json').write_text(json.dumps(res, indent=1, default=str))
    print(f"wrote {out_dir / f'preprocess_{tag}.json'}", flush=True)
    md = markdown(res)
    (out_dir / f'preprocess_{tag}.md').write_text(md)
    print(md)
    return 0


if __name__ == '__main__':
    sys.exit(main())
