// Row kernels of the elementwise op families (glu, rms_norm, kv_write): portable scalar or
// AVX2/FMA/F16C (elementwise_avx2.cpp), chosen once from cpu_isa() like the matmul row
// kernels.
#pragma once

#include <cstddef>
#include <cstdint>

namespace longbow::cpu {

struct EltKernels {
  const char* name;
  // out[i] = gate[i] / (1 + exp(-gate[i])) * up[i] for i < n.
  void (*silu_mul)(float* out, const float* gate, const float* up, int64_t n);
  // out[i] = gelu_tanh(gate[i]) * up[i] (GluArgs) for i < n.
  void (*gelu_tanh_mul)(float* out, const float* gate, const float* up, int64_t n);
  // y[i] = f16(x[i]), round to nearest even, for i < n.
  void (*to_f16)(const float* x, uint16_t* y, int64_t n);
  // Σ x[i]² in double for i < n.
  double (*sum_squares)(const float* x, int64_t n);
  // out[i] = x[i] * inv * w[i] for i < n (that order, so every set rounds alike).
  void (*scale_mul)(const float* x, float inv, const float* w, float* out, int64_t n);
};
const EltKernels* elt_avx2_kernels();  // nullptr when not compiled in
const EltKernels& elt_kernels();

}  // namespace longbow::cpu
