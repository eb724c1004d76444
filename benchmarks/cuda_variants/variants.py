"""Benchmark-only preprocessing kernels: the fused variants and the seed's unfused chain.

``BENCH_KERNELS`` is a ``KernelSet`` of the runtime kernels
(``tensorrt_yolox_py/cuda/preprocess.cu``) plus ``variants.cu`` here, so
``benchmarks.cuda_lab.LabPreprocessor(..., kernels=BENCH_KERNELS)`` launches every variant
with the same staging and argument packing as the runtime. Never compiled at run time.

- Variants (beyond the runtime 'b1', 'w1', 'c1'): 'b4' / 'w4' (float32: 4 pixels per thread,
  one float4 store per plane), 'b8' / 'w8' (float16: 8 pixels, one 16-byte store), 'w1r2' /
  'w1r4' (word loads, 2 or 4 rows per thread, loads issued before use), 's1' (shared-memory
  staging of the source rows a block needs). Needs: in_w % 4 (8) == 0 and a 16-byte aligned
  output for the vector stores, W >= 2 and a 4-byte aligned source for word loads.
- ``launch_unfused(pre, ...)``: the seed's 4-kernel chain: ``unfused_resize_u8`` (bilinear to
  an rw x rh x 3 uint8 buffer, rounded like OpenCV), ``unfused_letterbox_u8`` (onto the in_h x
  in_w x 3 canvas, pad 114), ``unfused_nhwc2nchw_u8`` (planar, channel order),
  ``unfused_to_float_f32`` / ``_f16``.
- ``busy_wait(cycles)``: spins, standing in for inference in the overlap benchmark.
"""

from pathlib import Path
from typing import Any, Dict, Tuple

import numpy as np

from tensorrt_yolox_py.cuda import kernels as K
from tensorrt_yolox_py.stages.preprocess import LetterboxParams

HERE = Path(__file__).resolve().parent
FusedVariant = K.FusedVariant

BENCH_VARIANTS: Dict[str, Tuple[K.FusedVariant, ...]] = {
    'float32': K.RUNTIME_VARIANTS + (
        FusedVariant('b4', 'bytes', 4), FusedVariant('w4', 'words', 4),
        FusedVariant('w1r2', 'words', 1, 2), FusedVariant('w1r4', 'words', 1, 4),
        FusedVariant('s1', 'smem', 1)),
    'float16': K.RUNTIME_VARIANTS + (
        FusedVariant('b8', 'bytes', 8), FusedVariant('w8', 'words', 8),
        FusedVariant('w1r2', 'words', 1, 2), FusedVariant('w1r4', 'words', 1, 4),
        FusedVariant('s1', 'smem', 1)),
}
UNFUSED_KERNELS = ('unfused_resize_u8', 'unfused_letterbox_u8', 'unfused_nhwc2nchw_u8',
                   'unfused_to_float_f32', 'unfused_to_float_f16')
BENCH_KERNEL_NAMES = K.KERNEL_NAMES + (
    'fused_b4_f32', 'fused_w4_f32', 'fused_b8_f16', 'fused_w8_f16',
    'fused_w1r2_f32', 'fused_w1r4_f32', 'fused_w1r2_f16', 'fused_w1r4_f16',
    'fused_s1_f32', 'fused_s1_f16') + UNFUSED_KERNELS + ('busy_wait',)
BENCH_KERNELS = K.KernelSet('benchmark', (K.HERE / 'preprocess.cu', HERE / 'variants.cu'),
                            BENCH_KERNEL_NAMES, BENCH_VARIANTS)


def launch_unfused(pre: Any, src_ptr: int, pitch: int, lb: LetterboxParams, swap_rb: bool,
                   dst_ptr: int) -> None:
    """Launch the seed's 4-kernel chain on ``pre``'s stream (a LabPreprocessor, BENCH_KERNELS)."""
    in_h, in_w = pre.input_hw
    bufs = getattr(pre, '_bench_unfused_bufs', None)
    if bufs is None:
        n = 3 * in_h * in_w
        bufs = pre._bench_unfused_bufs = (pre.alloc_device(n), pre.alloc_device(n),
                                          pre.alloc_device(n))
    resized, canvas, chw = bufs
    sx, sy = K.axis_factors(lb)
    i32 = np.int32
    rw, rh = lb.resized_w, lb.resized_h
    pre.launch('unfused_resize_u8', K.launch_geometry(rw, rh),
               int(src_ptr), i32(lb.src_w), i32(lb.src_h), i32(pitch), resized,
               i32(rw), i32(rh), sx, sy)
    pre.launch('unfused_letterbox_u8', K.launch_geometry(in_w, in_h),
               resized, i32(rw), i32(rh), canvas, i32(in_w), i32(in_h))
    pre.launch('unfused_nhwc2nchw_u8', K.launch_geometry(in_w, in_h),
               canvas, chw, i32(in_w), i32(in_h), i32(1 if swap_rb else 0))
    n = 3 * in_h * in_w
    pre.launch(f'unfused_to_float_{K.dtype_suffix(pre.dtype)}', K.linear_geometry(n),
               chw, int(dst_ptr), i32(n))
