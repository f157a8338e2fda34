// Per-request generation settings (the engine side of Python's SamplingParams).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace longbow::engine {

struct SamplingParams {
  int n = 1;  // samples of the prompt (they share its KV blocks; sample i uses seed + i)
  int max_tokens = 16;
  int min_tokens = 0;  // the first min_tokens tokens are never stop or end-of-sequence ids (masked)
  float temperature = 0.0f;  // 0 = greedy
  int top_k = 0;             // 0 = off
  float top_p = 1.0f;        // 1 = off
  float min_p = 0.0f;        // 0 = off
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  std::optional<uint64_t> seed;     // none: drawn at random when the request is added
  std::vector<int> stop_token_ids;  // besides the model's end-of-sequence ids
  bool ignore_eos = false;
  // Most likely tokens reported with each sampled one (log-softmax of the raw logits, as the
  // chosen token's logprob), 0..SampleArgs::MAX_TOP; 0 = the chosen token's logprob only.
  int top_logprobs = 0;

  // Throws std::invalid_argument naming the offending field.
  void validate(int vocab_size) const;
};

}  // namespace longbow::engine
