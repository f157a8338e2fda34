// Per-request generation settings: the one definition of the sampling fields, their defaults and
// their validation. The engine runs on it, the public C++ API takes it (GenerationOptions), and
// the Python bindings expose it (_core.EngineSamplingParams), so Python's SamplingParams, the CLI
// and the server take their defaults and range checks from here.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace longbow {

// Most likely tokens reportable with each sampled one (OpenAI's top_logprobs limit).
inline constexpr int MAX_TOP_LOGPROBS = 20;

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
  // chosen token's logprob), 0..MAX_TOP_LOGPROBS; 0 = the chosen token's logprob only.
  int top_logprobs = 0;
  // Use the engine's speculative decoding when it has one (the output distribution is the same
  // either way; false skips the draft work for this request).
  bool speculative = true;

  // Throws std::invalid_argument "[sampling] <field> must be ..., got ..." for the first bad
  // field. vocab_size bounds stop_token_ids; 0 = not known yet (ids are checked when the request
  // reaches the engine).
  void validate(int vocab_size = 0) const;
};

}  // namespace longbow
