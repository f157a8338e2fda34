// ModelConfig from a Hugging Face config.json (+ generation_config.json).
#include <cmath>
#include <stdexcept>

#include "longbow/core/file_map.h"
#include "longbow/core/json.h"
#include "longbow/core/safetensors_reader.h"

namespace longbow {

namespace {

class Fields {
 public:
  Fields(const Json& j, const std::string& file) : j_(j), file_(file) {}
  [[noreturn]] void fail(const std::string& msg) const { throw std::invalid_argument("[config] " + file_ + ": " + msg); }
  const Json* get(const std::string& key) const {
    const Json* v = j_.get(key);
    return (v == nullptr || v->is_null()) ? nullptr : v;
  }
  int get_int(const std::string& key, int fallback, bool required = false) const {
    const Json* v = get(key);
    if (v == nullptr) {
      if (required) fail("missing required key '" + key + "'");
      return fallback;
    }
    if (!v->is_integer()) fail("'" + key + "': expected an integer, found " + Json::kind_name(v->kind()));
    const int64_t x = v->as_int(key);
    if (x < -(int64_t{1} << 31) || x >= (int64_t{1} << 31)) fail("'" + key + "': value " + std::to_string(x) + " out of range");
    return static_cast<int>(x);
  }
  double get_float(const std::string& key, double fallback) const {
    const Json* v = get(key);
    if (v == nullptr) return fallback;
    if (!v->is_number()) fail("'" + key + "': expected a number, found " + Json::kind_name(v->kind()));
    return v->as_double(key);
  }
  // Accepts an int or a list of ints (eos_token_id).
  std::vector<int> get_int_list(const std::string& key) const {
    std::vector<int> out;
    const Json* v = get(key);
    if (v == nullptr) return out;
    if (v->is_array()) {
      for (const Json& e : v->as_array(key)) {
        if (!e.is_integer()) fail("'" + key + "': expected a list of integers");
        out.push_back(static_cast<int>(e.as_int(key)));
      }
    } else {
      out.push_back(get_int(key, -1));
    }
    return out;
  }

 private:
  const Json& j_;
  const std::string& file_;
};

std::string join(const std::string& dir, const char* name) {
  return (dir.empty() || dir.back() == '/') ? dir + name : dir + "/" + name;
}

void read_rope_scaling(const Json& rs, const std::string& file, RopeScaling& out) {
  const Fields r(rs, file + " rope_scaling");
  std::string type;
  for (const char* key : {"rope_type", "type"}) {
    const Json* t = rs.get(key);
    if (t != nullptr && t->is_string()) {
      type = t->as_string(key);
      break;
    }
  }
  if (type == "default") type.clear();
  out.type = type;
  out.factor = static_cast<float>(r.get_float("factor", 1.0));
  out.low_freq_factor = static_cast<float>(r.get_float("low_freq_factor", out.low_freq_factor));
  out.high_freq_factor = static_cast<float>(r.get_float("high_freq_factor", out.high_freq_factor));
  out.original_max_position = r.get_int("original_max_position_embeddings", out.original_max_position);
}

}  // namespace

ModelConfig config_from_hf(const std::string& dir, bool has_lm_head) {
  const std::string file = join(dir, "config.json");
  if (!is_regular_file(file)) throw std::invalid_argument("[config] " + file + ": no config.json beside the weights");
  const Json j = Json::parse(read_text_file(file, "config"), file);
  const Fields f(j, file);
  if (!j.is_object()) f.fail(std::string("expected a JSON object, found ") + Json::kind_name(j.kind()));
  ModelConfig c;
  if (const Json* mt = f.get("model_type")) {
    if (!mt->is_string()) f.fail("'model_type': expected a string");
    const std::string& t = mt->as_string("model_type");
    if (t != "llama" && t != "mistral") f.fail("model_type: expected 'llama' or 'mistral', found '" + t + "'");
    c.architecture = t;
  }
  c.hidden_size = f.get_int("hidden_size", 0, true);
  c.intermediate_size = f.get_int("intermediate_size", 0, true);
  c.num_layers = f.get_int("num_hidden_layers", 0, true);
  c.num_heads = f.get_int("num_attention_heads", 0, true);
  c.num_kv_heads = f.get_int("num_key_value_heads", c.num_heads);
  c.head_dim = f.get_int("head_dim", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
  c.rot_dim = c.head_dim;
  c.vocab_size = f.get_int("vocab_size", 0, true);
  c.max_position = f.get_int("max_position_embeddings", c.max_position);
  c.rms_eps = static_cast<float>(f.get_float("rms_norm_eps", c.rms_eps));
  c.rope_theta = static_cast<float>(f.get_float("rope_theta", c.rope_theta));
  if (const Json* rs = f.get("rope_scaling")) {
    if (!rs->is_object()) f.fail("'rope_scaling': expected an object or null");
    read_rope_scaling(*rs, file, c.rope_scaling);
  }
  bool tie = false;
  if (const Json* t = f.get("tie_word_embeddings")) {
    if (!t->is_bool()) f.fail("'tie_word_embeddings': expected true or false");
    tie = t->as_bool("tie_word_embeddings");
  }
  c.tie_embeddings = tie || !has_lm_head;
  c.rope_interleaved = false;
  c.bos_token_id = f.get_int("bos_token_id", -1);
  c.eos_token_ids = f.get_int_list("eos_token_id");

  const std::string gen_file = join(dir, "generation_config.json");
  if (is_regular_file(gen_file)) {
    const Json g = Json::parse(read_text_file(gen_file, "config"), gen_file);
    for (int id : Fields(g, gen_file).get_int_list("eos_token_id")) {
      bool dup = false;
      for (int e : c.eos_token_ids) dup = dup || e == id;
      if (!dup) c.eos_token_ids.push_back(id);
    }
  }
  return c;
}

}  // namespace longbow
