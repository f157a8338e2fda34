// Token embedding: out[t] = dequantize(table[token_ids[t]]), one thread per output element.
// Ids outside [0, vocab_size) give a zero row (the host validates ids it uploads).
#include <metal_stdlib>
#include "kargs.h"
#include "weights.h"
using namespace metal;

template <typename W>
kernel void embed(constant EmbedKArgs& args [[buffer(0)]],
                  device float* out [[buffer(1)]],            // (num_tokens, dim)
                  device const int* token_ids [[buffer(2)]],  // (num_tokens,)
                  device const uchar* table [[buffer(3)]],    // (vocab_size, dim) W
                  uint2 gid [[thread_position_in_grid]]) {
  uint i = gid.x, t = gid.y;
  if (i >= uint(args.dim) || t >= uint(args.num_tokens)) return;
  int id = token_ids[t];
  float v = 0.0f;
  if (id >= 0 && id < args.vocab_size) v = W::elem(table + ulong(id) * args.row_bytes, i);
  out[ulong(t) * args.dim + i] = v * args.scale;
}

template [[host_name("embed_f32")]] kernel void embed<w_f32>(
    constant EmbedKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const int* token_ids [[buffer(2)]], device const uchar* table [[buffer(3)]],
    uint2 gid [[thread_position_in_grid]]);
template [[host_name("embed_f16")]] kernel void embed<w_f16>(
    constant EmbedKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const int* token_ids [[buffer(2)]], device const uchar* table [[buffer(3)]],
    uint2 gid [[thread_position_in_grid]]);
template [[host_name("embed_bf16")]] kernel void embed<w_bf16>(
    constant EmbedKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const int* token_ids [[buffer(2)]], device const uchar* table [[buffer(3)]],
    uint2 gid [[thread_position_in_grid]]);
template [[host_name("embed_q8_0")]] kernel void embed<w_q8_0>(
    constant EmbedKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const int* token_ids [[buffer(2)]], device const uchar* table [[buffer(3)]],
    uint2 gid [[thread_position_in_grid]]);
template [[host_name("embed_q4_0")]] kernel void embed<w_q4_0>(
    constant EmbedKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const int* token_ids [[buffer(2)]], device const uchar* table [[buffer(3)]],
    uint2 gid [[thread_position_in_grid]]);
template [[host_name("embed_q4_1")]] kernel void embed<w_q4_1>(
    constant EmbedKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const int* token_ids [[buffer(2)]], device const uchar* table [[buffer(3)]],
    uint2 gid [[thread_position_in_grid]]);
