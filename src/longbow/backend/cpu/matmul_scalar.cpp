// Portable scalar matmul micro-kernels (the fallback and the reference for the SIMD ones):
// activation quantization to BlockQ16A and integer block dot products against Q4_0/Q4_1/Q8_0.
#include <cmath>
#include <cstdlib>
#include <string>

#include "longbow/backend/cpu/cpu_ops.h"
#include "longbow/backend/cpu/matmul_kernels.h"

namespace longbow::cpu {

namespace {

void scalar_quantize_q16a(const float* x, BlockQ16A* y, int64_t K) {
  for (int64_t b = 0; b < K / QK; ++b, x += QK) {
    float amax = 0.f;
    for (int i = 0; i < QK; ++i) amax = std::fmax(amax, std::fabs(x[i]));
    const float d = amax / Q16_MAX;
    const float id = amax > 0.f ? Q16_MAX / amax : 0.f;
    int sum = 0;
    for (int i = 0; i < QK; ++i) {
      const int q = static_cast<int>(std::nearbyint(x[i] * id));
      y[b].qs[i] = static_cast<int16_t>(q);
      sum += q;
    }
    y[b].d = d;
    y[b].s = d * static_cast<float>(sum);
  }
}

// One weight row against one quantized activation row.
float dot_row(DType t, const void* w_row, const BlockQ16A* x, int64_t nb) {
  float acc = 0.f, corr = 0.f;
  switch (t) {
    case DType::Q4_0: {
      const auto* w = static_cast<const BlockQ4_0*>(w_row);
      for (int64_t b = 0; b < nb; ++b) {
        int isum = 0;
        for (int j = 0; j < QK / 2; ++j) {
          isum += (w[b].qs[j] & 0x0F) * x[b].qs[j] + (w[b].qs[j] >> 4) * x[b].qs[j + QK / 2];
        }
        const float dw = f16_to_f32(w[b].d);
        acc += static_cast<float>(isum) * (dw * x[b].d);
        corr += dw * x[b].s;
      }
      return acc - 8.f * corr;
    }
    case DType::Q4_1: {
      const auto* w = static_cast<const BlockQ4_1*>(w_row);
      for (int64_t b = 0; b < nb; ++b) {
        int isum = 0;
        for (int j = 0; j < QK / 2; ++j) {
          isum += (w[b].qs[j] & 0x0F) * x[b].qs[j] + (w[b].qs[j] >> 4) * x[b].qs[j + QK / 2];
        }
        acc += static_cast<float>(isum) * (f16_to_f32(w[b].d) * x[b].d);
        corr += f16_to_f32(w[b].m) * x[b].s;
      }
      return acc + corr;
    }
    case DType::Q8_0: {
      const auto* w = static_cast<const BlockQ8_0*>(w_row);
      for (int64_t b = 0; b < nb; ++b) {
        int isum = 0;
        for (int j = 0; j < QK; ++j) isum += w[b].qs[j] * x[b].qs[j];
        acc += static_cast<float>(isum) * (f16_to_f32(w[b].d) * x[b].d);
      }
      return acc;
    }
    default:
      throw std::invalid_argument(std::string("[cpu.matmul] expected Q4_0, Q4_1 or Q8_0 weights, found ") +
                                  dtype_name(t));
  }
}

void scalar_dot_q(DType t, const void* w_row, const BlockQ16A* xq, size_t ldx, int mr, int64_t K, float* out,
                  size_t ldo) {
  for (int m = 0; m < mr; ++m) out[m * ldo] = dot_row(t, w_row, xq + m * ldx, K / QK);
}

const MatmulKernels SCALAR = {"scalar", 4, scalar_quantize_q16a, scalar_dot_q, nullptr};

}  // namespace

const MatmulKernels& scalar_matmul_kernels() { return SCALAR; }

#if !defined(__aarch64__)
const MatmulKernels* neon_matmul_kernels() { return nullptr; }
#endif
#if !(defined(__x86_64__) || defined(__i386__))
const MatmulKernels* avx2_matmul_kernels() { return nullptr; }
#endif

}  // namespace longbow::cpu
