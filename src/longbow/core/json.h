// A small strict JSON parser (RFC 8259) for safetensors headers and config files.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace longbow {

class Json {
 public:
  enum class Kind { Null, Bool, Number, String, Array, Object };

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::Null; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  bool is_number() const { return kind_ == Kind::Number; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_array() const { return kind_ == Kind::Array; }
  bool is_object() const { return kind_ == Kind::Object; }
  // True for numbers written without fraction/exponent that fit in int64.
  bool is_integer() const { return kind_ == Kind::Number && is_int_; }

  // Accessors throw std::invalid_argument "[json] <what>: expected <kind>, found <kind>".
  bool as_bool(const std::string& what) const;
  double as_double(const std::string& what) const;
  int64_t as_int(const std::string& what) const;
  const std::string& as_string(const std::string& what) const;
  const std::vector<Json>& as_array(const std::string& what) const;
  const std::map<std::string, Json>& as_object(const std::string& what) const;

  // Object member or nullptr (also nullptr when this is not an object).
  const Json* get(const std::string& key) const;

  static const char* kind_name(Kind k);

  // Parses `text`; errors are std::invalid_argument "[json] <source>: line L column C: ...".
  // Nesting deeper than `max_depth` is rejected.
  static Json parse(std::string_view text, const std::string& source, int max_depth = 64);

 private:
  friend class JsonParser;
  Kind kind_ = Kind::Null;
  bool bool_ = false;
  bool is_int_ = false;
  int64_t int_ = 0;
  double num_ = 0;
  std::string str_;
  std::vector<Json> arr_;
  std::map<std::string, Json> obj_;
};

}  // namespace longbow
