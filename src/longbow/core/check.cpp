#include "longbow/core/check.h"

#include <stdexcept>

namespace longbow {

void fail(std::string_view where, const std::string& message) {
  std::string text;
  text.reserve(where.size() + 3 + message.size());
  text.append("[").append(where).append("] ").append(message);
  throw std::invalid_argument(text);
}

}  // namespace longbow
