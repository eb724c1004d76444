// Runtime preprocessing kernels (contract: tensorrt_yolox_py/cuda/kernels.py).
// Benchmark-only variants and the seed's unfused chain live in benchmarks/cuda_variants/variants.cu.
#include "sampling.cuh"

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

// bgr8 / rgb8 (swap_rb): byte loads (any alignment), word loads, and word loads + streaming
// cache hints (the default: every byte is touched once, evict-first).
FUSED1(fused_b1_f32, float, ID, sample_bytes, ST_PLAIN)
FUSED1(fused_b1_f16, unsigned short, f2h, sample_bytes, ST_PLAIN)
FUSED1(fused_w1_f32, float, ID, sample_words<false>, ST_PLAIN)
FUSED1(fused_w1_f16, unsigned short, f2h, sample_words<false>, ST_PLAIN)
FUSED1(fused_c1_f32, float, ID, sample_words<true>, ST_CS)
FUSED1(fused_c1_f16, unsigned short, f2h, sample_words<true>, ST_CS)

// Every other encoding (bgra8, rgba8, mono8, yuv422, yuv422_yuy2): the conversion happens in
// the tap loads of the same single pass (no extra kernel, no intermediate buffer).
#define FUSED_FMT(NAME, OUT_T, CVT)                                                     \
extern "C" __global__ void __launch_bounds__(256) NAME(FUSED_PARAMS(OUT_T), int fmt) { \
    int x = blockIdx.x * blockDim.x + threadIdx.x;                                      \
    int y = blockIdx.y * blockDim.y + threadIdx.y;                                      \
    if (x >= dst_w || y >= dst_h) return;                                               \
    float c0 = PAD_F, c1 = PAD_F, c2 = PAD_F;                                           \
    if (x < rw && y < rh) {                                                             \
        Px p = sample_any(fmt, src, pitch, src_w, src_h, sx, sy, x, y);                 \
        c0 = p.b; c1 = p.g; c2 = p.r;                                                   \
    }                                                                                   \
    (void)swap_rb;                                                                      \
    size_t plane = (size_t)dst_w * dst_h, o = (size_t)y * dst_w + x;                    \
    ST_CS(dst + o, CVT(c0)); ST_CS(dst + o + plane, CVT(c1));                           \
    ST_CS(dst + o + 2 * plane, CVT(c2));                                                \
}
FUSED_FMT(fused_fmt_f32, float, ID)
FUSED_FMT(fused_fmt_f16, unsigned short, f2h)

// The two output layouts of the batch kernels: planar NCHW (three planes), and NHWC
// (channels_last: the three values of a pixel side by side, what a channels_last network reads
// without a transpose). BASE is the image's output, (X, Y) the pixel, W x H the model canvas.
#define STORE_NCHW(OUT_T, CVT, BASE, X, Y, W, H, C0, C1, C2) {                          \
    OUT_T* __restrict__ out_ = (OUT_T*)(BASE);                                          \
    size_t plane_ = (size_t)(W) * (H), o_ = (size_t)(Y) * (W) + (X);                    \
    ST_CS(out_ + o_, CVT(C0)); ST_CS(out_ + o_ + plane_, CVT(C1));                      \
    ST_CS(out_ + o_ + 2 * plane_, CVT(C2));                                             \
}
#define STORE_NHWC(OUT_T, CVT, BASE, X, Y, W, H, C0, C1, C2) {                          \
    OUT_T* __restrict__ out_ = (OUT_T*)(BASE) + ((size_t)(Y) * (W) + (X)) * 3;          \
    ST_CS(out_, CVT(C0)); ST_CS(out_ + 1, CVT(C1)); ST_CS(out_ + 2, CVT(C2));           \
}

// Several images (cameras) in one launch; blockIdx.z selects the image. bgr8 / rgb8 with
// aligned word loads use the c1 loads, every other case the tap loaders of its encoding.
#define FUSED_BATCH(NAME, OUT_T, CVT, STORE)                                            \
extern "C" __global__ void __launch_bounds__(256) NAME(                                \
    const BatchDesc* __restrict__ descs, int dst_w, int dst_h) {                        \
    int x = blockIdx.x * blockDim.x + threadIdx.x;                                      \
    int y = blockIdx.y * blockDim.y + threadIdx.y;                                      \
    if (x >= dst_w || y >= dst_h) return;                                               \
    const BatchDesc d = descs[blockIdx.z];                                              \
    float c0 = PAD_F, c1 = PAD_F, c2 = PAD_F;                                           \
    if (x < d.rw && y < d.rh) {                                                         \
        Px p = d.use_words                                                              \
            ? sample_words<true>(d.src, d.pitch, d.src_w, d.src_h, d.sx, d.sy, x, y)    \
            : sample_any(d.fmt, d.src, d.pitch, d.src_w, d.src_h, d.sx, d.sy, x, y);    \
        c0 = p.b; c1 = p.g; c2 = p.r;                                                   \
        if (d.use_words && d.swap_rb) { float tmp_ = c0; c0 = c2; c2 = tmp_; }          \
    }                                                                                   \
    STORE(OUT_T, CVT, d.dst, x, y, dst_w, dst_h, c0, c1, c2)                            \
}
FUSED_BATCH(fused_batch_f32, float, ID, STORE_NCHW)
FUSED_BATCH(fused_batch_f16, unsigned short, f2h, STORE_NCHW)
FUSED_BATCH(fused_batch_nhwc_f32, float, ID, STORE_NHWC)
FUSED_BATCH(fused_batch_nhwc_f16, unsigned short, f2h, STORE_NHWC)
