// Phase profile of the split baseline (bench/profile_attention_split.py): the same loop as
// attention_split.cpp with a steady_clock read at each phase boundary of every (token, head)
// row, summed per thread. A measuring copy, so the reference itself stays untouched and unslowed.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <vector>

#include "longbow/backend/cpu/attention/attention_common.h"
#include "longbow/backend/cpu/thread_pool.h"

namespace longbow::cpu {

AttentionPhaseTimes profile_attention_split(const AttentionArgs& a, int num_threads) {
  using clock = std::chrono::steady_clock;
  const AttnBatch b = parse_attention(a);
  AttentionPhaseTimes times;
  if (b.num_tokens == 0 || b.num_heads == 0) return times;
  ThreadPool pool(num_threads);
  const int n = pool.num_threads();
  const size_t D = b.head_dim, H = b.num_heads;
  std::vector<std::vector<float>> scratch(
      n, std::vector<float>(b.max_ctx + 2 * D));  // (max_ctx + 2 D,)
  std::vector<std::array<double, 3>> acc(n, {0.0, 0.0, 0.0});
  std::vector<int32_t> token_seq(b.num_tokens);  // (num_tokens,)
  for (int s = 0; s < b.num_seqs; ++s) {
    for (int t = b.query_start[s]; t < b.query_start[s + 1]; ++t) token_seq[t] = s;
  }
  const RowKernels& kern = row_kernels();
  const auto start = clock::now();
  pool.parallel_for(static_cast<int64_t>(b.num_tokens) * H, [&](int64_t begin, int64_t end,
                                                                int tid) {
    float* scores = scratch[tid].data();  // (max_ctx,)
    float* row = scores + b.max_ctx;      // (head_dim,)
    float* out_acc = row + D;             // (head_dim,)
    for (int64_t item = begin; item < end; ++item) {
      const int t = static_cast<int>(item / H), h = static_cast<int>(item % H), kvh = h / b.group;
      const int s = token_seq[t], num_keys = b.positions[t] + 1,
                first = b.window_begin(b.positions[t]);
      const float* qv = b.q + (static_cast<size_t>(t) * H + h) * D;
      auto load = [&](const KvPlane& p, int j) -> const float* {
        const void* src = b.row(p, s, kvh, j);
        if (p.type == DType::F32) return static_cast<const float*>(src);
        kern.dequant_row(p.type, src, row, b.head_dim);
        return row;
      };
      const auto t0 = clock::now();
      float max_score = -INFINITY;
      for (int j = first; j < num_keys; ++j) {
        scores[j] = kern.dot(qv, load(b.k, j), b.head_dim) * b.scale;
        max_score = std::max(max_score, scores[j]);
      }
      if (b.softcap > 0.0f) {
        max_score = -INFINITY;
        for (int j = first; j < num_keys; ++j) {
          scores[j] = b.softcap * std::tanh(scores[j] / b.softcap);
          max_score = std::max(max_score, scores[j]);
        }
      }
      const auto t1 = clock::now();
      double denom = 0.0;
      for (int j = first; j < num_keys; ++j) {
        scores[j] = std::exp(scores[j] - max_score);
        denom += scores[j];
      }
      const auto t2 = clock::now();
      std::fill(out_acc, out_acc + D, 0.0f);
      for (int j = first; j < num_keys; ++j)
        kern.axpy(scores[j], load(b.v, j), out_acc, b.head_dim);
      const float inv = static_cast<float>(1.0 / denom);
      float* o = b.out + (static_cast<size_t>(t) * H + h) * D;
      for (size_t i = 0; i < D; ++i) o[i] = out_acc[i] * inv;
      const auto t3 = clock::now();
      acc[tid][0] += std::chrono::duration<double>(t1 - t0).count();
      acc[tid][1] += std::chrono::duration<double>(t2 - t1).count();
      acc[tid][2] += std::chrono::duration<double>(t3 - t2).count();
    }
  });
  times.wall = std::chrono::duration<double>(clock::now() - start).count();
  for (const auto& a3 : acc) times.scores += a3[0], times.softmax += a3[1], times.values += a3[2];
  return times;
}

}  // namespace longbow::cpu
