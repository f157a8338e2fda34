// Deliberately wrong kernels: each must make msl_sim report a diagnostic. The @markers name the
// lines the test expects in the messages.
#include <metal_stdlib>
using namespace metal;

kernel void bad_early_return(device float* out [[buffer(0)]],
                             uint tid [[thread_index_in_threadgroup]]) {
  if (tid >= 16) return;
  threadgroup_barrier(mem_flags::mem_threadgroup);  // @early_return_barrier
  out[tid] = 1.0f;
}

kernel void bad_barrier_sites(device float* out [[buffer(0)]],
                              uint tid [[thread_index_in_threadgroup]]) {
  if (tid < 32) {
    threadgroup_barrier(mem_flags::mem_threadgroup);  // @barrier_a
  } else {
    threadgroup_barrier(mem_flags::mem_threadgroup);  // @barrier_b
  }
  out[tid] = 1.0f;
}

kernel void bad_simd_divergent(device float* out [[buffer(0)]],
                               uint tid [[thread_index_in_threadgroup]],
                               uint lane [[thread_index_in_simdgroup]]) {
  float v = float(tid);
  if (lane < 16) {
    v = simd_sum(v);  // @simd_sum_branch
  } else {
    v = simd_max(v);  // @simd_max_branch
  }
  out[tid] = v;
}

kernel void bad_shuffle_nonuniform(device float* out [[buffer(0)]],
                                   uint tid [[thread_index_in_threadgroup]],
                                   ushort lane [[thread_index_in_simdgroup]]) {
  out[tid] = simd_shuffle_down(float(tid), ushort(lane % 2));  // @nonuniform
}

kernel void bad_deadlock(device float* out [[buffer(0)]],
                         uint tid [[thread_index_in_threadgroup]],
                         uint lane [[thread_index_in_simdgroup]]) {
  float v = float(tid);
  if (lane < 8) v = simd_sum(v);  // @deadlock_simd
  threadgroup_barrier(mem_flags::mem_threadgroup);  // @deadlock_barrier
  out[tid] = v;
}

kernel void bad_tg_overflow(device float* out [[buffer(0)]],
                            uint tid [[thread_index_in_threadgroup]]) {
  threadgroup float small[1024];
  threadgroup float big[8000];  // @tg_overflow
  small[tid] = 0.0f;
  big[tid] = 1.0f;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[tid] = big[tid] + small[tid];
}

// Threads 32..63 never write scratch; everyone reads the mirrored slot.
kernel void bad_uninitialised(device float* out [[buffer(0)]],
                              device int* out_i [[buffer(1)]],
                              uint tid [[thread_index_in_threadgroup]]) {
  threadgroup float scratch[64];
  threadgroup int scratch_i[64];
  if (tid < 32) {
    scratch[tid] = 1.0f;
    scratch_i[tid] = 1;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[tid] = scratch[63 - tid];
  out_i[tid] = scratch_i[63 - tid];
}

// Missing barrier between the write and the neighbour's read: the result depends on the order.
kernel void bad_missing_barrier(device float* out [[buffer(0)]],
                                uint tid [[thread_index_in_threadgroup]],
                                uint n [[threads_per_threadgroup]]) {
  threadgroup float s[256];
  s[tid] = float(tid);
  out[tid] = s[n - 1 - tid];  // needs a threadgroup_barrier before it
}

kernel void bad_inactive_lane(device float* out [[buffer(0)]],
                              uint tid [[thread_index_in_threadgroup]],
                              ushort lane [[thread_index_in_simdgroup]]) {
  out[tid] = simd_shuffle(float(tid), ushort((lane + 8) % 32));  // @inactive
}

static float deep(device const float* p, uint depth) {
  float local[512];
  for (uint i = 0; i < 512; ++i) local[i] = p[0] + float(i);
  return depth == 0 ? local[7] : deep(p, depth - 1) + local[depth % 512];
}

kernel void bad_stack_overflow(device float* out [[buffer(0)]],
                               constant uint& depth [[buffer(1)]],
                               uint tid [[thread_index_in_threadgroup]]) {
  out[tid] = deep(out, depth);
}
