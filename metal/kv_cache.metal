// Paged KV cache maintenance.
//  kv_write_<f32|f16>: new K/V rows (f32) into their slots, converted to the cache dtype; one
//                      thread per element; slot < 0 skips the token (padding).
//  kv_write_<q8_0|q4_0|q4_1>: the same into a block-typed cache (quant_blocks.h), one thread per
//                      32-value group of a slot's row, quantized as the CPU's kv_write
//                      (core/quantize.cpp, ggml's reference rules).
//  copy_blocks_<u32|u8>: copy-on-write of whole blocks in every plane (layer x K/V); one
//                      threadgroup per plane runs the pairs in order, so chains behave as on the
//                      CPU.
#include <metal_stdlib>
#include "kargs.h"
#include "quant_blocks.h"
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

// The reference rules of ggml's quantizers for one 32-value group x: q8_0 d = amax / 127, q = round
// (half away from zero) of x / d; q4_0 d = (the value of largest magnitude) / -8, q = x / d + 8.5
// truncated to 15; q4_1 d = (max - min) / 15, m = min, q = (x - min) / d + 0.5 truncated to 15.
// 4-bit: element j in the low nibble of byte j, element j + 16 in its high nibble.
inline uchar kv_nibble(float v) { return uchar(min(int(v), 15)); }

inline void kv_quantize(device const float* x, device BlockQ8_0* y) {
  float amax = 0.0f;
  for (int j = 0; j < LONGBOW_QK; ++j) amax = max(amax, fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  y->d = half(d);
  for (int j = 0; j < LONGBOW_QK; ++j) y->qs[j] = int8_t(round(x[j] * id));
}

inline void kv_quantize(device const float* x, device BlockQ4_0* y) {
  float amax = 0.0f, vmax = 0.0f;  // vmax: the element of largest magnitude, with its sign
  for (int j = 0; j < LONGBOW_QK; ++j) {
    if (fabs(x[j]) > amax) {
      amax = fabs(x[j]);
      vmax = x[j];
    }
  }
  const float d = vmax / -8.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  y->d = half(d);
  for (int j = 0; j < LONGBOW_QK / 2; ++j) {
    const float lo = x[j] * id, hi = x[j + LONGBOW_QK / 2] * id;
    y->qs[j] = uchar(kv_nibble(lo + 8.5f) | (kv_nibble(hi + 8.5f) << 4));
  }
}

inline void kv_quantize(device const float* x, device BlockQ4_1* y) {
  float vmin = x[0], vmax = x[0];
  for (int j = 1; j < LONGBOW_QK; ++j) {
    vmin = min(vmin, x[j]);
    vmax = max(vmax, x[j]);
  }
  const float d = (vmax - vmin) / 15.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  y->d = half(d);
  y->m = half(vmin);
  for (int j = 0; j < LONGBOW_QK / 2; ++j) {
    const float lo = (x[j] - vmin) * id, hi = (x[j + LONGBOW_QK / 2] - vmin) * id;
    y->qs[j] = uchar(kv_nibble(lo + 0.5f) | (kv_nibble(hi + 0.5f) << 4));
  }
}

template <typename B>
kernel void kv_write_block(
    constant KvWriteKArgs& args [[buffer(0)]],
    device const float* k [[buffer(1)]],  // (num_tokens, num_kv_heads, head_dim)
    device const float* v [[buffer(2)]],  // (num_tokens, num_kv_heads, head_dim)
    device B* k_cache [[buffer(3)]],      // (num_slots, num_kv_heads * head_dim / 32) blocks
    device B* v_cache [[buffer(4)]],      // (num_slots, num_kv_heads * head_dim / 32) blocks
    device const int* slot_mapping [[buffer(5)]],  // (num_tokens,)
    uint2 gid [[thread_position_in_grid]]) {
  const uint b = gid.x, t = gid.y, groups = uint(args.row_elems) / LONGBOW_QK;
  if (b >= groups || t >= uint(args.num_tokens)) return;
  const int slot = slot_mapping[t];
  if (slot < 0 || slot >= args.num_slots) return;
  const ulong src = ulong(t) * uint(args.row_elems) + b * LONGBOW_QK,
              dst = ulong(slot) * groups + b;
  kv_quantize(k + src, k_cache + dst);
  kv_quantize(v + src, v_cache + dst);
}

template [[host_name("kv_write_q8_0")]] kernel void kv_write_block<BlockQ8_0>(
    constant KvWriteKArgs& args [[buffer(0)]], device const float* k [[buffer(1)]],
    device const float* v [[buffer(2)]], device BlockQ8_0* k_cache [[buffer(3)]],
    device BlockQ8_0* v_cache [[buffer(4)]], device const int* slot_mapping [[buffer(5)]],
    uint2 gid [[thread_position_in_grid]]);
template [[host_name("kv_write_q4_0")]] kernel void kv_write_block<BlockQ4_0>(
    constant KvWriteKArgs& args [[buffer(0)]], device const float* k [[buffer(1)]],
    device const float* v [[buffer(2)]], device BlockQ4_0* k_cache [[buffer(3)]],
    device BlockQ4_0* v_cache [[buffer(4)]], device const int* slot_mapping [[buffer(5)]],
    uint2 gid [[thread_position_in_grid]]);
template [[host_name("kv_write_q4_1")]] kernel void kv_write_block<BlockQ4_1>(
    constant KvWriteKArgs& args [[buffer(0)]], device const float* k [[buffer(1)]],
    device const float* v [[buffer(2)]], device BlockQ4_1* k_cache [[buffer(3)]],
    device BlockQ4_1* v_cache [[buffer(4)]], device const int* slot_mapping [[buffer(5)]],
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
