#include "longbow/engine/sample_rows.h"

#include <algorithm>

namespace longbow::engine {

void append_banned_ids(const Sequence& seq, int num_generated, const std::vector<int>& eos_ids,
                       int vocab_size, std::vector<int32_t>& out) {
  const auto& p = seq.params;
  // As in vLLM: the first min_tokens tokens are never stop or end-of-sequence ids.
  if (num_generated > p.min_tokens) return;
  for (int id : p.stop_token_ids) {
    if (id >= 0 && id < vocab_size) out.push_back(id);
  }
  if (!p.ignore_eos) {
    for (int id : eos_ids) {
      if (id >= 0 && id < vocab_size) out.push_back(id);
    }
  }
}

SampleRowParams sample_row_params(const Sequence& seq, int j, const std::vector<int>& eos_ids,
                                  int vocab_size, std::vector<int32_t>& tokens) {
  const SamplingParams& sp = seq.params;
  SampleRowParams p;
  p.temperature = sp.temperature;
  p.top_k = sp.top_k;
  p.top_p = sp.top_p;
  p.min_p = sp.min_p;
  p.repetition_penalty = sp.repetition_penalty;
  p.presence_penalty = sp.presence_penalty;
  p.frequency_penalty = sp.frequency_penalty;
  p.seed_lo = static_cast<uint32_t>(seq.seed);
  p.seed_hi = static_cast<uint32_t>(seq.seed >> 32);
  p.counter = static_cast<uint32_t>(seq.num_generated() + j);
  p.num_top_logprobs = sp.top_logprobs;
  const bool penalized =
      sp.repetition_penalty != 1.0f || sp.presence_penalty != 0.0f || sp.frequency_penalty != 0.0f;
  p.penalty_start = static_cast<int32_t>(tokens.size());
  p.penalty_count = penalized ? seq.num_tokens() + j : 0;
  if (penalized) {
    tokens.insert(tokens.end(), seq.tokens.begin(), seq.tokens.end());
    tokens.insert(tokens.end(), seq.draft_tokens.begin(), seq.draft_tokens.begin() + j);
  }
  p.ban_start = static_cast<int32_t>(tokens.size());
  append_banned_ids(seq, seq.num_generated() + j + 1, eos_ids, vocab_size, tokens);
  p.ban_count = static_cast<int32_t>(tokens.size()) - p.ban_start;
  return p;
}

void add_mask_row(const Sequence& seq, const std::vector<int32_t>& tokens, SampleRowParams& p,
                  std::vector<uint32_t>& masks) {
  const std::vector<uint32_t>& mask = seq.allowed_tokens;
  if (mask.empty()) return;
  p.mask_row = static_cast<int32_t>(masks.size() / mask.size());
  masks.insert(masks.end(), mask.begin(), mask.end());
  if (p.ban_count == 0) return;
  std::vector<uint32_t> left(mask);  // allowed and not banned
  for (int i = 0; i < p.ban_count; ++i) {
    const int id = tokens[p.ban_start + i];  // 0 <= id < vocab_size (append_banned_ids)
    left[id / 32] &= ~(1u << (id % 32));
  }
  if (std::all_of(left.begin(), left.end(), [](uint32_t w) { return w == 0; })) p.ban_count = 0;
}

}  // namespace longbow::engine
