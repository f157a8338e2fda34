// Tree reduction in threadgroup memory (barrier correctness test for msl_sim).
#include <metal_stdlib>
using namespace metal;

struct ReduceArgs {
  uint n;  // elements in src
};

// One threadgroup of 256 threads sums a strided slice of src; out[tg] = partial sum.
kernel void reduce_sum_f32(constant ReduceArgs& args [[buffer(0)]],
                           device const float* src [[buffer(1)]],  // (n,)
                           device float* out [[buffer(2)]],        // (num_threadgroups,)
                           uint tid [[thread_index_in_threadgroup]],
                           uint tg [[threadgroup_position_in_grid]],
                           uint ntg [[threadgroups_per_grid]]) {
  threadgroup float partial[256];
  constant ReduceArgs& a = args;  // a reference into constant memory stays a reference
  float acc = 0.0f;
  for (uint i = tg * 256 + tid; i < a.n; i += ntg * 256) acc += src[i];
  partial[tid] = acc;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  for (uint stride = 128; stride > 0; stride /= 2) {
    if (tid < stride) partial[tid] += partial[tid + stride];
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  if (tid == 0) out[tg] = partial[0];
}

// Same reduction with the scratch passed as a [[threadgroup(0)]] argument and 2D ids.
kernel void reduce_sum_tgarg_f32(constant ReduceArgs& args [[buffer(0)]],
                                 device const float* src [[buffer(1)]],  // (n,)
                                 device float* out [[buffer(2)]],        // (num_threadgroups,)
                                 threadgroup float* scratch [[threadgroup(0)]],  // (threads,)
                                 uint2 tpitg [[thread_position_in_threadgroup]],
                                 uint2 tptg [[threads_per_threadgroup]],
                                 uint2 tgpig [[threadgroup_position_in_grid]]) {
  uint tid = tpitg.y * tptg.x + tpitg.x;
  uint nthreads = tptg.x * tptg.y;
  uint base = tgpig.x * nthreads;
  scratch[tid] = base + tid < args.n ? src[base + tid] : 0.0f;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  for (uint stride = nthreads / 2; stride > 0; stride /= 2) {
    if (tid < stride) scratch[tid] += scratch[tid + stride];
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  if (tid == 0) out[tgpig.x] = scratch[0];
}

// Atomics: every thread adds 1 to a device counter and its threadgroup counter.
kernel void atomic_count(device atomic_uint* counter [[buffer(0)]],
                         device uint* per_tg [[buffer(1)]],  // (num_threadgroups,)
                         uint tid [[thread_index_in_threadgroup]],
                         uint tg [[threadgroup_position_in_grid]]) {
  threadgroup atomic_uint local;
  if (tid == 0) atomic_store_explicit(&local, 0u, memory_order_relaxed);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  atomic_fetch_add_explicit(&local, 1u, memory_order_relaxed);
  atomic_fetch_add_explicit(counter, 1u, memory_order_relaxed);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (tid == 0) per_tg[tg] = atomic_load_explicit(&local, memory_order_relaxed);
}
