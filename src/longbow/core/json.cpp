#include "longbow/core/json.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

#include "longbow/core/check.h"

namespace longbow {

const char* Json::kind_name(Kind k) {
  switch (k) {
    case Kind::Null: return "null";
    case Kind::Bool: return "bool";
    case Kind::Number: return "number";
    case Kind::String: return "string";
    case Kind::Array: return "array";
    case Kind::Object: return "object";
  }
  return "?";
}

namespace {
[[noreturn]] void wrong_kind(const std::string& what, const char* expected, Json::Kind found) {
  throw std::invalid_argument("[json] " + what + ": expected " + expected + ", found " +
                              Json::kind_name(found));
}
}  // namespace

bool Json::as_bool(const std::string& what) const {
  if (kind_ != Kind::Bool) wrong_kind(what, "bool", kind_);
  return bool_;
}
double Json::as_double(const std::string& what) const {
  if (kind_ != Kind::Number) wrong_kind(what, "number", kind_);
  return num_;
}
int64_t Json::as_int(const std::string& what) const {
  if (kind_ != Kind::Number) wrong_kind(what, "integer", kind_);
  if (!is_int_)
    throw std::invalid_argument("[json] " + what + ": expected an integer, found " +
                                std::to_string(num_));
  return int_;
}
const std::string& Json::as_string(const std::string& what) const {
  if (kind_ != Kind::String) wrong_kind(what, "string", kind_);
  return str_;
}
const std::vector<Json>& Json::as_array(const std::string& what) const {
  if (kind_ != Kind::Array) wrong_kind(what, "array", kind_);
  return arr_;
}
const std::map<std::string, Json>& Json::as_object(const std::string& what) const {
  if (kind_ != Kind::Object) wrong_kind(what, "object", kind_);
  return obj_;
}
const Json* Json::get(const std::string& key) const {
  if (kind_ != Kind::Object) return nullptr;
  auto it = obj_.find(key);
  return it == obj_.end() ? nullptr : &it->second;
}

// Recursive descent over a string_view; positions are reported as line/column.
class JsonParser {
 public:
  JsonParser(std::string_view text, const std::string& source, int max_depth)
      : s_(text), source_(source), max_depth_(max_depth) {}

  Json parse_document() {
    Json v = parse_value(0);
    skip_ws();
    if (pos_ != s_.size()) fail("expected end of input, found '" + peek_text() + "'");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < pos_ && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    longbow::fail("json", source_ + ": line " + std::to_string(line) + " column " +
                              std::to_string(col) + ": " + msg);
  }
  std::string peek_text() const {
    return pos_ < s_.size() ? std::string(1, s_[pos_]) : std::string("end of input");
  }
  void skip_ws() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  void expect_word(const char* w) {
    const std::string_view word(w);
    if (s_.substr(pos_, word.size()) != word)
      fail(std::string("expected '") + w + "', found '" + peek_text() + "'");
    pos_ += word.size();
  }

  Json parse_value(int depth) {
    if (depth > max_depth_) fail("nesting deeper than " + std::to_string(max_depth_) + " levels");
    skip_ws();
    if (pos_ >= s_.size()) fail("expected a value, found end of input");
    Json v;
    const char c = s_[pos_];
    if (c == '{') {
      parse_object(v, depth);
    } else if (c == '[') {
      parse_array(v, depth);
    } else if (c == '"') {
      v.kind_ = Json::Kind::String;
      v.str_ = parse_string();
    } else if (c == 't') {
      expect_word("true");
      v.kind_ = Json::Kind::Bool;
      v.bool_ = true;
    } else if (c == 'f') {
      expect_word("false");
      v.kind_ = Json::Kind::Bool;
    } else if (c == 'n') {
      expect_word("null");
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      parse_number(v);
    } else {
      fail("expected a value, found '" + peek_text() + "'");
    }
    return v;
  }

  void parse_object(Json& v, int depth) {
    v.kind_ = Json::Kind::Object;
    ++pos_;  // '{'
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return;
    }
    while (true) {
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != '"')
        fail("expected a string key, found '" + peek_text() + "'");
      std::string key = parse_string();
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != ':')
        fail("expected ':' after key \"" + key + "\", found '" + peek_text() + "'");
      ++pos_;
      Json member = parse_value(depth + 1);
      if (!v.obj_.emplace(key, std::move(member)).second) fail("duplicate key \"" + key + "\"");
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        return;
      }
      fail("expected ',' or '}' in object, found '" + peek_text() + "'");
    }
  }

  void parse_array(Json& v, int depth) {
    v.kind_ = Json::Kind::Array;
    ++pos_;  // '['
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return;
    }
    while (true) {
      v.arr_.push_back(parse_value(depth + 1));
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        return;
      }
      fail("expected ',' or ']' in array, found '" + peek_text() + "'");
    }
  }

  unsigned hex4() {
    if (pos_ + 4 > s_.size()) fail("truncated \\u escape");
    unsigned u = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = s_[pos_++];
      u <<= 4;
      if (h >= '0' && h <= '9')
        u |= static_cast<unsigned>(h - '0');
      else if (h >= 'a' && h <= 'f')
        u |= static_cast<unsigned>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F')
        u |= static_cast<unsigned>(h - 'A' + 10);
      else
        fail("invalid hex digit in \\u escape");
    }
    return u;
  }

  static void put_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::string parse_string() {
    ++pos_;  // opening quote
    std::string out;
    while (true) {
      if (pos_ >= s_.size()) fail("unterminated string");
      const char c = s_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) fail("unterminated escape");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00) {  // high surrogate: needs a low one
            if (pos_ + 2 > s_.size() || s_[pos_] != '\\' || s_[pos_ + 1] != 'u')
              fail("unpaired surrogate in \\u escape");
            pos_ += 2;
            const unsigned lo = hex4();
            if (lo < 0xDC00 || lo >= 0xE000) fail("invalid low surrogate in \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            fail("unpaired low surrogate in \\u escape");
          }
          put_utf8(out, cp);
          break;
        }
        default: fail(std::string("invalid escape '\\") + e + "'");
      }
    }
  }

  void parse_number(Json& v) {
    const size_t start = pos_;
    bool integral = true;
    if (s_[pos_] == '-') ++pos_;
    if (pos_ >= s_.size() || !(s_[pos_] >= '0' && s_[pos_] <= '9')) fail("invalid number");
    if (s_[pos_] == '0' && pos_ + 1 < s_.size() && s_[pos_ + 1] >= '0' && s_[pos_ + 1] <= '9')
      fail("leading zero in number");
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
    if (pos_ < s_.size() && s_[pos_] == '.') {
      integral = false;
      ++pos_;
      if (pos_ >= s_.size() || !(s_[pos_] >= '0' && s_[pos_] <= '9'))
        fail("expected digits after '.'");
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      integral = false;
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (pos_ >= s_.size() || !(s_[pos_] >= '0' && s_[pos_] <= '9'))
        fail("expected digits in exponent");
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
    }
    const std::string text(s_.substr(start, pos_ - start));
    v.kind_ = Json::Kind::Number;
    v.num_ = std::strtod(text.c_str(), nullptr);
    if (integral) {
      errno = 0;
      const long long i = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == 0) {
        v.is_int_ = true;
        v.int_ = i;
      }
    }
  }

  std::string_view s_;
  const std::string& source_;
  int max_depth_;
  size_t pos_ = 0;
};

Json Json::parse(std::string_view text, const std::string& source, int max_depth) {
  return JsonParser(text, source, max_depth).parse_document();
}

}  // namespace longbow
