// Token sampling, one threadgroup per logits row; the exact rule of the CPU backend
// (src/longbow/backend/cpu/sample.cpp):
//  a) logprob = log_softmax(raw logits)[id], NaN for a row holding NaN or +inf or only -inf;
//  b) on a working copy: ids outside the row's allowed-token mask set to -inf, repetition /
//  presence / frequency penalties, then banned ids set to -inf;
//  c) temperature 0 -> argmax (lowest index on ties);  d) logits /= T, candidates ordered by
//  (logit desc, index asc) with a bitonic sort of 64-bit keys in device scratch, top_k, softmax,
//  top_p prefix, min_p, renormalize, inverse-CDF draw with u = Philox 4x32-10 (Salmon et al.
//  2011) keyed by (seed, counter); unreached by rounding: the last kept candidate of nonzero
//  weight (a -inf logit is never drawn). Prefix sums are chunked per thread.
//  e) top logprobs: the row's k most likely ids by (raw logit desc, id asc, NaN last), found by
//  k rounds of a threadgroup arg-min over the rank keys after the previous pick (k <= 20).
//  f) speculative decoding: write the row's distribution to a probs row, or rejection-sample a
//  draft token against a draft distribution read from one (the residual in index order).
#include <metal_stdlib>
#include "kargs.h"
#include "philox.h"
using namespace metal;

#define NT LONGBOW_SAMPLE_THREADS
#define NSG (LONGBOW_SAMPLE_THREADS / 32)

// ---- threadgroup reductions (every thread of the threadgroup calls them at the same site) ----
inline float sample_sum(float v, threadgroup float* part, uint sg, uint lane) {
  v = simd_sum(v);
  if (lane == 0) part[sg] = v;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  float t = 0.0f;
  for (uint i = 0; i < NSG; ++i) t += part[i];
  threadgroup_barrier(mem_flags::mem_threadgroup);
  return t;
}
inline float sample_max(float v, threadgroup float* part, uint sg, uint lane) {
  v = simd_max(v);
  if (lane == 0) part[sg] = v;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  float t = -INFINITY;
  for (uint i = 0; i < NSG; ++i) t = max(t, part[i]);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  return t;
}
inline int sample_min_int(int v, threadgroup int* part, uint sg, uint lane) {
  v = simd_min(v);
  if (lane == 0) part[sg] = v;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  int t = v;
  for (uint i = 0; i < NSG; ++i) t = min(t, part[i]);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  return t;
}
inline uint sample_min_uint(uint v, threadgroup uint* part, uint sg, uint lane) {
  v = simd_min(v);
  if (lane == 0) part[sg] = v;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  uint t = v;
  for (uint i = 0; i < NSG; ++i) t = min(t, part[i]);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  return t;
}
// Exclusive prefix sum over the threads in thread order.
inline float sample_exclusive_scan(float v, threadgroup float* part, uint sg, uint lane) {
  const float ex = simd_prefix_exclusive_sum(v);
  if (lane == 31) part[sg] = ex + v;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  float base = 0.0f;
  for (uint i = 0; i < sg; ++i) base += part[i];
  threadgroup_barrier(mem_flags::mem_threadgroup);
  return base + ex;
}
// Index of the largest value, lowest index on ties (argmax of the CPU backend: the first index
// whose value beats all before it, so NaN never wins and a NaN at index 0 is never beaten).
inline int sample_argmax(device const float* v, int n, threadgroup float* fpart,
                         threadgroup int* ipart, uint tid, uint sg, uint lane) {
  if (isnan(v[0])) return 0;  // uniform: every thread reads v[0]
  float best = -INFINITY;
  int best_idx = n;
  for (int i = int(tid); i < n; i += NT) {
    if (!isnan(v[i]) && (v[i] > best || best_idx == n)) {
      best = v[i];
      best_idx = i;
    }
  }
  const float m = sample_max(best, fpart, sg, lane);
  return sample_min_int(best == m ? best_idx : n, ipart, sg, lane);
}

// Sort key: ascending order = (value desc, index asc); padding sorts last.
inline ulong sample_key(float v, uint idx) {
  const uint u = as_type<uint>(v);
  const uint ordered = (u & 0x80000000u) != 0 ? ~u : (u | 0x80000000u);  // monotone in v
  return (ulong(~ordered) << 32) | ulong(idx);
}

// Probability of id i in the truncated distribution: kept iff its key ranks at or before the last
// kept candidate's.
inline float sample_kept_prob(device const float* vals, int i, ulong last_key, float vmax,
                              float total) {
  return sample_key(vals[i], uint(i)) <= last_key ? exp(vals[i] - vmax) / total : 0.0f;
}

// Rank of a raw logit for the top logprobs: ascending = value descending, every NaN after -inf
// (0xffffffff), -0 equal to +0 (ties then go by index, as the CPU's comparisons).
inline uint sample_top_rank(float v) {
  if (isnan(v)) return 0xffffffffu;
  const uint u = as_type<uint>(v == 0.0f ? 0.0f : v);
  return (u & 0x80000000u) != 0 ? u : ~(u | 0x80000000u);
}

// e) Writes the row's max_top entries: the first min(k, V) by rank, then id -1 / logprob -inf.
inline void sample_top_logprobs(device const float* raw, int V, float lse, int k, int max_top,
                                device int* top_ids, device float* top_lps, threadgroup uint* upart,
                                threadgroup int* ipart, uint tid, uint sg, uint lane) {
  const int n = min(k, V);
  uint prev_rank = 0;
  int prev_idx = -1;  // each round takes the first entry after (prev_rank, prev_idx)
  for (int j = 0; j < n; ++j) {
    uint best_rank = 0xffffffffu;
    int best_idx = V;  // none yet
    for (int i = int(tid); i < V; i += NT) {
      const uint r = sample_top_rank(raw[i]);
      const bool after = r > prev_rank || (r == prev_rank && i > prev_idx);
      if (after && (r < best_rank || (r == best_rank && i < best_idx))) {
        best_rank = r;
        best_idx = i;
      }
    }
    prev_rank = sample_min_uint(best_rank, upart, sg, lane);
    prev_idx = sample_min_int(best_rank == prev_rank ? best_idx : V, ipart, sg, lane);
    if (tid == 0) {
      top_ids[j] = prev_idx;
      top_lps[j] = raw[prev_idx] - lse;
    }
  }
  for (int j = n + int(tid); j < max_top; j += NT) {
    top_ids[j] = -1;
    top_lps[j] = -INFINITY;
  }
}

kernel void sample_f32(constant SampleKArgs& args [[buffer(0)]],
                       device int* out_ids [[buffer(1)]],         // (num_rows,)
                       device float* out_logprobs [[buffer(2)]],  // (num_rows,)
                       device int* out_top_ids [[buffer(3)]],     // (num_rows, max_top)
                       device float* out_top_lps [[buffer(4)]],   // (num_rows, max_top)
                       device const float* logits [[buffer(5)]],  // (num_rows, vocab_size)
                       device const SampleRowParams* params [[buffer(6)]],  // (num_rows,)
                       device const int* penalty_tokens [[buffer(7)]],      // (penalty_capacity,)
                       device float* vals_all [[buffer(8)]],       // (num_rows, vocab_size) scratch
                       device ulong* keys_all [[buffer(9)]],       // (num_rows, sort_size) scratch
                       device float* probs [[buffer(10)]],         // (probs_rows, vocab_size)
                       device const uint* allowed [[buffer(11)]],  // (num_mask_rows, mask_words)
                       uint row [[threadgroup_position_in_grid]],
                       uint tid [[thread_index_in_threadgroup]],
                       uint sg [[simdgroup_index_in_threadgroup]],
                       uint lane [[thread_index_in_simdgroup]]) {
  threadgroup float fpart[NSG];
  threadgroup int ipart[NSG];
  threadgroup uint upart[NSG];
  const int V = args.vocab_size, S = args.sort_size;
  device const SampleRowParams& p = params[row];  // read in place (fields once each)
  device const float* raw = logits + ulong(row) * V;
  device float* vals = vals_all + ulong(row) * V;
  device ulong* keys = keys_all + ulong(row) * S;

  // a) log-softmax normalizer of the raw logits.
  float m = -INFINITY;
  for (int i = int(tid); i < V; i += NT) m = max(m, raw[i]);
  const float raw_max = sample_max(m, fpart, sg, lane);
  float se = 0.0f;
  for (int i = int(tid); i < V; i += NT) se += exp(raw[i] - raw_max);
  const float lse = raw_max + log(sample_sum(se, fpart, sg, lane));
  if (args.max_top > 0) {
    const ulong at = ulong(row) * ulong(args.max_top);
    sample_top_logprobs(raw, V, lse, clamp(p.num_top_logprobs, 0, args.max_top), args.max_top,
                        out_top_ids + at, out_top_lps + at, upart, ipart, tid, sg, lane);
  }

  // b) the working copy with ids outside the allowed-token mask at -inf; then penalties, each
  // distinct token updated by the thread of its first occurrence; then banned ids.
  const bool masked = p.mask_row >= 0 && p.mask_row < args.num_mask_rows;
  device const uint* mask = allowed + ulong(masked ? p.mask_row : 0) * ulong(args.mask_words);
  for (int i = int(tid); i < V; i += NT)
    vals[i] = (!masked || ((mask[i >> 5] >> uint(i & 31)) & 1u) != 0u) ? raw[i] : -INFINITY;
  threadgroup_barrier(mem_flags::mem_device);
  const int start = clamp(p.penalty_start, 0, args.penalty_capacity);
  const int count = clamp(p.penalty_count, 0, args.penalty_capacity - start);
  device const int* toks = penalty_tokens + start;
  for (int i = int(tid); i < count; i += NT) {
    const int tok = toks[i];
    if (tok < 0 || tok >= V) continue;
    bool first = true;
    for (int j = 0; j < i && first; ++j) first = toks[j] != tok;
    if (!first) continue;
    int n = 0;
    for (int j = 0; j < count; ++j) n += toks[j] == tok ? 1 : 0;
    float l = vals[tok];
    if (p.repetition_penalty != 1.0f)
      l = l > 0.0f ? l / p.repetition_penalty : l * p.repetition_penalty;
    l -= p.presence_penalty;
    l -= p.frequency_penalty * float(n);
    vals[tok] = l;
  }
  threadgroup_barrier(mem_flags::mem_device);
  // Banned ids (e.g. end-of-sequence before min_tokens) cannot be drawn.
  const int ban_start = clamp(p.ban_start, 0, args.penalty_capacity);
  const int ban_count = clamp(p.ban_count, 0, args.penalty_capacity - ban_start);
  for (int i = int(tid); i < ban_count; i += NT) {
    const int tok = penalty_tokens[ban_start + i];
    if (tok >= 0 && tok < V) vals[tok] = -INFINITY;
  }
  threadgroup_barrier(mem_flags::mem_device);

  // f) speculative rows (kargs.h SampleRowParams): the probs rows they write or read.
  const bool writes_probs = p.probs_row >= 0 && p.probs_row < args.probs_rows;
  const bool reads_probs = p.draft_row >= 0 && p.draft_row < args.probs_rows;
  device float* q_out = probs + ulong(writes_probs ? p.probs_row : 0) * V;
  int id;
  if (p.temperature == 0.0f) {  // c) greedy
    id = sample_argmax(vals, V, fpart, ipart, tid, sg, lane);
    if (writes_probs) {
      for (int i = int(tid); i < V; i += NT) q_out[i] = i == id ? 1.0f : 0.0f;
    }
  } else {  // d)
    const float inv_t = 1.0f / p.temperature;
    float vm = -INFINITY;
    for (int i = int(tid); i < V; i += NT) {
      vals[i] *= inv_t;
      vm = max(vm, vals[i]);
    }
    const float vmax = sample_max(vm, fpart, sg, lane);
    for (int i = int(tid); i < S; i += NT)
      keys[i] = i < V ? sample_key(vals[i], uint(i)) : ~ulong(0);
    threadgroup_barrier(mem_flags::mem_device);
    // Bitonic sort of the keys, ascending.
    for (int k = 2; k <= S; k <<= 1) {
      for (int j = k >> 1; j > 0; j >>= 1) {
        for (int i = int(tid); i < S; i += NT) {
          const int l = i ^ j;
          if (l > i) {
            const ulong a = keys[i], b = keys[l];
            if ((a > b) == ((i & k) == 0)) {
              keys[i] = b;
              keys[l] = a;
            }
          }
        }
        threadgroup_barrier(mem_flags::mem_device);
      }
    }
    const int kk = (p.top_k > 0 && p.top_k < V) ? p.top_k : V;
    // Each thread owns a contiguous chunk of the sorted candidates [c0, c1).
    const int chunk = (kk + NT - 1) / NT;
    const int c0 = min(int(tid) * chunk, kk), c1 = min(c0 + chunk, kk);
    float zs = 0.0f;
    for (int i = c0; i < c1; ++i) zs += exp(vals[uint(keys[i])] - vmax);
    const float z = sample_sum(zs, fpart, sg, lane);
    int kept;
    if (p.top_p >= 1.0f) {  // kept = the min_p prefix of the top_k candidates
      int cnt = 0;
      for (int i = c0; i < c1; ++i)
        cnt += (p.min_p <= 0.0f || exp(vals[uint(keys[i])] - vmax) >= p.min_p) ? 1 : 0;
      kept = int(sample_sum(float(cnt), fpart, sg, lane) + 0.5f);
    } else {  // top_p: smallest prefix with mass >= top_p * z, cut earlier by min_p
      float cum = sample_exclusive_scan(zs, fpart, sg, lane);
      int cand = kk;
      for (int i = c0; i < c1; ++i) {
        const float wi = exp(vals[uint(keys[i])] - vmax);
        if (p.min_p > 0.0f && wi < p.min_p) {
          cand = max(i, 1);
          break;
        }
        cum += wi;
        if (cum >= p.top_p * z) {
          cand = i + 1;
          break;
        }
      }
      kept = sample_min_int(cand, ipart, sg, lane);
    }
    // Inverse-CDF draw over the kept prefix.
    const int d1 = min(c1, kept);
    float ts = 0.0f;
    int lp = -1;  // the thread's last kept candidate of nonzero weight
    for (int i = c0; i < d1; ++i) {
      const float w = exp(vals[uint(keys[i])] - vmax);
      ts += w;
      if (w > 0.0f) lp = i;
    }
    const float total = sample_sum(ts, fpart, sg, lane);
    const int last_pos = -sample_min_int(-lp, ipart, sg, lane);
    const float u = uniform_from_philox_stream(p.seed_lo, p.seed_hi, p.counter, p.stream);
    const ulong last_key = keys[kept - 1];
    id = -1;
    if (reads_probs) {  // f) keep the draft with probability min(1, p/q), else draw from p - q
      device const float* q = probs + ulong(p.draft_row) * V;
      const int x = clamp(p.draft_token, 0, V - 1);
      const float px = sample_kept_prob(vals, x, last_key, vmax, total);
      const float ua =
          uniform_from_philox_stream(p.seed_lo, p.seed_hi, p.counter, LONGBOW_PHILOX_STREAM_ACCEPT);
      if (ua * q[x] < px) {
        id = x;
      } else {  // residual draw in index order; each thread owns a contiguous chunk of ids
        const int vchunk = (V + NT - 1) / NT;
        const int v0 = min(int(tid) * vchunk, V), v1 = min(v0 + vchunk, V);
        float rs = 0.0f;
        for (int i = v0; i < v1; ++i) {
          rs += max(0.0f, sample_kept_prob(vals, i, last_key, vmax, total) - q[i]);
        }
        const float residual = sample_sum(rs, fpart, sg, lane);
        if (residual > 0.0f) {  // else p == q up to rounding: the plain draw from p below
          const float rtarget = u * residual;
          float racc = sample_exclusive_scan(rs, fpart, sg, lane);
          int rpick = V, rlast = -1;
          for (int i = v0; i < v1; ++i) {
            const float r = max(0.0f, sample_kept_prob(vals, i, last_key, vmax, total) - q[i]);
            if (r <= 0.0f) continue;
            racc += r;
            rlast = i;
            if (racc > rtarget) {
              rpick = i;
              break;
            }
          }
          rpick = sample_min_int(rpick, ipart, sg, lane);
          // Rounding left none: the last id with residual mass.
          rlast = -sample_min_int(-rlast, ipart, sg, lane);
          id = rpick < V ? rpick : rlast;
        }
      }
    }
    if (id < 0) {
      const float target = u * total;
      float acc = sample_exclusive_scan(ts, fpart, sg, lane);
      // Rounding left none: the last kept candidate of nonzero weight.
      int pick = last_pos >= 0 ? last_pos : kept - 1;
      for (int i = c0; i < d1; ++i) {
        acc += exp(vals[uint(keys[i])] - vmax);
        if (acc > target) {
          pick = i;
          break;
        }
      }
      pick = sample_min_int(pick, ipart, sg, lane);
      id = int(uint(keys[pick]));
    }
    if (writes_probs) {
      for (int i = int(tid); i < V; i += NT)
        q_out[i] = sample_kept_prob(vals, i, last_key, vmax, total);
    }
  }
  if (tid == 0) {
    out_ids[row] = id;
    out_logprobs[row] = raw[id] - lse;
  }
}
