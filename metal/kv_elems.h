// Elements of a KV cache plane for the attention kernels, by the plane's element type C: f32 and
// f16 arrays, or a block type of quant_blocks.h (BlockQ8_0, BlockQ4_0, BlockQ4_1: each row of
// head_dim values is head_dim / 32 blocks, dequantized here in registers with the weight formats'
// rules, weights.h). A cache row is (slot * num_kv_heads + kv head); the kernels are templates
// over C instantiated per cache type.
#pragma once
#include <metal_stdlib>
#include "weights.h"
using namespace metal;

// Element d of cache row `row` of a plane with head_dim D.
inline float kv_elem(device const float* cache, long row, int D, int d) {
  return cache[row * D + d];
}
inline float kv_elem(device const half* cache, long row, int D, int d) {
  return float(cache[row * D + d]);
}
inline float kv_elem(device const BlockQ8_0* cache, long row, int D, int d) {
  return w_q8_0::elem((device const uchar*)(cache + row * (D / LONGBOW_QK)), uint(d));
}
inline float kv_elem(device const BlockQ4_0* cache, long row, int D, int d) {
  return w_q4_0::elem((device const uchar*)(cache + row * (D / LONGBOW_QK)), uint(d));
}
inline float kv_elem(device const BlockQ4_1* cache, long row, int D, int d) {
  return w_q4_1::elem((device const uchar*)(cache + row * (D / LONGBOW_QK)), uint(d));
}
