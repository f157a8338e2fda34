#include "longbow/backend/attention_policy.h"

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "kargs.h"

namespace longbow {

bool attention_is_decode(AttentionVariant variant, int num_query, bool generated) {
  if (variant == AttentionVariant::FusedDecode) return true;
  if (variant != AttentionVariant::Auto) return false;
  return generated || num_query <= LONGBOW_ATTN_DECODE_MAX_QUERY;
}

int attention_decode_stage(const char* where) {
  static const std::string value = [] {
    const char* env = std::getenv("LONGBOW_ATTN_DECODE_STAGE");
    return std::string(env == nullptr ? "" : env);
  }();
  if (value.empty() || value == "2") return 2;
  if (value == "1") return 1;
  throw std::invalid_argument(std::string("[") + where +
                              "] LONGBOW_ATTN_DECODE_STAGE: expected 1 or 2, found '" + value +
                              "'");
}

}  // namespace longbow
