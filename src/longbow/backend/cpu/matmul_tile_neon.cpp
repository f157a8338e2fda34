// arm64 NEON matmul micro-kernels: activation quantization to BlockQ16A and integer block dot
// products (16-bit multiplies widened into 32-bit lanes, vmlal_s16) against Q4_0/Q4_1/Q8_0.
// Per block the integer sum is exact and the float accumulation follows the scalar kernel
// operation for operation, so NEON results equal the scalar fallback bit for bit. Float weights
// (F32/F16/BF16) use the dequantize-and-dot path (dot_f = nullptr). NEON is part of the arm64
// baseline: no run-time check is needed. Compiled only on aarch64.
#if defined(__aarch64__)
#include <arm_neon.h>

#include <string>

#include "longbow/backend/cpu/cpu_ops.h"
#include "longbow/backend/cpu/matmul_kernels.h"

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
    const float d = amax / Q16_MAX;
    const float id = amax > 0.f ? Q16_MAX / amax : 0.f;
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

// Exact integer dot of 32 int16 weights (four int16x8 vectors, elements 0..31) with x.
inline int dot_block(const int16x8_t w[4], const BlockQ16A* x) {
  int32x4_t acc = vdupq_n_s32(0);
  for (int i = 0; i < 4; ++i) {
    const int16x8_t xv = vld1q_s16(x->qs + 8 * i);
    acc = vmlal_s16(acc, vget_low_s16(w[i]), vget_low_s16(xv));
    acc = vmlal_high_s16(acc, w[i], xv);
  }
  return vaddvq_s32(acc);
}

inline void unpack_q4(const uint8_t* qs, int16x8_t w[4]) {
  const uint8x16_t q = vld1q_u8(qs);
  const uint8x16_t lo = vandq_u8(q, vdupq_n_u8(0x0F));  // elements 0..15
  const uint8x16_t hi = vshrq_n_u8(q, 4);               // elements 16..31
  w[0] = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(lo)));
  w[1] = vreinterpretq_s16_u16(vmovl_high_u8(lo));
  w[2] = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(hi)));
  w[3] = vreinterpretq_s16_u16(vmovl_high_u8(hi));
}

inline void unpack_q8(const int8_t* qs, int16x8_t w[4]) {
  const int8x16_t a = vld1q_s8(qs), b = vld1q_s8(qs + 16);
  w[0] = vmovl_s8(vget_low_s8(a));
  w[1] = vmovl_high_s8(a);
  w[2] = vmovl_s8(vget_low_s8(b));
  w[3] = vmovl_high_s8(b);
}

template <int MR>
void dot_q_mr(DType t, const void* w_row, const BlockQ16A* xq, size_t ldx, int64_t nb, float* out, size_t ldo) {
  float acc[MR], corr[MR];
  for (int m = 0; m < MR; ++m) acc[m] = corr[m] = 0.f;
  int16x8_t w[4];
  for (int64_t b = 0; b < nb; ++b) {
    float dw, cw = 0.f;
    if (t == DType::Q4_1) {
      const auto& blk = static_cast<const BlockQ4_1*>(w_row)[b];
      unpack_q4(blk.qs, w);
      dw = f16_to_f32(blk.d), cw = f16_to_f32(blk.m);
    } else if (t == DType::Q4_0) {
      const auto& blk = static_cast<const BlockQ4_0*>(w_row)[b];
      unpack_q4(blk.qs, w);
      dw = f16_to_f32(blk.d), cw = dw;
    } else {
      const auto& blk = static_cast<const BlockQ8_0*>(w_row)[b];
      unpack_q8(blk.qs, w);
      dw = f16_to_f32(blk.d);
    }
    for (int m = 0; m < MR; ++m) {
      const BlockQ16A* x = xq + m * ldx + b;
      acc[m] += static_cast<float>(dot_block(w, x)) * (dw * x->d);
      corr[m] += cw * x->s;
    }
  }
  for (int m = 0; m < MR; ++m) {
    out[m * ldo] = t == DType::Q4_1 ? acc[m] + corr[m] : t == DType::Q4_0 ? acc[m] - 8.f * corr[m] : acc[m];
  }
}

void neon_dot_q(DType t, const void* w_row, const BlockQ16A* xq, size_t ldx, int mr, int64_t K, float* out,
                size_t ldo) {
  if (!is_block_quant(t)) {
    throw std::invalid_argument(std::string("[cpu.matmul] expected Q4_0, Q4_1 or Q8_0 weights, found ") +
                                dtype_name(t));
  }
  if (mr > 4) {  // rows beyond the widest template: the same per-row kernel, four rows at a time
    neon_dot_q(t, w_row, xq, ldx, 4, K, out, ldo);
    return neon_dot_q(t, w_row, xq + 4 * ldx, ldx, mr - 4, K, out + 4 * ldo, ldo);
  }
  const int64_t nb = K / QK;
  switch (mr) {
    case 1: return dot_q_mr<1>(t, w_row, xq, ldx, nb, out, ldo);
    case 2: return dot_q_mr<2>(t, w_row, xq, ldx, nb, out, ldo);
    case 3: return dot_q_mr<3>(t, w_row, xq, ldx, nb, out, ldo);
    default: return dot_q_mr<4>(t, w_row, xq, ldx, nb, out, ldo);
  }
}

const MatmulKernels NEON = {"neon", 4, neon_quantize_q16a, neon_dot_q, nullptr};

}  // namespace

const MatmulKernels* neon_matmul_kernels() { return &NEON; }

}  // namespace longbow::cpu
#endif  // __aarch64__
