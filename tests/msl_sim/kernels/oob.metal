// Out-of-bounds accesses, reported only in a sanitizer build (test_msl_sim_asan_oob).
#include <metal_stdlib>
using namespace metal;

kernel void oob_device_read(device const float* src [[buffer(0)]],  // (n,)
                            device float* dst [[buffer(1)]],        // (n,)
                            constant uint& n [[buffer(2)]],
                            uint gid [[thread_position_in_grid]]) {
  dst[gid] = src[gid + 1];  // @oob_device: reads src[n] in the last thread
}

kernel void oob_threadgroup_write(device float* dst [[buffer(0)]],
                                  uint tid [[thread_index_in_threadgroup]]) {
  threadgroup float a[32];
  threadgroup float b[32];
  a[tid + 1] = 1.0f;  // @oob_threadgroup: writes a[32] in the last thread
  b[tid] = 2.0f;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  dst[tid] = a[tid] + b[tid];
}
