// Token sampling, one logits row per thread-chunk. The exact rule (shared with the Metal kernel):
//  a) logprob = log_softmax(raw logits)[id] = raw[id] - (max + log(sum(exp(raw - max)))), NaN
//  for every id of a row holding NaN or +inf or only -inf (the normalizer is undefined);  b)
//  repetition / presence / frequency penalties, then banned ids (ban slice) set to -inf; c)
//  temperature 0 -> argmax (lowest index on ties);  d) logits /= T, candidates sorted by (logit
//  desc, index asc), top_k, softmax, top_p prefix, min_p, renormalize, and inverse-CDF with u =
//  Philox(seed, counter). Sorting is lazy: only a growing head of the candidates is selected
//  (nth_element) and sorted, which is all the truncation and the draw ever look at. e) top
//  logprobs: the row's k most likely ids by (raw logit desc, id asc, NaN last) with log_softmax(raw
//  logits) at each, as a); the draw does not depend on them.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>

#include "longbow/backend/cpu/attention/attention_common.h"
#include "longbow/backend/cpu/cpu_ops.h"
#include "philox.h"

namespace longbow::cpu {

namespace {
constexpr int FIRST_HEAD = 256;  // candidates sorted in the first round

struct RowScratch {
  float* vals;      // (vocab,) working logits
  float* weights;   // (vocab,) exp(logit - max)
  int32_t* idx;     // (vocab,) candidate order
  int32_t* counts;  // (vocab,) penalty counts of the row's tokens
};

void apply_penalties(const SampleRowParams& p, const int32_t* toks, int vocab, RowScratch& s) {
  if (p.penalty_count == 0) return;
  for (int i = 0; i < p.penalty_count; ++i) {  // counts scratch may hold another op's data
    if (toks[i] >= 0 && toks[i] < vocab) s.counts[toks[i]] = 0;
  }
  for (int i = 0; i < p.penalty_count; ++i) {
    require(toks[i] >= 0 && toks[i] < vocab, "cpu.sample", [&] {
      return "penalty token " + std::to_string(i) + ": expected 0 <= id < " +
             std::to_string(vocab) + ", found " + std::to_string(toks[i]);
    });
    s.counts[toks[i]]++;
  }
  for (int i = 0; i < p.penalty_count; ++i) {
    const int tok = toks[i];
    const int count = s.counts[tok];
    if (count == 0) continue;  // already handled (distinct tokens once)
    s.counts[tok] = 0;
    float l = s.vals[tok];
    if (p.repetition_penalty != 1.0f)
      l = l > 0.0f ? l / p.repetition_penalty : l * p.repetition_penalty;
    l -= p.presence_penalty;
    l -= p.frequency_penalty * static_cast<float>(count);
    s.vals[tok] = l;
  }
}

int argmax(const float* v, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i) {
    if (v[i] > v[best]) best = i;
  }
  return best;
}

// Draws from the truncated distribution; vals are already divided by the temperature.
int sample_truncated(const SampleRowParams& p, int vocab, RowScratch& s) {
  const float* v = s.vals;
  float* w = s.weights;
  auto before = [v](int32_t a, int32_t b) { return v[a] > v[b] || (v[a] == v[b] && a < b); };
  const int k = (p.top_k > 0 && p.top_k < vocab) ? p.top_k : vocab;
  std::iota(s.idx, s.idx + vocab, 0);
  const float vmax = v[argmax(v, vocab)];
  for (int i = 0; i < vocab; ++i) w[i] = std::exp(v[i] - vmax);  // unnormalized probs, max = 1
  // Candidates with w >= 1e-4 precede all others in the sorted order: select among them first.
  const float v_cut = vmax - 9.21f;
  int num_likely = static_cast<int>(
      std::partition(s.idx, s.idx + vocab, [v, v_cut](int32_t i) { return v[i] >= v_cut; }) -
      s.idx);
  if (k < vocab) {  // the top_k set, in front
    if (k <= num_likely) {
      std::nth_element(s.idx, s.idx + k, s.idx + num_likely, before);
      num_likely = k;
    } else {
      std::nth_element(s.idx + num_likely, s.idx + k, s.idx + vocab, before);
    }
  }
  double z = 0.0;  // softmax normalizer over the top_k candidates
  for (int i = 0; i < k; ++i) z += w[s.idx[i]];
  const double u = uniform_from_philox(p.seed_lo, p.seed_hi, p.counter);
  const bool use_top_p = p.top_p < 1.0f;
  // Without top_p the kept set is {w >= min_p} among the top_k: a sorted prefix, found in O(V).
  int kept = -1;
  double total = 0.0;
  if (!use_top_p) {
    kept = 0;
    for (int i = 0; i < k; ++i) {
      if (p.min_p <= 0.0f || w[s.idx[i]] >= p.min_p) {
        ++kept;
        total += w[s.idx[i]];
      }
    }
  }
  // Grow the sorted head until it contains the end of the kept prefix (top_p) and the draw.
  for (int head = std::min(FIRST_HEAD, k);; head = std::min(2 * head, k)) {
    const int range = head <= num_likely ? num_likely : k;
    if (head < range) std::nth_element(s.idx, s.idx + head, s.idx + range, before);
    std::sort(s.idx, s.idx + head, before);
    if (kept < 0) {  // top_p: smallest prefix with mass >= top_p, cut earlier by min_p
      double cum = 0.0;
      for (int i = 0; i < head && kept < 0; ++i) {
        const double wi = w[s.idx[i]];
        if (p.min_p > 0.0f && wi < p.min_p) {
          kept = std::max(i, 1);
        } else {
          cum += wi;
          if (cum >= static_cast<double>(p.top_p) * z) kept = i + 1;
        }
      }
      if (kept < 0 && head == k) kept = k;
      if (kept < 0) continue;
      total = 0.0;
      for (int i = 0; i < kept; ++i) total += w[s.idx[i]];
    }
    const double target = u * total;
    const int limit = std::min(head, kept);
    double acc = 0.0;
    for (int i = 0; i < limit; ++i) {
      acc += w[s.idx[i]];
      if (acc > target) return s.idx[i];
    }
    if (limit == kept) return s.idx[kept - 1];  // rounding left none: the last kept candidate
  }
}

// Whether value a, at a higher index than b, ranks before b: (value desc, index asc, NaN last).
inline bool ranks_before_earlier(float a, float b) {
  return !std::isnan(a) && (std::isnan(b) || a > b);
}

// e) The k <= MAX_TOP most likely ids of a row in one pass over a sorted list of at most k
// entries (insertion; a candidate must beat the current last to enter, so this is O(V) for a
// row of any order). Writes the row's max_top outputs, padded with id -1 / logprob -inf.
void top_logprobs(const float* raw, int vocab, double lse, int k, int max_top, int32_t* top_ids,
                  float* top_lps) {
  const int n = std::min(k, vocab);
  int32_t best[SampleArgs::MAX_TOP];
  int size = 0;
  for (int i = 0; i < vocab && n > 0; ++i) {
    const float v = raw[i];
    if (size == n) {
      if (!ranks_before_earlier(v, raw[best[n - 1]])) continue;
      --size;  // the last entry drops out
    }
    int at = size++;
    for (; at > 0 && ranks_before_earlier(v, raw[best[at - 1]]); --at) best[at] = best[at - 1];
    best[at] = i;
  }
  for (int j = 0; j < max_top; ++j) {
    top_ids[j] = j < n ? best[j] : -1;
    top_lps[j] = j < n ? static_cast<float>(static_cast<double>(raw[best[j]]) - lse) : -INFINITY;
  }
}

// Row outputs: the chosen id and logprob, and the row's (max_top,) top-logprob entries.
struct RowOut {
  int32_t* id;
  float* logprob;
  int32_t* top_ids;
  float* top_logprobs;
  int max_top;
};

void sample_row(const SampleRowParams& p, const float* raw, const int32_t* toks,
                const int32_t* bans, int vocab, RowScratch& s, const RowOut& out) {
  // a) log-softmax normalizer of the raw logits.
  // Vectorized max and exp-sum (the attention kernels' SIMD softmax pieces): a scalar exp per
  // vocab entry cost ~0.25 ms a row, a large share of a batched decode step.
  const AttnKernels& k = attn_kernels();
  const float raw_max = k.row_max(raw, vocab);
  bool has_nan = false;  // the SIMD max and exp may skip NaN: rule a) asks for NaN
  for (int i = 0; i < vocab; ++i) {
    s.weights[i] = raw[i];
    has_nan |= raw[i] != raw[i];
  }
  const double lse =
      has_nan || std::isinf(raw_max)
          ? NAN
          : raw_max + std::log(static_cast<double>(k.exp_sum(s.weights, vocab, raw_max)));
  if (out.max_top > 0)
    top_logprobs(raw, vocab, lse, p.num_top_logprobs, out.max_top, out.top_ids, out.top_logprobs);
  int32_t* out_id = out.id;
  float* out_logprob = out.logprob;
  if (p.temperature == 0.0f && p.penalty_count == 0 && p.ban_count == 0) {
    // Plain greedy: the first index holding the maximum (argmax's lowest index on ties), no copy.
    // Rows with NaN logits keep argmax's answer (NaN never wins a comparison, NaN first stays).
    const float* hit = std::isnan(raw[0]) ? raw + vocab : std::find(raw, raw + vocab, raw_max);
    *out_id = hit != raw + vocab ? static_cast<int32_t>(hit - raw) : argmax(raw, vocab);
    *out_logprob = static_cast<float>(static_cast<double>(raw[*out_id]) - lse);
    return;
  }
  // b) penalties on a working copy, then banned ids (checked in op_sample) cannot be drawn.
  std::memcpy(s.vals, raw, static_cast<size_t>(vocab) * sizeof(float));
  apply_penalties(p, toks, vocab, s);
  for (int i = 0; i < p.ban_count; ++i) s.vals[bans[i]] = -INFINITY;
  int id;
  if (p.temperature == 0.0f) {  // c) greedy
    id = argmax(s.vals, vocab);
  } else {  // d)
    const float inv_t = 1.0f / p.temperature;
    for (int i = 0; i < vocab; ++i) s.vals[i] *= inv_t;
    id = sample_truncated(p, vocab, s);
  }
  *out_id = id;
  *out_logprob = static_cast<float>(static_cast<double>(raw[id]) - lse);
}

void validate_params(const SampleRowParams& p, int row, int max_top) {
  auto at = [row] { return "row " + std::to_string(row) + ": "; };  // built only on failure
  require(p.temperature >= 0.0f && std::isfinite(p.temperature), "cpu.sample", [&] {
    return at() + "expected temperature >= 0, found " + std::to_string(p.temperature);
  });
  require(p.top_k >= 0, "cpu.sample",
          [&] { return at() + "expected top_k >= 0, found " + std::to_string(p.top_k); });
  require(p.top_p > 0.0f && p.top_p <= 1.0f, "cpu.sample",
          [&] { return at() + "expected 0 < top_p <= 1, found " + std::to_string(p.top_p); });
  require(p.min_p >= 0.0f && p.min_p <= 1.0f, "cpu.sample",
          [&] { return at() + "expected 0 <= min_p <= 1, found " + std::to_string(p.min_p); });
  require(p.repetition_penalty > 0.0f, "cpu.sample", [&] {
    return at() + "expected repetition_penalty > 0, found " + std::to_string(p.repetition_penalty);
  });
  require(p.penalty_start >= 0 && p.penalty_count >= 0, "cpu.sample",
          [&] { return at() + "expected non-negative penalty_start and penalty_count"; });
  require(p.ban_start >= 0 && p.ban_count >= 0, "cpu.sample",
          [&] { return at() + "expected non-negative ban_start and ban_count"; });
  require(p.num_top_logprobs >= 0 && p.num_top_logprobs <= max_top, "cpu.sample", [&] {
    return at() + "expected num_top_logprobs in 0..max_top (" + std::to_string(max_top) +
           "), found " + std::to_string(p.num_top_logprobs);
  });
}
}  // namespace

void op_sample(Ctx& c, const SampleArgs& a) {
  const char* where = "cpu.sample";
  require(a.num_rows >= 0 && a.vocab_size > 0, where, [&] {
    return "expected num_rows >= 0 and vocab_size > 0, found " + std::to_string(a.num_rows) + ", " +
           std::to_string(a.vocab_size);
  });
  require(a.max_top >= 0 && a.max_top <= SampleArgs::MAX_TOP, where, [&] {
    return "expected max_top in 0.." + std::to_string(SampleArgs::MAX_TOP) + ", found " +
           std::to_string(a.max_top);
  });
  const size_t R = a.num_rows, V = a.vocab_size, K = a.max_top;
  int32_t* ids = view_as<int32_t>(a.out_ids, R, where, "out_ids");             // (num_rows,)
  float* logprobs = view_as<float>(a.out_logprobs, R, where, "out_logprobs");  // (num_rows,)
  const float* logits =
      view_as<const float>(a.logits, R * V, where, "logits");  // (num_rows, vocab)
  const auto* params = view_as<const SampleRowParams>(a.params, R, where, "params");  // (num_rows,)
  // (num_rows, max_top) each; not bound when max_top is 0.
  int32_t* top_ids =
      K == 0 ? nullptr : view_as<int32_t>(a.out_top_ids, R * K, where, "out_top_ids");
  float* top_lps =
      K == 0 ? nullptr : view_as<float>(a.out_top_logprobs, R * K, where, "out_top_logprobs");
  std::vector<const int32_t*> toks(R), bans(R);  // per row: its slices of penalty_tokens
  for (size_t r = 0; r < R; ++r) {
    const SampleRowParams& p = params[r];
    validate_params(p, static_cast<int>(r), a.max_top);
    toks[r] = p.penalty_count == 0
                  ? nullptr
                  : view_as<const int32_t>(a.penalty_tokens.at(p.penalty_start * sizeof(int32_t)),
                                           p.penalty_count, where, "penalty_tokens");
    bans[r] = p.ban_count == 0
                  ? nullptr
                  : view_as<const int32_t>(a.penalty_tokens.at(p.ban_start * sizeof(int32_t)),
                                           p.ban_count, where, "penalty_tokens (banned ids)");
    for (int i = 0; i < p.ban_count; ++i) {
      require(bans[r][i] >= 0 && bans[r][i] < a.vocab_size, where, [&] {
        return "row " + std::to_string(r) + ": banned id " + std::to_string(i) +
               ": expected 0 <= id < " + std::to_string(a.vocab_size) + ", found " +
               std::to_string(bans[r][i]);
      });
    }
  }
  c.scratch.ensure(c.pool.num_threads(), 2 * V, 2 * V);
  c.pool.parallel_for(a.num_rows, [&](int64_t b, int64_t e, int thread_idx) {
    RowScratch s{c.scratch.f32[thread_idx].data(), c.scratch.f32[thread_idx].data() + V,
                 c.scratch.i32[thread_idx].data(), c.scratch.i32[thread_idx].data() + V};
    for (int64_t r = b; r < e; ++r) {
      const RowOut out{ids + r, logprobs + r, top_ids ? top_ids + r * K : nullptr,
                       top_lps ? top_lps + r * K : nullptr, a.max_top};
      sample_row(params[r], logits + r * V, toks[r], bans[r], a.vocab_size, s, out);
    }
  });
}

}  // namespace longbow::cpu
