// Device helpers of the preprocessing kernels: OpenCV INTER_LINEAR taps, ONE bilinear blend,
// and one tap loader per input encoding (the FMT_* ids are image.ENCODINGS' kernel_format).
// Included by preprocess.cu (runtime) and benchmarks/cuda_variants/variants.cu (benchmark variants).
#pragma once
#define PAD_F 114.0f
typedef unsigned char u8;

// Input encodings (image.py ENCODINGS[...].kernel_format).
#define FMT_BGR8 0
#define FMT_RGB8 1
#define FMT_BGRA8 2
#define FMT_RGBA8 3
#define FMT_MONO8 4
#define FMT_UYVY 5   // ROS "yuv422": U0 Y0 V0 Y1
#define FMT_YUYV 6   // ROS "yuv422_yuy2": Y0 U0 Y1 V0

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

// Three channels of one tap, in the model's B, G, R order.
struct Px { float b, g, r; };

// THE bilinear blend: taps (y0, x0), (y0, x1), (y1, x0), (y1, x1); weights fx, fy.
__device__ __forceinline__ Px blend(Px p00, Px p01, Px p10, Px p11, float fx, float fy) {
    Px o;
    o.b = lerp2(lerp2(p00.b, p01.b, fx), lerp2(p10.b, p11.b, fx), fy);
    o.g = lerp2(lerp2(p00.g, p01.g, fx), lerp2(p10.g, p11.g, fx), fy);
    o.r = lerp2(lerp2(p00.r, p01.r, fx), lerp2(p10.r, p11.r, fx), fy);
    return o;
}

// OpenCV's BT.601 video-range YUV -> BGR (color_yuv: ITUR_BT_601_*, 20-bit fixed point),
// exact to the byte it produces.
__device__ __forceinline__ Px yuv_px(int y, int u, int v) {
    const int half = 1 << 19;
    int yy = max(0, y - 16) * 1220542;
    int uu = u - 128, vv = v - 128;
    Px p;
    p.r = (float)min(max((yy + half + 1673527 * vv) >> 20, 0), 255);
    p.g = (float)min(max((yy + half - 852492 * vv - 409993 * uu) >> 20, 0), 255);
    p.b = (float)min(max((yy + half + 2116026 * uu) >> 20, 0), 255);
    return p;
}

// One source pixel x of a row, as B, G, R (byte loads through the read-only path).
template <int FMT> __device__ __forceinline__ Px load_px(const u8* __restrict__ row, int x) {
    Px p;
    if (FMT == FMT_BGR8 || FMT == FMT_RGB8) {
        const u8* q = row + 3 * x;
        float c0 = (float)__ldg(q), c1 = (float)__ldg(q + 1), c2 = (float)__ldg(q + 2);
        p.b = FMT == FMT_BGR8 ? c0 : c2; p.g = c1; p.r = FMT == FMT_BGR8 ? c2 : c0;
    } else if (FMT == FMT_BGRA8 || FMT == FMT_RGBA8) {
        const u8* q = row + 4 * x;
        float c0 = (float)__ldg(q), c1 = (float)__ldg(q + 1), c2 = (float)__ldg(q + 2);
        p.b = FMT == FMT_BGRA8 ? c0 : c2; p.g = c1; p.r = FMT == FMT_BGRA8 ? c2 : c0;
    } else if (FMT == FMT_MONO8) {
        float v = (float)__ldg(row + x);
        p.b = v; p.g = v; p.r = v;
    } else {  // 4:2:2, two pixels per 4-byte macro-pixel
        const u8* q = row + 4 * (x >> 1);
        int odd = x & 1;
        if (FMT == FMT_UYVY) p = yuv_px(__ldg(q + 1 + 2 * odd), __ldg(q), __ldg(q + 2));
        else p = yuv_px(__ldg(q + 2 * odd), __ldg(q + 1), __ldg(q + 3));
    }
    return p;
}

// Bilinear sample of output pixel (x, y) of a FMT source: 4 taps, one blend.
template <int FMT>
__device__ __forceinline__ Px sample_fmt(const u8* __restrict__ src, int pitch, int w, int h,
                                         float sx, float sy, int x, int y) {
    int x0, x1, y0, y1; float fx, fy;
    axis_tap(x, sx, w, x0, x1, fx);
    axis_tap(y, sy, h, y0, y1, fy);
    const u8* r0 = src + (size_t)y0 * pitch;
    const u8* r1 = src + (size_t)y1 * pitch;
    return blend(load_px<FMT>(r0, x0), load_px<FMT>(r0, x1), load_px<FMT>(r1, x0),
                 load_px<FMT>(r1, x1), fx, fy);
}

// Any encoding, chosen at run time (uniform per launch): used where one kernel serves all.
__device__ __forceinline__ Px sample_any(int fmt, const u8* __restrict__ src, int pitch, int w,
                                         int h, float sx, float sy, int x, int y) {
    switch (fmt) {
        case FMT_RGB8: return sample_fmt<FMT_RGB8>(src, pitch, w, h, sx, sy, x, y);
        case FMT_BGRA8: return sample_fmt<FMT_BGRA8>(src, pitch, w, h, sx, sy, x, y);
        case FMT_RGBA8: return sample_fmt<FMT_RGBA8>(src, pitch, w, h, sx, sy, x, y);
        case FMT_MONO8: return sample_fmt<FMT_MONO8>(src, pitch, w, h, sx, sy, x, y);
        case FMT_UYVY: return sample_fmt<FMT_UYVY>(src, pitch, w, h, sx, sy, x, y);
        case FMT_YUYV: return sample_fmt<FMT_YUYV>(src, pitch, w, h, sx, sy, x, y);
        default: return sample_fmt<FMT_BGR8>(src, pitch, w, h, sx, sy, x, y);
    }
}

// ---- word loads of 3-byte pixels (bgr8 / rgb8: the fast path) ----
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

// Two neighbouring 3-byte pixels (lo, hi as from load6) -> the left and right taps.
__device__ __forceinline__ void unpack6(unsigned lo, unsigned hi, Px& left, Px& right) {
    left.b = bytef(lo, 0); left.g = bytef(lo, 1); left.r = bytef(lo, 2);
    right.b = bytef(lo, 3); right.g = bytef(hi, 0); right.r = bytef(hi, 1);
}

// The bilinear value of two rows of word-loaded taps (channel order as stored).
__device__ __forceinline__ Px blend_words(unsigned l0, unsigned h0, unsigned l1, unsigned h1,
                                          float fx, float fy) {
    Px a, b, c, d;
    unpack6(l0, h0, a, b);
    unpack6(l1, h1, c, d);
    return blend(a, b, c, d, fx, fy);
}

// Bilinear sample through load6: 4-6 word loads. Needs w >= 2. Channel order as stored.
template <bool CS = false>
__device__ __forceinline__ Px sample_words(const u8* __restrict__ src, int pitch, int w, int h,
                                           float sx, float sy, int x, int y) {
    int x0, x1, y0, y1; float fx, fy;
    axis_tap(x, sx, w, x0, x1, fx);
    axis_tap(y, sy, h, y0, y1, fy);
    if (x0 == x1) { x0 = w - 2; fx = 1.f; }  // right edge: same value, stays inside the row
    unsigned l0, h0, l1, h1;
    load6<CS>(src + (size_t)y0 * pitch + 3 * x0, l0, h0);
    load6<CS>(src + (size_t)y1 * pitch + 3 * x0, l1, h1);
    return blend_words(l0, h0, l1, h1, fx, fy);
}

// Bilinear sample with byte loads, channel order as stored (bgr8 layout).
__device__ __forceinline__ Px sample_bytes(const u8* __restrict__ src, int pitch, int w, int h,
                                           float sx, float sy, int x, int y) {
    return sample_fmt<FMT_BGR8>(src, pitch, w, h, sx, sy, x, y);
}

// Letterboxed value of output pixel (x, y) in the model's (BGR) plane order: c0, c1, c2.
#define PIXEL(SAMPLE, x, y, c0, c1, c2)                                                 \
    float c0 = PAD_F, c1 = PAD_F, c2 = PAD_F;                                           \
    if ((x) < rw && (y) < rh) {                                                         \
        Px px_ = SAMPLE(src, pitch, src_w, src_h, sx, sy, (x), (y));                    \
        c0 = px_.b; c1 = px_.g; c2 = px_.r;                                             \
        if (swap_rb) { float tmp_ = c0; c0 = c2; c2 = tmp_; }                           \
    }

#define FUSED_PARAMS(OUT_T)                                                             \
    const u8* __restrict__ src, int src_w, int src_h, int pitch,                        \
    OUT_T* __restrict__ dst, int dst_w, int dst_h, int rw, int rh,                      \
    float sx, float sy, int swap_rb

#define ID(v) (v)
#define ST_PLAIN(p, v) (*(p) = (v))
#define ST_CS(p, v) __stcs((p), (v))

// Several images in one launch (one per camera). Layout must match BATCH_DESC_DTYPE.
struct BatchDesc {
    const u8* src;
    void* dst;
    int src_w, src_h, pitch, rw, rh, swap_rb, use_words, fmt;
    float sx, sy;
};
