// Shared helpers of the C++ test programs: failure counting and "this call must be rejected with
// a message naming the problem".
#pragma once

#include <cstdio>
#include <stdexcept>
#include <string>

namespace longbow::testing {

inline int failures = 0;

// Runs call(); counts a failure unless it throws std::invalid_argument whose text holds needle.
template <class Call>
void expect_invalid_argument(Call&& call, const char* needle, const char* what) {
  try {
    call();
    std::printf("FAIL %s: no error\n", what);
    ++failures;
  } catch (const std::invalid_argument& e) {
    if (std::string(e.what()).find(needle) == std::string::npos) {
      std::printf("FAIL %s: message '%s' lacks '%s'\n", what, e.what(), needle);
      ++failures;
    }
  }
}

}  // namespace longbow::testing
