// RMSNorm (Zhang & Sennrich 2019): one threadgroup of LONGBOW_ROW_THREADS threads per row; sum
// of squares by simd_sum, then the SIMD-group partials through threadgroup memory.
#include <metal_stdlib>
#include "kargs.h"
using namespace metal;

kernel void rms_norm_f32(constant RmsNormKArgs& args [[buffer(0)]],
                         device float* out [[buffer(1)]],           // (num_rows, dim)
                         device const float* x [[buffer(2)]],       // (num_rows, dim)
                         device const float* weight [[buffer(3)]],  // (dim,)
                         uint row [[threadgroup_position_in_grid]],
                         uint tid [[thread_index_in_threadgroup]],
                         uint sg [[simdgroup_index_in_threadgroup]],
                         uint lane [[thread_index_in_simdgroup]]) {
  threadgroup float partial[LONGBOW_ROW_THREADS / 32];
  const uint dim = uint(args.dim);
  device const float* src = x + ulong(row) * dim;
  float ss = 0.0f;
  for (uint i = tid; i < dim; i += LONGBOW_ROW_THREADS) {
    const float v = src[i];
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
    // out may alias x: each thread reads only the elements it writes.
    o[i] = src[i] * inv * weight[i];
  }
}
