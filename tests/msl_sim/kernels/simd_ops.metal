// Every SIMD-group function on per-thread inputs; results compared with a scalar reference.
#include <metal_stdlib>
using namespace metal;

struct SimdArgs {
  uint with_shuffles;  // 0 for partial SIMD groups (shuffles would read inactive lanes)
};

constant uint NUM_F = 12;  // float outputs per thread
constant uint NUM_U = 10;  // uint outputs per thread

kernel void simd_ops(constant SimdArgs& args [[buffer(0)]],
                     device const float* x [[buffer(1)]],  // (n,)
                     device const int* ix [[buffer(2)]],   // (n,)
                     device float* out_f [[buffer(3)]],    // (NUM_F, n)
                     device uint* out_u [[buffer(4)]],     // (NUM_U, n)
                     uint gid [[thread_position_in_grid]],
                     uint n [[threads_per_grid]],
                     ushort lane [[thread_index_in_simdgroup]]) {
  float v = x[gid];
  int iv = ix[gid];
  out_f[0 * n + gid] = simd_sum(v);
  out_f[1 * n + gid] = simd_max(v);
  out_f[2 * n + gid] = simd_min(v);
  out_f[3 * n + gid] = simd_prefix_inclusive_sum(v);
  out_f[4 * n + gid] = simd_prefix_exclusive_sum(v);
  out_f[5 * n + gid] = simd_broadcast_first(v);
  float4 v4 = float4(v, 2.0f * v, -v, 1.0f);
  float4 s4 = simd_sum(v4);
  out_f[6 * n + gid] = s4.y + s4.z + s4.w;  // 2*sum - sum + active lanes
  out_u[0 * n + gid] = uint(simd_product(iv % 3 == 0 ? 2 : 1));
  out_u[1 * n + gid] = uint(simd_and(iv));
  out_u[2 * n + gid] = uint(simd_or(iv));
  out_u[3 * n + gid] = uint(simd_xor(iv));
  out_u[4 * n + gid] = uint(simd_ballot(v > 0.0f).v);
  out_u[5 * n + gid] = simd_all(v > -2.0f) ? 1u : 0u;
  out_u[6 * n + gid] = simd_any(v > 0.9f) ? 1u : 0u;
  out_u[7 * n + gid] = simd_is_first() ? 1u : 0u;
  simdgroup_barrier(mem_flags::mem_none);
  if (args.with_shuffles != 0) {
    out_f[7 * n + gid] = simd_shuffle(v, ushort((lane * 7) % 32));  // per-lane source
    out_f[8 * n + gid] = simd_shuffle_xor(v, 3);
    out_f[9 * n + gid] = simd_shuffle_down(v, 4);
    out_f[10 * n + gid] = simd_shuffle_up(v, 4);
    out_f[11 * n + gid] = simd_broadcast(v, 7);
    out_u[8 * n + gid] = uint(simd_shuffle_rotate_down(iv, 5));
    out_u[9 * n + gid] = uint(quad_sum(iv));
  }
}
