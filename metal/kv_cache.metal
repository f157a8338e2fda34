// Paged KV cache maintenance.
//  kv_write_<f32|f16>: new K/V rows (f32) into their slots, converted to the cache dtype; one
//                      thread per element; slot < 0 skips the token (padding).
//  copy_blocks_<u32|u8>: copy-on-write of whole blocks in every plane (layer x K/V); one
//                      threadgroup per plane runs the pairs in order, so chains behave as on the
//                      CPU.
#include <metal_stdlib>
#include "kargs.h"
using namespace metal;

template <typename C>
kernel void kv_write(constant KvWriteKArgs& args [[buffer(0)]],
                     device const float* k [[buffer(1)]],  // (num_tokens, num_kv_heads, head_dim)
                     device const float* v [[buffer(2)]],  // (num_tokens, num_kv_heads, head_dim)
                     device C* k_cache [[buffer(3)]],      // (num_slots, num_kv_heads, head_dim)
                     device C* v_cache [[buffer(4)]],      // (num_slots, num_kv_heads, head_dim)
                     device const int* slot_mapping [[buffer(5)]],  // (num_tokens,)
                     uint2 gid [[thread_position_in_grid]]) {
  const uint i = gid.x, t = gid.y, row = uint(args.row_elems);
  if (i >= row || t >= uint(args.num_tokens)) return;
  const int slot = slot_mapping[t];
  if (slot < 0 || slot >= args.num_slots) return;
  const ulong src = ulong(t) * row + i, dst = ulong(slot) * row + i;
  k_cache[dst] = C(k[src]);
  v_cache[dst] = C(v[src]);
}

template [[host_name("kv_write_f32")]] kernel void kv_write<float>(
    constant KvWriteKArgs& args [[buffer(0)]], device const float* k [[buffer(1)]],
    device const float* v [[buffer(2)]], device float* k_cache [[buffer(3)]],
    device float* v_cache [[buffer(4)]], device const int* slot_mapping [[buffer(5)]],
    uint2 gid [[thread_position_in_grid]]);
template [[host_name("kv_write_f16")]] kernel void kv_write<half>(
    constant KvWriteKArgs& args [[buffer(0)]], device const float* k [[buffer(1)]],
    device const float* v [[buffer(2)]], device half* k_cache [[buffer(3)]],
    device half* v_cache [[buffer(4)]], device const int* slot_mapping [[buffer(5)]],
    uint2 gid [[thread_position_in_grid]]);

template <typename Word>
kernel void copy_blocks(constant CopyBlocksKArgs& args [[buffer(0)]],
                        device Word* cache [[buffer(1)]],  // (num_planes, num_blocks, block_words)
                        device const int* pairs [[buffer(2)]],  // (num_pairs, 2): (src, dst)
                        uint plane [[threadgroup_position_in_grid]],
                        uint tid [[thread_index_in_threadgroup]],
                        uint num_threads [[threads_per_threadgroup]]) {
  const ulong words = args.block_words;
  device Word* base = cache + ulong(plane) * ulong(args.num_blocks) * words;
  for (int p = 0; p < args.num_pairs; ++p) {
    const int src = pairs[2 * p], dst = pairs[2 * p + 1];
    const bool ok =
        src >= 0 && src < args.num_blocks && dst >= 0 && dst < args.num_blocks && src != dst;
    if (ok) {
      for (ulong w = tid; w < words; w += num_threads)
        base[ulong(dst) * words + w] = base[ulong(src) * words + w];
    }
    // The next pair may read what this one wrote.
    threadgroup_barrier(mem_flags::mem_device);
  }
}

template [[host_name("copy_blocks_u32")]] kernel void copy_blocks<uint>(
    constant CopyBlocksKArgs& args [[buffer(0)]], device uint* cache [[buffer(1)]],
    device const int* pairs [[buffer(2)]], uint plane [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]], uint num_threads [[threads_per_threadgroup]]);
template [[host_name("copy_blocks_u8")]] kernel void copy_blocks<uchar>(
    constant CopyBlocksKArgs& args [[buffer(0)]], device uchar* cache [[buffer(1)]],
    device const int* pairs [[buffer(2)]], uint plane [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]], uint num_threads [[threads_per_threadgroup]]);
