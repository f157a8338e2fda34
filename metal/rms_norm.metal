// RMSNorm (Zhang & Sennrich 2019), optionally fused with the residual add of a pre-norm block:
// one threadgroup of LONGBOW_ROW_THREADS threads per row; sum of squares by simd_sum, then the
// SIMD-group partials through threadgroup memory.
#include <metal_stdlib>
#include "kargs.h"
using namespace metal;

kernel void rms_norm_f32(constant RmsNormKArgs& args [[buffer(0)]],
                         device float* out [[buffer(1)]],          // (num_rows, dim)
                         device const float* x [[buffer(2)]],      // (num_rows, dim)
                         device float* residual [[buffer(3)]],     // (num_rows, dim), if has_residual
                         device const float* weight [[buffer(4)]], // (dim,)
                         uint row [[threadgroup_position_in_grid]],
                         uint tid [[thread_index_in_threadgroup]],
                         uint sg [[simdgroup_index_in_threadgroup]],
                         uint lane [[thread_index_in_simdgroup]]) {
  threadgroup float partial[LONGBOW_ROW_THREADS / 32];
  const uint dim = uint(args.dim);
  device const float* src = x + ulong(row) * dim;
  device float* res = residual + ulong(row) * dim;
  float ss = 0.0f;
  for (uint i = tid; i < dim; i += LONGBOW_ROW_THREADS) {
    float v = src[i];
    if (args.has_residual != 0) {
      v += res[i];
      res[i] = v;
    }
    ss += v * v;
  }
  ss = simd_sum(ss);
  if (lane == 0) partial[sg] = ss;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  float total = 0.0f;
  for (uint s = 0; s < LONGBOW_ROW_THREADS / 32; ++s) total += partial[s];
  const float inv = 1.0f / sqrt(total / float(dim) + args.eps);
  device float* o = out + ulong(row) * dim;
  for (uint i = tid; i < dim; i += LONGBOW_ROW_THREADS) {
    // Each thread re-reads only the elements it wrote itself above.
    float v = args.has_residual != 0 ? res[i] : src[i];
    o[i] = v * inv * weight[i];
  }
}
