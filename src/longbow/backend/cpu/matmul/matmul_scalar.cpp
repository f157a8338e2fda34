// Portable scalar matmul micro-kernels (the fallback and the reference for the SIMD ones):
// activation quantization to BlockQ16A and integer block dot products against Q4_0/Q4_1/Q8_0.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "longbow/backend/cpu/cpu_ops.h"
#include "longbow/backend/cpu/matmul/matmul_kernels.h"

namespace longbow::cpu {

namespace {

void scalar_quantize_q16a(const float* x, BlockQ16A* y, int64_t K) {
  for (int64_t b = 0; b < K / QK; ++b, x += QK) {
    float amax = 0.f;
    for (int i = 0; i < QK; ++i) amax = std::fmax(amax, std::fabs(x[i]));
    const bool live = amax >= Q16_MIN_AMAX;  // else the whole block quantizes to zero
    const float d = live ? amax / Q16_MAX : 0.f;
    const float id = live ? Q16_MAX / amax : 0.f;
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

// One panel (16 rows) against one quantized activation row, in the exact operation order of
// matmul_kernels.h.
template <DType T>
void dot_panel_row(const void* panel, const BlockQ16A* x, int64_t nb, float* out) {
  float acc[PANEL_ROWS] = {};
  for (int64_t b = 0; b < nb; ++b) {
    int32_t isum[PANEL_ROWS] = {};
    const uint16_t* d;
    const uint16_t* m = nullptr;
    if constexpr (T == DType::Q8_0) {
      const auto& pk = static_cast<const PanelQ8*>(panel)[b];
      d = pk.d;
      for (int j = 0; j < QK / 2; ++j) {
        for (int r = 0; r < PANEL_ROWS; ++r) {
          isum[r] += pk.qs[32 * j + 2 * r] * x[b].qs[2 * j] +
                     pk.qs[32 * j + 2 * r + 1] * x[b].qs[2 * j + 1];
        }
      }
    } else {
      const auto& pk = static_cast<const PanelQ4*>(panel)[b];
      d = pk.d, m = pk.m;
      for (int t8 = 0; t8 < QK / 4; ++t8) {
        for (int r = 0; r < PANEL_ROWS; ++r) {
          const uint8_t q0 = pk.qs[32 * t8 + 2 * r], q1 = pk.qs[32 * t8 + 2 * r + 1];
          isum[r] += (q0 & 0x0F) * x[b].qs[2 * t8] + (q1 & 0x0F) * x[b].qs[2 * t8 + 1] +
                     (q0 >> 4) * x[b].qs[16 + 2 * t8] + (q1 >> 4) * x[b].qs[16 + 2 * t8 + 1];
        }
      }
    }
    for (int r = 0; r < PANEL_ROWS; ++r) {
      const float dw = f16_to_f32(d[r]);
      acc[r] = std::fma(static_cast<float>(isum[r]), dw * x[b].d, acc[r]);
      if constexpr (T == DType::Q4_1) acc[r] = std::fma(f16_to_f32(m[r]), x[b].s, acc[r]);
      if constexpr (T == DType::Q4_0) acc[r] = std::fma(-8.f * dw, x[b].s, acc[r]);
    }
  }
  for (int r = 0; r < PANEL_ROWS; ++r) out[r] = acc[r];
}

template <DType T>
void panel_t(const void* panel, const BlockQ16A* xq, size_t ldx, int mr, int64_t nb, float* out,
             size_t ldo) {
  for (int m = 0; m < mr; ++m) dot_panel_row<T>(panel, xq + m * ldx, nb, out + m * ldo);
}

void scalar_dot_q(DType t, const void* panel, const BlockQ16A* xq, size_t ldx, int mr, int64_t nb,
                  float* out, size_t ldo) {
  dispatch_panel<panel_t<DType::Q4_0>, panel_t<DType::Q4_1>, panel_t<DType::Q8_0>>(
      t, panel, xq, ldx, mr, nb, out, ldo);
}

template <DType T>
inline float panel_elem(const uint8_t* panel, size_t i) {
  if constexpr (T == DType::F32) {
    float v;
    std::memcpy(&v, panel + 4 * i, 4);
    return v;
  } else {
    uint16_t h;
    std::memcpy(&h, panel + 2 * i, 2);
    return T == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
  }
}

// Float panels, the reference order of matmul_kernels.h: one FMA chain per (row, token) in k order.
template <DType T>
void float_panel(const uint8_t* panels, size_t panel_stride, int np, const float* xt, int mr,
                 int64_t K, float* out, size_t ldo) {
  for (int j = 0; j < np; ++j) {
    const uint8_t* panel = panels + j * panel_stride;  // (K, 16)
    for (int m = 0; m < mr; ++m) {
      for (int r = 0; r < PANEL_ROWS; ++r) {
        float acc = 0.f;
        for (int64_t k = 0; k < K; ++k)
          acc = std::fma(panel_elem<T>(panel, k * PANEL_ROWS + r), xt[k * mr + m], acc);
        out[m * ldo + j * PANEL_ROWS + r] = acc;
      }
    }
  }
}

const MatmulKernels SCALAR = {"scalar",
                              4,
                              scalar_quantize_q16a,
                              scalar_dot_q,
                              4,
                              dispatch_float_panel<float_panel<DType::F32>, float_panel<DType::F16>,
                                                   float_panel<DType::BF16>>};

}  // namespace

const MatmulKernels& scalar_matmul_kernels() { return SCALAR; }

#if !defined(__aarch64__)
const MatmulKernels* neon_matmul_kernels() { return nullptr; }
#endif
#if !(defined(__x86_64__) || defined(__i386__))
const MatmulKernels* avx2_matmul_kernels() { return nullptr; }
#endif

}  // namespace longbow::cpu
