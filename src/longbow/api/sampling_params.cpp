#include "longbow/sampling_params.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "longbow/core/check.h"

namespace longbow {

namespace {
constexpr Checker check{"sampling"};
}  // namespace

void SamplingParams::validate(int vocab_size) const {
  check(n >= 1, "n must be >= 1, got " + std::to_string(n));
  check(max_tokens >= 1, "max_tokens must be >= 1, got " + std::to_string(max_tokens));
  check(min_tokens >= 0 && min_tokens <= max_tokens,
        "min_tokens must be in 0..max_tokens, got " + std::to_string(min_tokens));
  check(std::isfinite(temperature) && temperature >= 0,
        "temperature must be >= 0, got " + std::to_string(temperature));
  check(top_k >= 0, "top_k must be >= 0 (0 disables it), got " + std::to_string(top_k));
  check(top_p > 0 && top_p <= 1, "top_p must be in (0, 1], got " + std::to_string(top_p));
  check(min_p >= 0 && min_p <= 1, "min_p must be in [0, 1], got " + std::to_string(min_p));
  check(std::isfinite(repetition_penalty) && repetition_penalty > 0,
        "repetition_penalty must be > 0, got " + std::to_string(repetition_penalty));
  check(std::isfinite(presence_penalty),
        "presence_penalty must be finite, got " + std::to_string(presence_penalty));
  check(std::isfinite(frequency_penalty),
        "frequency_penalty must be finite, got " + std::to_string(frequency_penalty));
  check(top_logprobs >= 0 && top_logprobs <= MAX_TOP_LOGPROBS,
        "top_logprobs must be in 0.." + std::to_string(MAX_TOP_LOGPROBS) + ", got " +
            std::to_string(top_logprobs));
  for (int id : stop_token_ids) {
    check(id >= 0 && (vocab_size <= 0 || id < vocab_size), "stop token id " + std::to_string(id) +
                                                               " out of range for vocab_size " +
                                                               std::to_string(vocab_size));
  }
}

}  // namespace longbow
