// Token sampling, one logits row per thread-chunk. The exact rule (shared with the Metal kernel):
//  a) logprob = log_softmax(raw logits)[id] = raw[id] - (max + log(sum(exp(raw - max)))), NaN
//  for every id of a row holding NaN or +inf or only -inf (the normalizer is undefined);  b)
//  ids outside the row's allowed-token mask (mask_row) set to -inf, repetition / presence /
//  frequency penalties, then banned ids (ban slice) set to -inf; c) temperature 0 -> argmax
//  (lowest index on ties);  d) logits /= T, candidates sorted by (logit desc, index asc), top_k,
//  softmax, top_p prefix, min_p, renormalize, and inverse-CDF with u = Philox(seed, counter,
//  stream); if rounding leaves the target unreached, the last kept candidate of nonzero weight (a
//  -inf logit is never drawn). Sorting is lazy: only a growing head of the candidates is
//  selected (nth_element) and sorted, which is all the truncation and the draw ever look at. e) top
//  logprobs: the row's k most likely ids by (raw logit desc, id asc, NaN last) with log_softmax(raw
//  logits) at each, as a); the draw does not depend on them. f) speculative decoding
//  (SampleRowParams probs_row / draft_row): a row writes the distribution of d) (one-hot at
//  temperature 0), or, given a draft x drawn from q, keeps x iff u_accept * q(x) < p(x) and else
//  draws from max(0, p - q) in index order with the row's u (d) is the draft-free case).
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

// The allowed-token mask (bit t % 32 of word t / 32 set = t allowed): other ids' logits -inf.
void apply_mask(const uint32_t* mask, int vocab, float* vals) {
  for (int w = 0; w * 32 < vocab; ++w) {
    const uint32_t bits = mask[w];
    if (bits == 0xffffffffu) continue;
    const int n = std::min(32, vocab - w * 32);
    for (int b = 0; b < n; ++b) {
      if (((bits >> b) & 1u) == 0) vals[w * 32 + b] = -INFINITY;
    }
  }
}

int argmax(const float* v, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i) {
    if (v[i] > v[best]) best = i;
  }
  return best;
}

// The candidate order: (value desc, index asc).
struct RanksBefore {
  const float* v;
  bool operator()(int32_t a, int32_t b) const { return v[a] > v[b] || (v[a] == v[b] && a < b); }
};

// The kept candidates of a row whose vals are already divided by the temperature: the top_k by
// (value desc, index asc), the top_p prefix, min_p; w holds exp(val - max). s.idx is sorted lazily:
// a head that grows as far as the caller looks, which is all the truncation and the draw need.
class Truncation {
 public:
  // has_nan: the row's logits hold a NaN.
  Truncation(const SampleRowParams& p, int vocab, bool has_nan, RowScratch& s)
      : v_(s.vals), w_(s.weights), idx_(s.idx), vocab_(vocab) {
    k_ = (p.top_k > 0 && p.top_k < vocab) ? p.top_k : vocab;
    std::iota(idx_, idx_ + vocab, 0);
    vmax_ = v_[argmax(v_, vocab)];
    // Unnormalized probabilities, max = 1: the attention kernels' SIMD exp (a scalar exp per
    // vocab entry was ~40 % of a sampled row) where every value is a number and the max finite;
    // other rows keep std::exp's NaN, as the Metal kernel.
    if (has_nan || !std::isfinite(vmax_)) {
      for (int i = 0; i < vocab; ++i) w_[i] = std::exp(v_[i] - vmax_);
    } else {
      std::memcpy(w_, v_, static_cast<size_t>(vocab) * sizeof(float));
      attn_kernels().exp_sum(w_, vocab, vmax_);
    }
    // Candidates with w >= 1e-4 precede all others in the sorted order: select among them first.
    const float v_cut = vmax_ - 9.21f;
    const float* v = v_;
    num_likely_ = static_cast<int>(
        std::partition(idx_, idx_ + vocab, [v, v_cut](int32_t i) { return v[i] >= v_cut; }) - idx_);
    if (k_ < vocab) {  // the top_k set, in front
      if (k_ <= num_likely_) {
        std::nth_element(idx_, idx_ + k_, idx_ + num_likely_, before());
        num_likely_ = k_;
      } else {
        std::nth_element(idx_ + num_likely_, idx_ + k_, idx_ + vocab, before());
      }
    }
    double z = 0.0;  // softmax normalizer over the top_k candidates
    for (int i = 0; i < k_; ++i) z += w_[idx_[i]];
    if (p.top_p >= 1.0f) {
      // Without top_p the kept set is {w >= min_p} among the top_k: a sorted prefix, found in O(V).
      min_w_ = std::max(p.min_p, 0.0f);
      kept_ = 0;
      for (int i = 0; i < k_; ++i) {
        if (p.min_p <= 0.0f || w_[idx_[i]] >= p.min_p) {
          ++kept_;
          total_ += w_[idx_[i]];
        }
      }
      return;
    }
    // top_p: the smallest prefix with mass >= top_p, cut earlier by min_p.
    double cum = 0.0;
    for (int i = 0; kept_ < 0; ++i) {
      if (i == k_) {
        kept_ = k_;
        break;
      }
      sort_head(i + 1);
      const double wi = w_[idx_[i]];
      if (p.min_p > 0.0f && wi < p.min_p) {
        kept_ = std::max(i, 1);
      } else {
        cum += wi;
        if (cum >= static_cast<double>(p.top_p) * z) kept_ = i + 1;
      }
    }
    for (int i = 0; i < kept_; ++i) total_ += w_[idx_[i]];
  }

  // Inverse-CDF draw with u in [0, 1) over the kept candidates in sorted order.
  int draw(double u) {
    const double target = u * total_;
    double acc = 0.0;
    int last_pos = -1;  // the last kept candidate of nonzero weight seen
    for (int i = 0; i < kept_; ++i) {
      sort_head(i + 1);
      const double wi = w_[idx_[i]];
      acc += wi;
      if (acc > target) return idx_[i];
      if (wi > 0.0) last_pos = i;
    }
    // Rounding left none: that candidate, so a -inf logit (masked or banned id) is never drawn.
    return idx_[last_pos >= 0 ? last_pos : kept_ - 1];
  }

  // The truncated distribution's probability of id (0 outside the kept set).
  double prob(int id) {
    find_last_kept();
    return is_kept(id) ? w_[id] / total_ : 0.0;
  }
  // The whole distribution: out (vocab,).
  void probs(float* out) {
    find_last_kept();
    for (int i = 0; i < vocab_; ++i)
      out[i] = is_kept(i) ? static_cast<float>(w_[i] / total_) : 0.0f;
  }

 private:
  RanksBefore before() const { return {v_}; }
  // The kept set as a test: ids ranking at or before last_kept_ (-1: every id is a top_k
  // candidate), and, without top_p, w >= min_p. Found in O(k) without sorting: the sorted head's
  // last kept entry, else the worst of the top_k set idx[0..k).
  void find_last_kept() {
    if (last_found_) return;
    last_found_ = true;
    if (kept_ <= head_) {
      last_kept_ = idx_[kept_ - 1];
    } else if (k_ < vocab_) {
      last_kept_ = idx_[0];
      for (int i = 1; i < k_; ++i) {
        if (before()(last_kept_, idx_[i])) last_kept_ = idx_[i];
      }
    }
  }
  bool is_kept(int id) const {
    return w_[id] >= min_w_ && (last_kept_ < 0 || id == last_kept_ || before()(id, last_kept_));
  }
  // Makes idx[0..n) the n first candidates in sorted order (n <= k): the head grows by doubling.
  void sort_head(int n) {
    if (n <= head_) return;
    int h = head_ == 0 ? std::min(FIRST_HEAD, k_) : head_;
    while (h < n) h = std::min(2 * h, k_);
    const int range = h <= num_likely_ ? num_likely_ : k_;
    if (h < range) std::nth_element(idx_, idx_ + h, idx_ + range, before());
    std::sort(idx_, idx_ + h, before());
    head_ = h;
  }

  const float* v_;
  float* w_;
  int32_t* idx_;
  int vocab_, k_ = 0, num_likely_ = 0;
  int head_ = 0;  // idx[0..head) is sorted
  float vmax_ = 0.0f;
  int kept_ = -1;
  double total_ = 0.0;
  float min_w_ = 0.0f;  // the min_p cut when the kept set is the top_k set cut by min_p
  bool last_found_ = false;
  int last_kept_ = -1;
};

// Speculative rejection step (SampleRowParams::draft_row): keeps the draft token x with
// probability min(1, p(x) / q(x)), else draws from norm(max(0, p - q)) in index order.
int accept_or_resample(const SampleRowParams& p, const float* q, int vocab, Truncation& t) {
  const int x = p.draft_token;
  const double ua =
      uniform_from_philox_stream(p.seed_lo, p.seed_hi, p.counter, LONGBOW_PHILOX_STREAM_ACCEPT);
  if (ua * q[x] < t.prob(x)) return x;
  const double u = uniform_from_philox_stream(p.seed_lo, p.seed_hi, p.counter, p.stream);
  double residual = 0.0;
  for (int i = 0; i < vocab; ++i) residual += std::max(0.0, t.prob(i) - q[i]);
  if (!(residual > 0.0)) return t.draw(u);  // p == q up to rounding: a draw from p
  const double target = u * residual;
  double acc = 0.0;
  int last = vocab;
  for (int i = 0; i < vocab; ++i) {
    const double r = std::max(0.0, t.prob(i) - q[i]);
    if (r <= 0.0) continue;
    acc += r;
    last = i;
    if (acc > target) return i;
  }
  return last;  // rounding left none: the last id with residual mass
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

// Row outputs: the chosen id and logprob, the row's (max_top,) top-logprob entries, and the probs
// rows (speculative decoding: this row's distribution is written to probs[probs_row], a draft's
// read from probs[draft_row]).
struct RowOut {
  int32_t* id;
  float* logprob;
  int32_t* top_ids;
  float* top_logprobs;
  int max_top;
  float* probs;  // (num_probs_rows, vocab) or nullptr
};

void write_one_hot(float* q, int vocab, int id) {
  std::fill(q, q + vocab, 0.0f);
  q[id] = 1.0f;
}

// mask: the row's (ceil(vocab / 32),) allowed-token words, or nullptr (every id allowed).
void sample_row(const SampleRowParams& p, const float* raw, const int32_t* toks,
                const int32_t* bans, const uint32_t* mask, int vocab, RowScratch& s,
                const RowOut& out) {
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
  float* q_out = p.probs_row >= 0 ? out.probs + static_cast<size_t>(p.probs_row) * vocab : nullptr;
  int id;
  if (p.temperature == 0.0f && p.penalty_count == 0 && p.ban_count == 0 && mask == nullptr) {
    // Plain greedy: the first index holding the maximum (argmax's lowest index on ties), no copy.
    // Rows with NaN logits keep argmax's answer (NaN never wins a comparison, NaN first stays).
    const float* hit = std::isnan(raw[0]) ? raw + vocab : std::find(raw, raw + vocab, raw_max);
    id = hit != raw + vocab ? static_cast<int32_t>(hit - raw) : argmax(raw, vocab);
    if (q_out) write_one_hot(q_out, vocab, id);
  } else {
    // b) on a working copy: the allowed-token mask, penalties, then banned ids (checked in
    // op_sample) cannot be drawn.
    std::memcpy(s.vals, raw, static_cast<size_t>(vocab) * sizeof(float));
    if (mask) apply_mask(mask, vocab, s.vals);
    apply_penalties(p, toks, vocab, s);
    for (int i = 0; i < p.ban_count; ++i) s.vals[bans[i]] = -INFINITY;
    if (p.temperature == 0.0f) {  // c) greedy
      id = argmax(s.vals, vocab);
      if (q_out) write_one_hot(q_out, vocab, id);
    } else {  // d)
      const float inv_t = 1.0f / p.temperature;
      for (int i = 0; i < vocab; ++i) s.vals[i] *= inv_t;
      Truncation t(p, vocab, has_nan, s);
      if (p.draft_row >= 0) {
        id = accept_or_resample(p, out.probs + static_cast<size_t>(p.draft_row) * vocab, vocab, t);
      } else {
        id = t.draw(uniform_from_philox_stream(p.seed_lo, p.seed_hi, p.counter, p.stream));
        if (q_out) t.probs(q_out);
      }
    }
  }
  *out.id = id;
  *out.logprob = static_cast<float>(static_cast<double>(raw[id]) - lse);
}

void validate_params(const SampleRowParams& p, int row, int max_top, int vocab, int num_probs_rows,
                     int num_mask_rows) {
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
  require(p.probs_row >= -1 && p.probs_row < num_probs_rows && p.draft_row >= -1 &&
              p.draft_row < num_probs_rows,
          "cpu.sample", [&] {
            return at() + "expected probs_row and draft_row in -1.." +
                   std::to_string(num_probs_rows - 1) + " (num_probs_rows " +
                   std::to_string(num_probs_rows) + "), found " + std::to_string(p.probs_row) +
                   ", " + std::to_string(p.draft_row);
          });
  require(p.draft_row < 0 || (p.draft_token >= 0 && p.draft_token < vocab), "cpu.sample", [&] {
    return at() + "expected 0 <= draft_token < " + std::to_string(vocab) + ", found " +
           std::to_string(p.draft_token);
  });
  require(p.mask_row >= -1 && p.mask_row < num_mask_rows, "cpu.sample", [&] {
    return at() + "expected mask_row in -1.." + std::to_string(num_mask_rows - 1) +
           " (num_mask_rows " + std::to_string(num_mask_rows) + "), found " +
           std::to_string(p.mask_row);
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
  require(a.num_probs_rows >= 0, where, [&] {
    return "expected num_probs_rows >= 0, found " + std::to_string(a.num_probs_rows);
  });
  // (num_probs_rows, vocab); not bound when num_probs_rows is 0.
  float* probs = a.num_probs_rows == 0
                     ? nullptr
                     : view_as<float>(a.probs, a.num_probs_rows * V, where, "probs");
  require(
      a.num_mask_rows >= 0 && (a.num_mask_rows == 0 || a.mask_words == (a.vocab_size + 31) / 32),
      where, [&] {
        return "expected num_mask_rows >= 0 and mask_words = ceil(vocab_size / 32) = " +
               std::to_string((a.vocab_size + 31) / 32) + ", found " +
               std::to_string(a.num_mask_rows) + ", " + std::to_string(a.mask_words);
      });
  // (num_mask_rows, mask_words); not bound when num_mask_rows is 0.
  const uint32_t* allowed =
      a.num_mask_rows == 0
          ? nullptr
          : view_as<const uint32_t>(a.allowed, static_cast<size_t>(a.num_mask_rows) * a.mask_words,
                                    where, "allowed");
  std::vector<const int32_t*> toks(R), bans(R);  // per row: its slices of penalty_tokens
  bool writes_probs = false, reads_probs = false;
  for (size_t r = 0; r < R; ++r) {
    const SampleRowParams& p = params[r];
    validate_params(p, static_cast<int>(r), a.max_top, a.vocab_size, a.num_probs_rows,
                    a.num_mask_rows);
    writes_probs |= p.probs_row >= 0;
    reads_probs |= p.draft_row >= 0;
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
  require(!(writes_probs && reads_probs), where,
          "expected rows that write probs (probs_row) or rows that read them (draft_row), not both "
          "in one call");
  c.scratch.ensure(c.pool.num_threads(), 2 * V, 2 * V);
  c.pool.parallel_for(a.num_rows, [&](int64_t b, int64_t e, int thread_idx) {
    RowScratch s{c.scratch.f32[thread_idx].data(), c.scratch.f32[thread_idx].data() + V,
                 c.scratch.i32[thread_idx].data(), c.scratch.i32[thread_idx].data() + V};
    for (int64_t r = b; r < e; ++r) {
      const RowOut out{ids + r,
                       logprobs + r,
                       top_ids ? top_ids + r * K : nullptr,
                       top_lps ? top_lps + r * K : nullptr,
                       a.max_top,
                       probs};
      const int m = params[r].mask_row;
      sample_row(params[r], logits + r * V, toks[r], bans[r],
                 m < 0 ? nullptr : allowed + static_cast<size_t>(m) * a.mask_words, a.vocab_size, s,
                 out);
    }
  });
}

}  // namespace longbow::cpu
