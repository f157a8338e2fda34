// Text helpers for error messages built from file contents.
#pragma once

#include <string>
#include <string_view>

namespace longbow {

// `s` with bytes outside printable ASCII written as \xNN, so a name read from a malformed file
// can be quoted in an error message (Python decodes messages as UTF-8).
inline std::string printable(std::string_view s) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char ch : s) {
    if (ch >= 0x20 && ch < 0x7f) {
      out += static_cast<char>(ch);
    } else {
      out += "\\x";
      out += hex[ch >> 4];
      out += hex[ch & 15];
    }
  }
  return out;
}

}  // namespace longbow
