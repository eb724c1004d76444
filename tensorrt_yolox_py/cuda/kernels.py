"""CUDA C source of the preprocessing kernels, their launch geometry and NVRTC compilation.

Contract (the one of ``stages/preprocess.py``; every kernel here follows it):

- Source: H x W x 3 uint8 (bgr8 or rgb8), rows ``pitch`` bytes apart (ROS ``step``), pixels
  packed inside a row, in device memory.
- Letterbox: ``(rw, rh)`` from ``compute_letterbox``; bilinear sampling with OpenCV
  INTER_LINEAR semantics: source coordinate ``(d + 0.5) * f - 0.5`` with the per-axis factor
  ``f = W / rw`` (``H / rh``), floored; a negative index clamps to 0 with weight 0, an index
  >= size - 1 clamps to size - 1 with weight 0. The resized image sits at the TOP-LEFT of the
  (in_h, in_w) canvas; the rest is 114.
- Output: (3, in_h, in_w) planar (NCHW without the batch axis), channel order BGR (an rgb8
  source has its R and B swapped), values 0-255 unnormalised, float32 or float16 (IEEE half,
  written as its 16-bit pattern). Every output element is written.

Kernels (all ``extern "C"``; ``*_f32`` / ``*_f16`` by output type):

- ``fused_b1_*``: one thread per output pixel; 12 byte loads of the 2x2 source taps.
- ``fused_w1_*``: one thread per output pixel; each tap row read as 2-3 aligned 32-bit words
  (the 6 bytes of two neighbouring pixels), bytes unpacked with funnel shifts. Needs W >= 2 and
  a 4-byte aligned source pointer.
- ``fused_c1_*``: as ``fused_w1_*`` with streaming cache hints: source words loaded with
  ``ld.global.cs`` (evict-first) instead of the read-only path, outputs stored with
  ``st.global.cs``; every byte is touched once, so nothing is worth keeping in the caches.
  3% faster cold than ``w1`` on the H100 (the loads' hint is what gains; stores alone: none).
- ``fused_b4_f32`` / ``fused_w4_f32`` / ``fused_b8_f16`` / ``fused_w8_f16``: one thread per 4
  (8) consecutive output pixels, one 16-byte store per plane. Needs in_w % 4 (8) == 0 and a
  16-byte aligned output pointer.
- ``fused_w1r2_*`` / ``fused_w1r4_*``: word loads, one thread per output column and 2 (4)
  consecutive rows; the x tap is computed once and the loads of all rows are issued before
  the first use (more bytes in flight per thread).
- ``fused_s1_*``: shared-memory staging: a 128 x 2 block copies the 4 source rows x its x
  span it needs with coalesced 32-bit loads (each source sector requested from L2 once), then
  samples from shared memory. Needs W >= 2, a 4-byte aligned source and x factor <= ~5.3.
- ``fused_batch_*``: several images (cameras) in one launch; blockIdx.z selects the image, whose
  geometry and pointers come from a device table of ``BATCH_DESC_DTYPE`` records; the loads
  and stores of ``c1`` (streaming hints), or byte loads where words do not fit.
- ``unfused_*``: the seed's 4-kernel chain kept for comparison: ``resize_u8`` (bilinear to an
  rw x rh x 3 uint8 buffer, rounded like OpenCV), ``letterbox_u8`` (onto the in_h x in_w x 3
  canvas, pad 114), ``nhwc2nchw_u8`` (planar, channel order), ``to_float_f32`` / ``_f16``.
"""

import threading
from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

from .._lazy import require
from ..stages.preprocess import LetterboxParams

INSTALL_HINT = 'pip install "cuda-core>=1.2,<2" cuda-bindings nvidia-cuda-nvrtc'
PAD_VALUE = 114
#: Threads per block of every 2-D kernel (x, y); 256 threads, a warp spans 32 pixels of a row.
BLOCK = (128, 2)

KERNEL_SOURCE = r'''
#define PAD_F 114.0f
typedef unsigned char u8;

// float -> IEEE half bit pattern, round to nearest even (no cuda_fp16.h needed under NVRTC).
__device__ __forceinline__ unsigned short f2h(float v) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    return h;
}

// OpenCV INTER_LINEAR tap along one axis: output index d, factor s = src/resized, size n.
__device__ __forceinline__ void axis_tap(int d, float s, int n, int& i0, int& i1, float& f) {
    float c = ((float)d + 0.5f) * s - 0.5f;
    int i = __float2int_rd(c);
    f = c - (float)i;
    if (i < 0) { i = 0; f = 0.f; }
    if (i >= n - 1) { i = n - 1; f = 0.f; }
    i0 = i;
    i1 = min(i + 1, n - 1);
}

__device__ __forceinline__ float lerp2(float a, float b, float f) { return fmaf(b - a, f, a); }

// Bilinear sample of the 3 channels at output pixel (x, y): 12 byte loads.
__device__ __forceinline__ void sample_bytes(
    const u8* __restrict__ src, int pitch, int w, int h, float sx, float sy, int x, int y,
    float& c0, float& c1, float& c2) {
    int x0, x1, y0, y1; float fx, fy;
    axis_tap(x, sx, w, x0, x1, fx);
    axis_tap(y, sy, h, y0, y1, fy);
    const u8* r0 = src + (size_t)y0 * pitch;
    const u8* r1 = src + (size_t)y1 * pitch;
    int a0 = 3 * x0, a1 = 3 * x1;
    float t, b;
    t = lerp2((float)__ldg(r0 + a0), (float)__ldg(r0 + a1), fx);
    b = lerp2((float)__ldg(r1 + a0), (float)__ldg(r1 + a1), fx);
    c0 = lerp2(t, b, fy);
    t = lerp2((float)__ldg(r0 + a0 + 1), (float)__ldg(r0 + a1 + 1), fx);
    b = lerp2((float)__ldg(r1 + a0 + 1), (float)__ldg(r1 + a1 + 1), fx);
    c1 = lerp2(t, b, fy);
    t = lerp2((float)__ldg(r0 + a0 + 2), (float)__ldg(r0 + a1 + 2), fx);
    b = lerp2((float)__ldg(r1 + a0 + 2), (float)__ldg(r1 + a1 + 2), fx);
    c2 = lerp2(t, b, fy);
}

// The 6 bytes at p (two neighbouring pixels) from aligned 32-bit words: lo = bytes 0-3,
// hi = bytes 4-5 in its low half. Every word read holds at least one of the 6 bytes.
// CS: streaming loads (ld.global.cs, evict-first) instead of the read-only path (__ldg).
template <bool CS> __device__ __forceinline__ unsigned ld32(const unsigned* p) {
    return CS ? __ldcs(p) : __ldg(p);
}

template <bool CS = false>
__device__ __forceinline__ void load6(const u8* p, unsigned& lo, unsigned& hi) {
    size_t a = (size_t)p;
    const unsigned* base = (const unsigned*)(a & ~(size_t)3);
    unsigned sh = (unsigned)(a & 3) * 8u;
    unsigned w0 = ld32<CS>(base), w1 = ld32<CS>(base + 1);
    unsigned w2 = (sh == 24u) ? ld32<CS>(base + 2) : 0u;
    lo = __funnelshift_r(w0, w1, sh);
    hi = __funnelshift_r(w1, w2, sh);
}

// byte k of v as float, exactly (0x4B0000kk = 2^23 + kk).
__device__ __forceinline__ float bytef(unsigned v, unsigned k) {
    return __uint_as_float(__byte_perm(v, 0x4B000000u, 0x7440u | k)) - 8388608.0f;
}

// Bilinear sample through load6: 4-6 word loads. Needs w >= 2.
template <bool CS = false>
__device__ __forceinline__ void sample_words(
    const u8* __restrict__ src, int pitch, int w, int h, float sx, float sy, int x, int y,
    float& c0, float& c1, float& c2) {
    int x0, x1, y0, y1; float fx, fy;
    axis_tap(x, sx, w, x0, x1, fx);
    axis_tap(y, sy, h, y0, y1, fy);
    if (x0 == x1) { x0 = w - 2; fx = 1.f; }  // right edge: same value, stays inside the row
    const u8* r0 = src + (size_t)y0 * pitch + 3 * x0;
    const u8* r1 = src + (size_t)y1 * pitch + 3 * x0;
    unsigned l0, h0, l1, h1;
    load6<CS>(r0, l0, h0);
    load6<CS>(r1, l1, h1);
    float t, b;
    t = lerp2(bytef(l0, 0), bytef(l0, 3), fx);
    b = lerp2(bytef(l1, 0), bytef(l1, 3), fx);
    c0 = lerp2(t, b, fy);
    t = lerp2(bytef(l0, 1), bytef(h0, 0), fx);
    b = lerp2(bytef(l1, 1), bytef(h1, 0), fx);
    c1 = lerp2(t, b, fy);
    t = lerp2(bytef(l0, 2), bytef(h0, 1), fx);
    b = lerp2(bytef(l1, 2), bytef(h1, 1), fx);
    c2 = lerp2(t, b, fy);
}

// Letterboxed value of output pixel (x, y) in the model's (BGR) plane order.
#define PIXEL(SAMPLE, x, y, c0, c1, c2)                                                 \
    float c0 = PAD_F, c1 = PAD_F, c2 = PAD_F;                                           \
    if ((x) < rw && (y) < rh) {                                                         \
        SAMPLE(src, pitch, src_w, src_h, sx, sy, (x), (y), c0, c1, c2);                 \
        if (swap_rb) { float tmp_ = c0; c0 = c2; c2 = tmp_; }                           \
    }

#define FUSED_PARAMS(OUT_T)                                                             \
    const u8* __restrict__ src, int src_w, int src_h, int pitch,                        \
    OUT_T* __restrict__ dst, int dst_w, int dst_h, int rw, int rh,                      \
    float sx, float sy, int swap_rb

// One thread per output pixel; ST stores one value (plain, or streaming: st.global.cs).
#define FUSED1(NAME, OUT_T, CVT, SAMPLE, ST)                                            \
extern "C" __global__ void __launch_bounds__(256) NAME(FUSED_PARAMS(OUT_T)) {          \
    int x = blockIdx.x * blockDim.x + threadIdx.x;                                      \
    int y = blockIdx.y * blockDim.y + threadIdx.y;                                      \
    if (x >= dst_w || y >= dst_h) return;                                               \
    PIXEL(SAMPLE, x, y, c0, c1, c2)                                                     \
    size_t plane = (size_t)dst_w * dst_h, o = (size_t)y * dst_w + x;                    \
    ST(dst + o, CVT(c0)); ST(dst + o + plane, CVT(c1)); ST(dst + o + 2 * plane, CVT(c2)); \
}

#define ID(v) (v)
#define ST_PLAIN(p, v) (*(p) = (v))
#define ST_CS(p, v) __stcs((p), (v))
FUSED1(fused_b1_f32, float, ID, sample_bytes, ST_PLAIN)
FUSED1(fused_w1_f32, float, ID, sample_words<false>, ST_PLAIN)
FUSED1(fused_b1_f16, unsigned short, f2h, sample_bytes, ST_PLAIN)
FUSED1(fused_w1_f16, unsigned short, f2h, sample_words<false>, ST_PLAIN)
// Word loads and stores with streaming cache hints (evict-first: every byte is touched once).
FUSED1(fused_c1_f32, float, ID, sample_words<true>, ST_CS)
FUSED1(fused_c1_f16, unsigned short, f2h, sample_words<true>, ST_CS)

// One thread per 4 consecutive float32 output pixels: one float4 store per plane.
#define FUSED4_F32(NAME, SAMPLE)                                                        \
extern "C" __global__ void __launch_bounds__(256) NAME(FUSED_PARAMS(float)) {          \
    int x = (blockIdx.x * blockDim.x + threadIdx.x) * 4;                                \
    int y = blockIdx.y * blockDim.y + threadIdx.y;                                      \
    if (x >= dst_w || y >= dst_h) return;                                               \
    float v[3][4];                                                                      \
    _Pragma("unroll")                                                                   \
    for (int k = 0; k < 4; ++k) {                                                       \
        PIXEL(SAMPLE, x + k, y, c0, c1, c2)                                             \
        v[0][k] = c0; v[1][k] = c1; v[2][k] = c2;                                       \
    }                                                                                   \
    size_t plane = (size_t)dst_w * dst_h, o = (size_t)y * dst_w + x;                    \
    _Pragma("unroll")                                                                   \
    for (int p = 0; p < 3; ++p)                                                         \
        *(float4*)(dst + o + p * plane) = make_float4(v[p][0], v[p][1], v[p][2], v[p][3]); \
}
FUSED4_F32(fused_b4_f32, sample_bytes)
FUSED4_F32(fused_w4_f32, sample_words<false>)

// One thread per 8 consecutive float16 output pixels: one 16-byte store per plane.
#define FUSED8_F16(NAME, SAMPLE)                                                        \
extern "C" __global__ void __launch_bounds__(256) NAME(FUSED_PARAMS(unsigned short)) { \
    int x = (blockIdx.x * blockDim.x + threadIdx.x) * 8;                                \
    int y = blockIdx.y * blockDim.y + threadIdx.y;                                      \
    if (x >= dst_w || y >= dst_h) return;                                               \
    unsigned v[3][4];                                                                   \
    _Pragma("unroll")                                                                   \
    for (int k = 0; k < 8; k += 2) {                                                    \
        PIXEL(SAMPLE, x + k, y, a0, a1, a2)                                             \
        PIXEL(SAMPLE, x + k + 1, y, b0, b1, b2)                                         \
        v[0][k / 2] = (unsigned)f2h(a0) | ((unsigned)f2h(b0) << 16);                    \
        v[1][k / 2] = (unsigned)f2h(a1) | ((unsigned)f2h(b1) << 16);                    \
        v[2][k / 2] = (unsigned)f2h(a2) | ((unsigned)f2h(b2) << 16);                    \
    }                                                                                   \
    size_t plane = (size_t)dst_w * dst_h, o = (size_t)y * dst_w + x;                    \
    _Pragma("unroll")                                                                   \
    for (int p = 0; p < 3; ++p)                                                         \
        *(uint4*)(dst + o + p * plane) = make_uint4(v[p][0], v[p][1], v[p][2], v[p][3]); \
}
FUSED8_F16(fused_b8_f16, sample_bytes)
FUSED8_F16(fused_w8_f16, sample_words<false>)

// One thread per output column x and R consecutive rows: the x tap is computed once, and the
// word loads of all R rows are issued before the first use (R x the bytes in flight).
#define FUSED_ROWS(NAME, OUT_T, CVT, R)                                                 \
extern "C" __global__ void __launch_bounds__(256) NAME(FUSED_PARAMS(OUT_T)) {          \
    int x = blockIdx.x * blockDim.x + threadIdx.x;                                      \
    int y0 = (blockIdx.y * blockDim.y + threadIdx.y) * R;                               \
    if (x >= dst_w || y0 >= dst_h) return;                                              \
    bool in_x = x < rw;                                                                 \
    int xa, xb; float fx;                                                               \
    axis_tap(x, sx, src_w, xa, xb, fx);                                                 \
    if (xa == xb) { xa = src_w - 2; fx = 1.f; }                                         \
    unsigned l0[R], h0[R], l1[R], h1[R]; float fy[R];                                   \
    _Pragma("unroll")                                                                   \
    for (int r = 0; r < R; ++r) {                                                       \
        l0[r] = h0[r] = l1[r] = h1[r] = 0u; fy[r] = 0.f;                                \
        if (in_x && y0 + r < rh) {                                                      \
            int ya, yb;                                                                 \
            axis_tap(y0 + r, sy, src_h, ya, yb, fy[r]);                                 \
            load6(src + (size_t)ya * pitch + 3 * xa, l0[r], h0[r]);                     \
            load6(src + (size_t)yb * pitch + 3 * xa, l1[r], h1[r]);                     \
        }                                                                               \
    }                                                                                   \
    size_t plane = (size_t)dst_w * dst_h;                                               \
    _Pragma("unroll")                                                                   \
    for (int r = 0; r < R; ++r) {                                                       \
        int y = y0 + r;                                                                 \
        if (y < dst_h) {                                                                \
            float c0 = PAD_F, c1 = PAD_F, c2 = PAD_F;                                   \
            if (in_x && y < rh) {                                                       \
                float t, b;                                                             \
                t = lerp2(bytef(l0[r], 0), bytef(l0[r], 3), fx);                        \
                b = lerp2(bytef(l1[r], 0), bytef(l1[r], 3), fx);                        \
                c0 = lerp2(t, b, fy[r]);                                                \
                t = lerp2(bytef(l0[r], 1), bytef(h0[r], 0), fx);                        \
                b = lerp2(bytef(l1[r], 1), bytef(h1[r], 0), fx);                        \
                c1 = lerp2(t, b, fy[r]);                                                \
                t = lerp2(bytef(l0[r], 2), bytef(h0[r], 1), fx);                        \
                b = lerp2(bytef(l1[r], 2), bytef(h1[r], 1), fx);                        \
                c2 = lerp2(t, b, fy[r]);                                                \
                if (swap_rb) { float tmp_ = c0; c0 = c2; c2 = tmp_; }                   \
            }                                                                           \
            size_t o = (size_t)y * dst_w + x;                                           \
            dst[o] = CVT(c0); dst[o + plane] = CVT(c1); dst[o + 2 * plane] = CVT(c2);   \
        }                                                                               \
    }                                                                                   \
}
FUSED_ROWS(fused_w1r2_f32, float, ID, 2)
FUSED_ROWS(fused_w1r4_f32, float, ID, 4)
FUSED_ROWS(fused_w1r2_f16, unsigned short, f2h, 2)
FUSED_ROWS(fused_w1r4_f16, unsigned short, f2h, 4)

// ---- shared-memory staged variant ----
// A block (128 x 2 threads) first copies, with coalesced 32-bit loads, the source bytes its
// 2 output rows need (4 source rows x the block's x span) into shared memory, so each source
// sector is requested from L2 once; then every thread samples from shared memory.
#define SMEM_ROW_WORDS 512

__device__ __forceinline__ void tap_x_adj(int x, float s, int w, int& xa, float& f) {
    int xb;
    axis_tap(x, s, w, xa, xb, f);
    if (xa == xb) { xa = w - 2; f = 1.f; }  // right edge: same value, stays inside the row
}

__device__ __forceinline__ void load6_smem(const unsigned* row, int off, unsigned& lo,
                                           unsigned& hi) {
    int base = off >> 2;
    unsigned sh = (unsigned)(off & 3) * 8u;
    unsigned w0 = row[base], w1 = row[base + 1];
    unsigned w2 = (sh == 24u) ? row[base + 2] : 0u;
    lo = __funnelshift_r(w0, w1, sh);
    hi = __funnelshift_r(w1, w2, sh);
}

#define FUSED_SMEM(NAME, OUT_T, CVT)                                                    \
extern "C" __global__ void __launch_bounds__(256) NAME(FUSED_PARAMS(OUT_T)) {          \
    __shared__ unsigned rows_s[4][SMEM_ROW_WORDS];                                      \
    const int nthreads = blockDim.x * blockDim.y;                                       \
    const int tid = threadIdx.y * blockDim.x + threadIdx.x;                             \
    const int x = blockIdx.x * blockDim.x + threadIdx.x;                                \
    const int y_first = blockIdx.y * blockDim.y;                                        \
    const int y = y_first + threadIdx.y;                                                \
    const int x_first = blockIdx.x * blockDim.x;                                        \
    const bool active = x < dst_w && y < dst_h;                                         \
    const size_t plane = (size_t)dst_w * dst_h;                                         \
    float c0 = PAD_F, c1 = PAD_F, c2 = PAD_F;                                           \
    if (x_first < rw && y_first < rh) {  /* uniform: the block covers image pixels */   \
        const int x_last = min(x_first + (int)blockDim.x, rw) - 1;                      \
        int xa0, xa1; float fdum;                                                       \
        tap_x_adj(x_first, sx, src_w, xa0, fdum);                                       \
        tap_x_adj(x_last, sx, src_w, xa1, fdum);                                        \
        const int byte_lo = 3 * xa0, byte_hi = 3 * xa1 + 6;                             \
        size_t wst[4]; int nw[4];                                                       \
        _Pragma("unroll")                                                               \
        for (int r = 0; r < 2; ++r) {                                                   \
            int ya, yb; float fy;                                                       \
            axis_tap(min(y_first + r, rh - 1), sy, src_h, ya, yb, fy);                  \
            _Pragma("unroll")                                                           \
            for (int k = 0; k < 2; ++k) {                                               \
                size_t row = (size_t)src + (size_t)(k ? yb : ya) * pitch;               \
                size_t lo = (row + byte_lo) & ~(size_t)3;                               \
                size_t hi = (row + byte_hi + 3) & ~(size_t)3;                           \
                wst[2 * r + k] = lo;                                                    \
                nw[2 * r + k] = (int)((hi - lo) >> 2);                                  \
            }                                                                           \
        }                                                                               \
        const bool fits = max(max(nw[0], nw[1]), max(nw[2], nw[3])) <= SMEM_ROW_WORDS   \
                          && nthreads == 256;                                           \
        if (fits) {                                                                     \
            unsigned v[4][2];                                                           \
            _Pragma("unroll")                                                           \
            for (int i = 0; i < 4; ++i)                                                 \
                _Pragma("unroll")                                                       \
                for (int j = 0; j < 2; ++j) {                                           \
                    int k = tid + j * 256;                                              \
                    v[i][j] = k < nw[i] ? __ldg((const unsigned*)wst[i] + k) : 0u;      \
                }                                                                       \
            _Pragma("unroll")                                                           \
            for (int i = 0; i < 4; ++i)                                                 \
                _Pragma("unroll")                                                       \
                for (int j = 0; j < 2; ++j)                                             \
                    if (tid + j * 256 < nw[i]) rows_s[i][tid + j * 256] = v[i][j];      \
            __syncthreads();                                                            \
        }                                                                               \
        if (active && x < rw && y < rh) {                                               \
            if (fits) {                                                                 \
                int xa, ya, yb; float fx, fy;                                           \
                tap_x_adj(x, sx, src_w, xa, fx);                                        \
                axis_tap(y, sy, src_h, ya, yb, fy);                                     \
                const int r = threadIdx.y;                                              \
                size_t sa = r ? wst[2] : wst[0], sb = r ? wst[3] : wst[1];              \
                int oa = (int)((size_t)src + (size_t)ya * pitch + 3 * xa - sa);         \
                int ob = (int)((size_t)src + (size_t)yb * pitch + 3 * xa - sb);         \
                unsigned l0, h0, l1, h1;                                                \
                load6_smem(rows_s[2 * r], oa, l0, h0);                                  \
                load6_smem(rows_s[2 * r + 1], ob, l1, h1);                              \
                float t, b;                                                             \
                t = lerp2(bytef(l0, 0), bytef(l0, 3), fx);                              \
                b = lerp2(bytef(l1, 0), bytef(l1, 3), fx);                              \
                c0 = lerp2(t, b, fy);                                                   \
                t = lerp2(bytef(l0, 1), bytef(h0, 0), fx);                              \
                b = lerp2(bytef(l1, 1), bytef(h1, 0), fx);                              \
                c1 = lerp2(t, b, fy);                                                   \
                t = lerp2(bytef(l0, 2), bytef(h0, 1), fx);                              \
                b = lerp2(bytef(l1, 2), bytef(h1, 1), fx);                              \
                c2 = lerp2(t, b, fy);                                                   \
            } else {                                                                    \
                sample_words(src, pitch, src_w, src_h, sx, sy, x, y, c0, c1, c2);       \
            }                                                                           \
            if (swap_rb) { float tmp_ = c0; c0 = c2; c2 = tmp_; }                       \
        }                                                                               \
    }                                                                                   \
    if (active) {                                                                       \
        size_t o = (size_t)y * dst_w + x;                                               \
        dst[o] = CVT(c0); dst[o + plane] = CVT(c1); dst[o + 2 * plane] = CVT(c2);       \
    }                                                                                   \
}
FUSED_SMEM(fused_s1_f32, float, ID)
FUSED_SMEM(fused_s1_f16, unsigned short, f2h)

// Several images in one launch (one per camera). Layout must match BATCH_DESC_DTYPE.
struct BatchDesc {
    const u8* src;
    void* dst;
    int src_w, src_h, pitch, rw, rh, swap_rb, use_words, pad_;
    float sx, sy;
};

#define FUSED_BATCH(NAME, OUT_T, CVT)                                                   \
extern "C" __global__ void __launch_bounds__(256) NAME(                                \
    const BatchDesc* __restrict__ descs, int dst_w, int dst_h) {                        \
    int x = blockIdx.x * blockDim.x + threadIdx.x;                                      \
    int y = blockIdx.y * blockDim.y + threadIdx.y;                                      \
    if (x >= dst_w || y >= dst_h) return;                                               \
    const BatchDesc d = descs[blockIdx.z];                                              \
    const u8* __restrict__ src = d.src;                                                 \
    int src_w = d.src_w, src_h = d.src_h, pitch = d.pitch, rw = d.rw, rh = d.rh;        \
    int swap_rb = d.swap_rb; float sx = d.sx, sy = d.sy;                                \
    float c0 = PAD_F, c1 = PAD_F, c2 = PAD_F;                                           \
    if (x < rw && y < rh) {                                                             \
        if (d.use_words)                                                                \
            sample_words<true>(src, pitch, src_w, src_h, sx, sy, x, y, c0, c1, c2);     \
        else sample_bytes(src, pitch, src_w, src_h, sx, sy, x, y, c0, c1, c2);          \
        if (swap_rb) { float tmp_ = c0; c0 = c2; c2 = tmp_; }                           \
    }                                                                                   \
    OUT_T* __restrict__ dst = (OUT_T*)d.dst;                                            \
    size_t plane = (size_t)dst_w * dst_h, o = (size_t)y * dst_w + x;                    \
    ST_CS(dst + o, CVT(c0)); ST_CS(dst + o + plane, CVT(c1));                           \
    ST_CS(dst + o + 2 * plane, CVT(c2));                                                \
}
FUSED_BATCH(fused_batch_f32, float, ID)
FUSED_BATCH(fused_batch_f16, unsigned short, f2h)

// ---- the unfused chain (seed's 4 kernels) ----
__device__ __forceinline__ u8 round_u8(float v) {
    int i = __float2int_rn(v);
    return (u8)min(max(i, 0), 255);
}

extern "C" __global__ void __launch_bounds__(256) unfused_resize_u8(
    const u8* __restrict__ src, int src_w, int src_h, int pitch,
    u8* __restrict__ out, int rw, int rh, float sx, float sy) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= rw || y >= rh) return;
    float c0, c1, c2;
    sample_bytes(src, pitch, src_w, src_h, sx, sy, x, y, c0, c1, c2);
    size_t o = ((size_t)y * rw + x) * 3;
    out[o] = round_u8(c0); out[o + 1] = round_u8(c1); out[o + 2] = round_u8(c2);
}

extern "C" __global__ void __launch_bounds__(256) unfused_letterbox_u8(
    const u8* __restrict__ resized, int rw, int rh, u8* __restrict__ canvas, int dst_w,
    int dst_h) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= dst_w || y >= dst_h) return;
    size_t o = ((size_t)y * dst_w + x) * 3;
    if (x < rw && y < rh) {
        size_t i = ((size_t)y * rw + x) * 3;
        canvas[o] = resized[i]; canvas[o + 1] = resized[i + 1]; canvas[o + 2] = resized[i + 2];
    } else {
        canvas[o] = 114; canvas[o + 1] = 114; canvas[o + 2] = 114;
    }
}

extern "C" __global__ void __launch_bounds__(256) unfused_nhwc2nchw_u8(
    const u8* __restrict__ canvas, u8* __restrict__ chw, int dst_w, int dst_h, int swap_rb) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= dst_w || y >= dst_h) return;
    size_t i = ((size_t)y * dst_w + x) * 3, plane = (size_t)dst_w * dst_h;
    size_t o = (size_t)y * dst_w + x;
    u8 a = canvas[i], b = canvas[i + 1], c = canvas[i + 2];
    chw[o] = swap_rb ? c : a; chw[o + plane] = b; chw[o + 2 * plane] = swap_rb ? a : c;
}

extern "C" __global__ void __launch_bounds__(256) unfused_to_float_f32(
    const u8* __restrict__ in, float* __restrict__ out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = (float)in[i];
}

extern "C" __global__ void __launch_bounds__(256) unfused_to_float_f16(
    const u8* __restrict__ in, unsigned short* __restrict__ out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = f2h((float)in[i]);
}

// Spin for about `cycles` clocks: stands in for inference in the overlap benchmark.
extern "C" __global__ void busy_wait(long long cycles) {
    long long t0 = clock64();
    while (clock64() - t0 < cycles) { }
}
'''

#: Every kernel name defined in KERNEL_SOURCE.
KERNEL_NAMES = (
    'fused_b1_f32', 'fused_w1_f32', 'fused_b1_f16', 'fused_w1_f16',
    'fused_c1_f32', 'fused_c1_f16',
    'fused_b4_f32', 'fused_w4_f32', 'fused_b8_f16', 'fused_w8_f16',
    'fused_w1r2_f32', 'fused_w1r4_f32', 'fused_w1r2_f16', 'fused_w1r4_f16',
    'fused_s1_f32', 'fused_s1_f16',
    'fused_batch_f32', 'fused_batch_f16',
    'unfused_resize_u8', 'unfused_letterbox_u8', 'unfused_nhwc2nchw_u8',
    'unfused_to_float_f32', 'unfused_to_float_f16', 'busy_wait',
)


@dataclass(frozen=True)
class FusedVariant:
    """One fused-kernel variant: its loads and output pixels (and rows) per thread.

    ``loads``: 'bytes', 'words' (32-bit words), 'cs-words' (words with streaming cache
    hints) or 'smem' (staged in shared memory); its first letter names the kernel.
    """

    name: str
    loads: str
    pixels_per_thread: int
    rows_per_thread: int = 1

    def kernel_name(self, dtype: np.dtype) -> str:
        """Return the CUDA kernel name of this variant for output ``dtype``."""
        suffix = dtype_suffix(dtype)
        rows = f'r{self.rows_per_thread}' if self.rows_per_thread > 1 else ''
        kernel = f'fused_{self.loads[0]}{self.pixels_per_thread}{rows}_{suffix}'
        if kernel not in KERNEL_NAMES:
            raise ValueError(f'variant {self.name} has no {suffix} kernel')
        return kernel


#: Variants by name; 'auto' picks among them with ``choose_variant``.
FUSED_VARIANTS: Dict[str, Tuple[FusedVariant, ...]] = {
    'float32': (FusedVariant('b1', 'bytes', 1), FusedVariant('w1', 'words', 1),
                FusedVariant('c1', 'cs-words', 1),
                FusedVariant('b4', 'bytes', 4), FusedVariant('w4', 'words', 4),
                FusedVariant('w1r2', 'words', 1, 2), FusedVariant('w1r4', 'words', 1, 4),
                FusedVariant('s1', 'smem', 1)),
    'float16': (FusedVariant('b1', 'bytes', 1), FusedVariant('w1', 'words', 1),
                FusedVariant('c1', 'cs-words', 1),
                FusedVariant('b8', 'bytes', 8), FusedVariant('w8', 'words', 8),
                FusedVariant('w1r2', 'words', 1, 2), FusedVariant('w1r4', 'words', 1, 4),
                FusedVariant('s1', 'smem', 1)),
}
#: Variants whose loads are 32-bit words (need W >= 2 and a 4-byte aligned source).
WORD_LOADS = ('words', 'cs-words', 'smem')
#: Shared-memory words per staged source row of the 's1' kernels (SMEM_ROW_WORDS in the source).
SMEM_ROW_WORDS = 512
#: Default variant per output dtype (the fastest measured on the H100, see
#: benchmarks/results/preprocess_h100.md), used when its requirements hold.
DEFAULT_VARIANT = {'float32': 'c1', 'float16': 'c1'}


def dtype_suffix(dtype: np.dtype) -> str:
    """Return the kernel-name suffix ('f32' / 'f16') of output ``dtype``."""
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return 'f32'
    if dtype == np.float16:
        return 'f16'
    raise ValueError(f'output dtype must be float32 or float16, got {dtype}')


def smem_span_fits(sx: float) -> bool:
    """Return True when a 128-pixel block's source span (x factor ``sx``) fits the 's1' rows.

    The span of 128 output pixels is at most 3 * (127 * sx + 3) bytes, plus up to 6 bytes of
    word alignment.
    """
    return 3 * (127 * sx + 3) + 6 <= 4 * SMEM_ROW_WORDS


def variant_fits(variant: FusedVariant, src_w: int, src_ptr: int, dst_w: int,
                 dst_ptr: int, dtype: np.dtype, sx: float = 1.0) -> bool:
    """Return True when ``variant``'s alignment / size requirements hold for this launch."""
    if variant.loads in WORD_LOADS and (src_w < 2 or src_ptr % 4):
        return False
    if variant.loads == 'smem' and not smem_span_fits(sx):
        return False
    if variant.pixels_per_thread > 1:
        if dst_w % variant.pixels_per_thread:
            return False
        if dst_ptr % 16:
            return False
    return True


def choose_variant(dtype: np.dtype, src_w: int, src_ptr: int, dst_w: int, dst_ptr: int,
                   preferred: str = 'auto', sx: float = 1.0) -> FusedVariant:
    """Pick the fused variant: ``preferred`` (or the default) if it fits, else one that does.

    The byte-load, one-pixel-per-thread variant ('b1') fits every launch and is the last resort.
    """
    variants = {v.name: v for v in FUSED_VARIANTS[np.dtype(dtype).name]}
    name = DEFAULT_VARIANT[np.dtype(dtype).name] if preferred == 'auto' else preferred
    if name not in variants:
        raise ValueError(f"unknown fused variant '{name}' (known: {', '.join(variants)})")
    for candidate in (variants[name], variants['w1'], variants['b1']):
        if variant_fits(candidate, src_w, src_ptr, dst_w, dst_ptr, dtype, sx):
            return candidate
    return variants['b1']  # pragma: no cover - b1 always fits


def launch_geometry(width: int, height: int, pixels_per_thread: int = 1, depth: int = 1,
                    block: Tuple[int, int] = BLOCK, rows_per_thread: int = 1
                    ) -> Tuple[Tuple[int, int, int], Tuple[int, int, int]]:
    """Return ``(grid, block)`` covering width x height x depth pixels.

    Each thread covers ``pixels_per_thread`` consecutive pixels of a row (width must be a
    multiple) and ``rows_per_thread`` consecutive rows (the last rows may be partial).
    """
    if min(width, height, pixels_per_thread, depth, rows_per_thread) < 1:
        raise ValueError(f'launch needs positive sizes, got {width}x{height}x{depth} '
                         f'with {pixels_per_thread}x{rows_per_thread} pixels per thread')
    if width % pixels_per_thread:
        raise ValueError(f'width {width} is not a multiple of {pixels_per_thread}')
    threads_x = width // pixels_per_thread
    threads_y = -(-height // rows_per_thread)
    grid = (-(-threads_x // block[0]), -(-threads_y // block[1]), depth)
    return grid, (block[0], block[1], 1)


Geometry = Tuple[Tuple[int, int, int], Tuple[int, int, int]]


def linear_geometry(n: int, block: int = 256) -> Geometry:
    """Return ``(grid, block)`` for a 1-D kernel over ``n`` elements."""
    if n < 1:
        raise ValueError(f'launch needs n >= 1, got {n}')
    return (-(-n // block), 1, 1), (block, 1, 1)


def axis_factors(lb: LetterboxParams) -> Tuple[np.float32, np.float32]:
    """Return the per-axis OpenCV factors (W / rw, H / rh) as float32 kernel arguments."""
    return np.float32(lb.src_w / lb.resized_w), np.float32(lb.src_h / lb.resized_h)


def fused_args(src_ptr: int, pitch: int, dst_ptr: int, lb: LetterboxParams,
               swap_rb: bool) -> tuple:
    """Pack the arguments of a ``fused_*`` kernel (order and C types as in FUSED_PARAMS).

    Pointers are Python ints (cuda.core passes them as pointer-sized values); every scalar is a
    NumPy int32 / float32 so it is passed with the C type the kernel declares.
    """
    if pitch < 3 * lb.src_w:
        raise ValueError(f'row pitch {pitch} is smaller than 3 * width ({3 * lb.src_w})')
    sx, sy = axis_factors(lb)
    i32 = np.int32
    return (int(src_ptr), i32(lb.src_w), i32(lb.src_h), i32(pitch), int(dst_ptr),
            i32(lb.in_w), i32(lb.in_h), i32(lb.resized_w), i32(lb.resized_h), sx, sy,
            i32(1 if swap_rb else 0))


#: Layout of the C ``struct BatchDesc`` (56 bytes, 8-byte aligned).
BATCH_DESC_DTYPE = np.dtype([
    ('src', np.uint64), ('dst', np.uint64),
    ('src_w', np.int32), ('src_h', np.int32), ('pitch', np.int32), ('rw', np.int32),
    ('rh', np.int32), ('swap_rb', np.int32), ('use_words', np.int32), ('pad_', np.int32),
    ('sx', np.float32), ('sy', np.float32),
], align=True)


def pack_batch_descriptor(out: np.ndarray, src_ptr: int, pitch: int, dst_ptr: int,
                          lb: LetterboxParams, swap_rb: bool) -> None:
    """Fill one ``BATCH_DESC_DTYPE`` record (a 0-d or 1-element view) for ``fused_batch_*``."""
    if pitch < 3 * lb.src_w:
        raise ValueError(f'row pitch {pitch} is smaller than 3 * width ({3 * lb.src_w})')
    sx, sy = axis_factors(lb)
    out['src'] = src_ptr
    out['dst'] = dst_ptr
    out['src_w'], out['src_h'], out['pitch'] = lb.src_w, lb.src_h, pitch
    out['rw'], out['rh'] = lb.resized_w, lb.resized_h
    out['swap_rb'] = 1 if swap_rb else 0
    out['use_words'] = 1 if (lb.src_w >= 2 and src_ptr % 4 == 0) else 0
    out['pad_'] = 0
    out['sx'], out['sy'] = sx, sy


# ---- compilation (once per process and options) ----
_CACHE: Dict[Tuple[str, Tuple[str, ...]], object] = {}
_CACHE_LOCK = threading.Lock()


def compile_kernels(arch: str, lineinfo: bool = False):
    """Compile KERNEL_SOURCE with NVRTC for ``arch`` ('sm_90', ...); return the ObjectCode.

    Cached per process, keyed by (arch, options); thread-safe. Needs NVRTC but no GPU.
    """
    core = require('cuda.core', 'CUDA preprocessing', INSTALL_HINT)
    options = ('lineinfo',) if lineinfo else ()
    key = (arch, options)
    with _CACHE_LOCK:
        module = _CACHE.get(key)
        if module is None:
            program = core.Program(KERNEL_SOURCE, 'c++', options=core.ProgramOptions(
                name='tensorrt_yolox_preprocess', arch=arch, std='c++17', lineinfo=lineinfo))
            try:
                module = program.compile('cubin')
            finally:
                program.close()
            _CACHE[key] = module
        return module


def cached_modules() -> int:
    """Return how many compiled modules the cache holds (for tests)."""
    with _CACHE_LOCK:
        return len(_CACHE)
