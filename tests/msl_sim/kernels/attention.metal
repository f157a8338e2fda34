// Decode attention for one query token per head: half K/V cache, grouped-query heads. One
// threadgroup per query head, 4 SIMD groups each keep an online softmax (FlashAttention-2 style
// running max / sum) over a strided share of the tokens; the partial results are merged through
// threadgroup memory.
#include <metal_stdlib>
using namespace metal;

struct AttnArgs {
  uint seq_len;
  uint num_heads;
  uint num_kv_heads;
  float scale;
};

constant uint HEAD_DIM = 64;
constant uint NUM_SG = 4;

kernel void attention_decode_f16(constant AttnArgs& args [[buffer(0)]],
                                 device const float* q [[buffer(1)]],  // (num_heads, HEAD_DIM)
                                 device const half* k [[buffer(2)]],   // (seq_len, num_kv_heads, HEAD_DIM)
                                 device const half* v [[buffer(3)]],   // (seq_len, num_kv_heads, HEAD_DIM)
                                 device float* out [[buffer(4)]],      // (num_heads, HEAD_DIM)
                                 uint head [[threadgroup_position_in_grid]],
                                 uint tid [[thread_index_in_threadgroup]],
                                 uint sg [[simdgroup_index_in_threadgroup]],
                                 uint lane [[thread_index_in_simdgroup]]) {
  threadgroup float sg_max[NUM_SG];
  threadgroup float sg_sum[NUM_SG];
  threadgroup float sg_acc[NUM_SG][HEAD_DIM];
  uint kv_head = head / (args.num_heads / args.num_kv_heads);
  float2 qv = float2(q[head * HEAD_DIM + 2 * lane], q[head * HEAD_DIM + 2 * lane + 1]);
  float m = -INFINITY, l = 0.0f;
  float2 acc = 0.0f;
  for (uint t = sg; t < args.seq_len; t += NUM_SG) {
    uint base = (t * args.num_kv_heads + kv_head) * HEAD_DIM + 2 * lane;
    half2 kh = half2(k[base], k[base + 1]);
    float score = simd_sum(dot(qv, float2(kh))) * args.scale;
    float m_new = max(m, score);
    float corr = exp(m - m_new);
    float p = exp(score - m_new);
    l = l * corr + p;
    acc = acc * corr + p * float2(half2(v[base], v[base + 1]));
    m = m_new;
  }
  if (lane == 0) {
    sg_max[sg] = m;
    sg_sum[sg] = l;
  }
  sg_acc[sg][2 * lane] = acc.x;
  sg_acc[sg][2 * lane + 1] = acc.y;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (tid < HEAD_DIM) {
    float gm = -INFINITY;
    for (uint s = 0; s < NUM_SG; ++s) gm = max(gm, sg_max[s]);
    float total = 0.0f, o = 0.0f;
    for (uint s = 0; s < NUM_SG; ++s) {
      float w = sg_sum[s] > 0.0f ? exp(sg_max[s] - gm) : 0.0f;
      total += w * sg_sum[s];
      o += w * sg_acc[s][tid];
    }
    out[head * HEAD_DIM + tid] = o / total;
  }
}
