// arm64 NEON matmul micro-kernels: activation quantization to BlockQ16A and integer block dot
// products (16-bit multiplies widened into 32-bit lanes, vmlal_s16) against Q4_0/Q4_1/Q8_0 weights
// packed in 16-row panels (matmul_kernels.h). Per block the integer sums are exact and the float
// accumulation follows the scalar kernel operation for operation, so NEON results equal the
// scalar fallback bit for bit. Float weights
// (F32/F16/BF16) in k-major panels: 16 rows x 6 tokens of FMA chains, also equal to the scalar
// kernel. NEON is part of the arm64
// baseline: no run-time check is needed. Compiled only on aarch64.
#if defined(__aarch64__)
#include <arm_neon.h>

#include <cstring>
#include <string>
#include <type_traits>

#include "longbow/backend/cpu/cpu_ops.h"
#include "longbow/backend/cpu/matmul/matmul_kernels.h"

namespace longbow::cpu {

namespace {

void neon_quantize_q16a(const float* x, BlockQ16A* y, int64_t K) {
  for (int64_t b = 0; b < K / QK; ++b, x += QK) {
    float32x4_t v[8];
    float32x4_t m = vdupq_n_f32(0.f);
    for (int i = 0; i < 8; ++i) {
      v[i] = vld1q_f32(x + 4 * i);
      m = vmaxq_f32(m, vabsq_f32(v[i]));
    }
    const float amax = vmaxvq_f32(m);
    const bool live = amax >= Q16_MIN_AMAX;  // else the whole block quantizes to zero
    const float d = live ? amax / Q16_MAX : 0.f;
    const float id = live ? Q16_MAX / amax : 0.f;
    int32x4_t sum = vdupq_n_s32(0);
    for (int i = 0; i < 8; ++i) {
      const int32x4_t q = vcvtnq_s32_f32(vmulq_n_f32(v[i], id));  // round to nearest even
      sum = vaddq_s32(sum, q);
      vst1_s16(y[b].qs + 4 * i, vmovn_s32(q));
    }
    y[b].d = d;
    y[b].s = d * static_cast<float>(vaddvq_s32(sum));
  }
}

// acc[0..8) += the 16 rows' int16 pairs in w[0..4) (4 rows each, e = 0/1 interleaved) times the
// activation pair xp = (x[2j], x[2j+1], x[2j], ...); acc[2i] holds rows 4i, 4i+1 and acc[2i+1]
// rows 4i+2, 4i+3, each as (e = 0, e = 1) partial products.
inline void pair_mla(const int16x8_t w[4], int16x8_t xp, int32x4_t* acc) {
  for (int i = 0; i < 4; ++i) {
    acc[2 * i] = vmlal_s16(acc[2 * i], vget_low_s16(w[i]), vget_low_s16(xp));
    acc[2 * i + 1] = vmlal_high_s16(acc[2 * i + 1], w[i], xp);
  }
}

inline int16x8_t pair_of(const int16_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return vreinterpretq_s16_s32(vdupq_n_s32(v));
}

// 32 panel bytes (16 rows x 2) widened to int16: Q8_0 signed, Q4 as low (nibble) or high halves.
inline void widen_s8(const int8_t* q, int16x8_t w[4]) {
  const int8x16_t a = vld1q_s8(q), b = vld1q_s8(q + 16);
  w[0] = vmovl_s8(vget_low_s8(a)), w[1] = vmovl_high_s8(a);
  w[2] = vmovl_s8(vget_low_s8(b)), w[3] = vmovl_high_s8(b);
}
inline void widen_u8(uint8x16_t a, uint8x16_t b, int16x8_t w[4]) {
  w[0] = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(a))),
  w[1] = vreinterpretq_s16_u16(vmovl_high_u8(a));
  w[2] = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(b))),
  w[3] = vreinterpretq_s16_u16(vmovl_high_u8(b));
}

inline float32x4_t f16x4(const uint16_t* h) {
  return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h)));
}

// One 16-row panel against MR activation rows, in the operation order of matmul_kernels.h.
template <DType T, int MR>
void panel_mr(const void* panel, const BlockQ16A* xq, size_t ldx, int64_t nb, float* out,
              size_t ldo) {
  float32x4_t acc[MR][4];
  for (int m = 0; m < MR; ++m) {
    for (int i = 0; i < 4; ++i) acc[m][i] = vdupq_n_f32(0.f);
  }
  using Block = std::conditional_t<T == DType::Q8_0, PanelQ8, PanelQ4>;
  for (int64_t b = 0; b < nb; ++b) {
    const char* ahead =
        reinterpret_cast<const char*>(static_cast<const Block*>(panel) + b + PANEL_PREFETCH_BLOCKS);
    for (size_t off = 0; off < sizeof(Block); off += 64) __builtin_prefetch(ahead + off);
    const BlockQ16A* xb = xq + b;
    int32x4_t isum[MR][8];
    for (int m = 0; m < MR; ++m) {
      for (int i = 0; i < 8; ++i) isum[m][i] = vdupq_n_s32(0);
    }
    int16x8_t w[4];
    const uint16_t* d;
    const uint16_t* mq = nullptr;
    if constexpr (T == DType::Q8_0) {
      const PanelQ8& pk = static_cast<const PanelQ8*>(panel)[b];
      d = pk.d;
      for (int j = 0; j < QK / 2; ++j) {
        widen_s8(pk.qs + 32 * j, w);
        for (int m = 0; m < MR; ++m) pair_mla(w, pair_of(xb[m * ldx].qs + 2 * j), isum[m]);
      }
    } else {
      const PanelQ4& pk = static_cast<const PanelQ4*>(panel)[b];
      d = pk.d, mq = pk.m;
      const uint8x16_t nibble = vdupq_n_u8(0x0F);
      for (int t = 0; t < QK / 4; ++t) {
        const uint8x16_t a = vld1q_u8(pk.qs + 32 * t), c = vld1q_u8(pk.qs + 32 * t + 16);
        widen_u8(vandq_u8(a, nibble), vandq_u8(c, nibble), w);
        for (int m = 0; m < MR; ++m) pair_mla(w, pair_of(xb[m * ldx].qs + 2 * t), isum[m]);
        widen_u8(vshrq_n_u8(a, 4), vshrq_n_u8(c, 4), w);
        for (int m = 0; m < MR; ++m)
          pair_mla(w, pair_of(xb[m * ldx].qs + 2 * (t + QK / 4)), isum[m]);
      }
    }
    for (int i = 0; i < 4; ++i) {
      const float32x4_t dw = f16x4(d + 4 * i);
      float32x4_t mw = vdupq_n_f32(0.f);
      if constexpr (T == DType::Q4_1) mw = f16x4(mq + 4 * i);
      if constexpr (T == DType::Q4_0) mw = vmulq_n_f32(dw, -8.f);
      for (int m = 0; m < MR; ++m) {
        const BlockQ16A& x = xb[m * ldx];
        const int32x4_t rows = vpaddq_s32(isum[m][2 * i], isum[m][2 * i + 1]);  // rows 4i .. 4i+3
        acc[m][i] = vfmaq_f32(acc[m][i], vcvtq_f32_s32(rows), vmulq_n_f32(dw, x.d));
        if constexpr (T != DType::Q8_0) acc[m][i] = vfmaq_f32(acc[m][i], mw, vdupq_n_f32(x.s));
      }
    }
  }
  for (int m = 0; m < MR; ++m) {
    for (int i = 0; i < 4; ++i) vst1q_f32(out + m * ldo + 4 * i, acc[m][i]);
  }
}

template <DType T>
void panel_t(const void* panel, const BlockQ16A* xq, size_t ldx, int mr, int64_t nb, float* out,
             size_t ldo) {
  for (; mr >= 2; mr -= 2, xq += 2 * ldx, out += 2 * ldo)
    panel_mr<T, 2>(panel, xq, ldx, nb, out, ldo);
  if (mr == 1) panel_mr<T, 1>(panel, xq, ldx, nb, out, ldo);
}

void neon_dot_q(DType t, const void* panel, const BlockQ16A* xq, size_t ldx, int mr, int64_t nb,
                float* out, size_t ldo) {
  dispatch_panel<panel_t<DType::Q4_0>, panel_t<DType::Q4_1>, panel_t<DType::Q8_0>>(
      t, panel, xq, ldx, mr, nb, out, ldo);
}

// 4 weights (f32) at element i of a float panel.
template <DType T>
inline float32x4_t load_w4(const uint8_t* panel, int64_t i) {
  if constexpr (T == DType::F32) {
    return vld1q_f32(reinterpret_cast<const float*>(panel) + i);
  } else if constexpr (T == DType::F16) {
    return f16x4(reinterpret_cast<const uint16_t*>(panel) + i);
  } else {
    const uint16x4_t h = vld1_u16(reinterpret_cast<const uint16_t*>(panel) + i);
    return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
  }
}

// One panel (16 rows = 4 q registers) x MR tokens: per k, 4 loads and 4 * MR fused
// multiply-adds (vfmaq_n_f32), one chain per (row, token) as in the scalar kernel.
template <DType T, int MR>
void float_tile(const uint8_t* panel, const float* xt, int64_t K, float* out, size_t ldo) {
  float32x4_t acc[MR][4];
  for (int m = 0; m < MR; ++m)
    for (int i = 0; i < 4; ++i) acc[m][i] = vdupq_n_f32(0.f);
  for (int64_t k = 0; k < K; ++k) {
    float32x4_t w[4];
    for (int i = 0; i < 4; ++i) w[i] = load_w4<T>(panel, k * PANEL_ROWS + 4 * i);
    for (int m = 0; m < MR; ++m) {
      const float xv = xt[k * MR + m];
      for (int i = 0; i < 4; ++i) acc[m][i] = vfmaq_n_f32(acc[m][i], w[i], xv);
    }
  }
  for (int m = 0; m < MR; ++m)
    for (int i = 0; i < 4; ++i) vst1q_f32(out + m * ldo + 4 * i, acc[m][i]);
}

template <DType T>
void float_panel(const uint8_t* panels, size_t panel_stride, int np, const float* xt, int mr,
                 int64_t K, float* out, size_t ldo) {
  using Tile = void (*)(const uint8_t*, const float*, int64_t, float*, size_t);
  static constexpr Tile tiles[] = {float_tile<T, 1>, float_tile<T, 2>, float_tile<T, 3>,
                                   float_tile<T, 4>, float_tile<T, 5>, float_tile<T, 6>};
  for (int j = 0; j < np; ++j)
    tiles[mr - 1](panels + j * panel_stride, xt, K, out + j * PANEL_ROWS, ldo);
}

const MatmulKernels NEON = {"neon",
                            4,
                            neon_quantize_q16a,
                            neon_dot_q,
                            6,
                            dispatch_float_panel<float_panel<DType::F32>, float_panel<DType::F16>,
                                                 float_panel<DType::BF16>>};

}  // namespace

const MatmulKernels* neon_matmul_kernels() { return &NEON; }

}  // namespace longbow::cpu
#endif  // __aarch64__
