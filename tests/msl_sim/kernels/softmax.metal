// Row softmax, one 256-thread threadgroup per row: float4 loads, simd_max / simd_sum within each
// SIMD group, then the 8 group results are combined through threadgroup memory.
#include <metal_stdlib>
using namespace metal;

struct SoftmaxArgs {
  uint ncols;  // multiple of 4
};

kernel void softmax_f32(constant SoftmaxArgs& args [[buffer(0)]],
                        device const float* src [[buffer(1)]],  // (nrows, ncols)
                        device float* dst [[buffer(2)]],        // (nrows, ncols)
                        uint row [[threadgroup_position_in_grid]],
                        uint tid [[thread_index_in_threadgroup]],
                        uint sgitg [[simdgroup_index_in_threadgroup]],
                        uint tiisg [[thread_index_in_simdgroup]],
                        uint ntg [[threads_per_threadgroup]]) {
  threadgroup float group_max[8];
  threadgroup float group_sum[8];
  device const float4* x = (device const float4*)(src + row * args.ncols);
  device float4* y = (device float4*)(dst + row * args.ncols);
  uint n4 = args.ncols / 4;

  float4 m4 = float4(-INFINITY);
  for (uint i = tid; i < n4; i += ntg) m4 = max(m4, x[i]);
  float m = simd_max(max(max(m4.x, m4.y), max(m4.z, m4.w)));
  if (tiisg == 0) group_max[sgitg] = m;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  m = tiisg < ntg / 32 ? group_max[tiisg] : -INFINITY;
  m = simd_max(m);

  float4 s4 = 0.0f;
  for (uint i = tid; i < n4; i += ntg) {
    float4 e = exp(x[i] - m);
    y[i] = e;
    s4 += e;
  }
  float s = simd_sum(s4.x + s4.y + s4.z + s4.w);
  if (tiisg == 0) group_sum[sgitg] = s;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  s = tiisg < ntg / 32 ? group_sum[tiisg] : 0.0f;
  s = simd_sum(s);
  float inv = 1.0f / s;
  for (uint i = tid; i < n4; i += ntg) y[i] *= inv;
}
