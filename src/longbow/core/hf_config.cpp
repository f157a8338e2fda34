// ModelConfig from a Hugging Face config.json (+ generation_config.json). Every key is either
// read, known not to change the forward pass, or refused: a key longbow does not understand is an
// error naming it, never a silent default (DESIGN.md §4).
#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>

#include "longbow/core/check.h"
#include "longbow/core/file_map.h"
#include "longbow/core/json.h"
#include "longbow/core/safetensors_reader.h"

namespace longbow {

namespace {

// Keys that do not change the math of inference (training-only, bookkeeping, token ids the
// tokenizer side reads, or consumed elsewhere).
const std::set<std::string> kHarmlessKeys = {"architectures",
                                             "model_type",
                                             "torch_dtype",
                                             "dtype",
                                             "transformers_version",
                                             "use_cache",
                                             "initializer_range",
                                             "pad_token_id",
                                             "attention_dropout",
                                             "hidden_dropout",
                                             "embd_pdrop",
                                             "resid_pdrop",
                                             "_name_or_path",
                                             "pretraining_tp",
                                             "cache_implementation",
                                             "auto_map",
                                             "tokenizer_class",
                                             "output_attentions",
                                             "output_hidden_states",
                                             "return_dict",
                                             "torchscript",
                                             "id2label",
                                             "label2id",
                                             "bos_token_id",
                                             "eos_token_id",
                                             "sep_token_id",
                                             "decoder_start_token_id",
                                             "max_window_layers",
                                             "use_sliding_window",
                                             "_sliding_window_pattern",
                                             "sliding_window_pattern",
                                             "original_max_position_embeddings",
                                             "classifier_dropout",
                                             "problem_type",
                                             "is_decoder",
                                             "is_encoder_decoder",
                                             "add_cross_attention",
                                             "tie_encoder_decoder",
                                             "chunk_size_feed_forward",
                                             "finetuning_task",
                                             "prefix",
                                             "task_specific_params",
                                             "tf_legacy_loss",
                                             "use_bfloat16"};

class Fields {
 public:
  Fields(const Json& j, const std::string& where) : j_(j), where_(where) {}
  [[noreturn]] void fail(const std::string& msg) const {
    longbow::fail("config", where_ + ": " + msg);
  }
  const Json* get(const std::string& key) const {
    read_.insert(key);
    const Json* v = j_.get(key);
    return (v == nullptr || v->is_null()) ? nullptr : v;
  }
  int get_int(const std::string& key, int fallback, bool required = false) const {
    const Json* v = get(key);
    if (v == nullptr) {
      if (required) fail("missing required key '" + key + "'");
      return fallback;
    }
    if (!v->is_integer())
      fail("'" + key + "': expected an integer, found " + Json::kind_name(v->kind()));
    const int64_t x = v->as_int(key);
    if (x < -(int64_t{1} << 31) || x >= (int64_t{1} << 31))
      fail("'" + key + "': value " + std::to_string(x) + " out of range");
    return static_cast<int>(x);
  }
  double get_float(const std::string& key, double fallback) const {
    const Json* v = get(key);
    if (v == nullptr) return fallback;
    if (!v->is_number())
      fail("'" + key + "': expected a number, found " + Json::kind_name(v->kind()));
    return v->as_double(key);
  }
  bool get_bool(const std::string& key, bool fallback) const {
    const Json* v = get(key);
    if (v == nullptr) return fallback;
    if (!v->is_bool()) fail("'" + key + "': expected true or false");
    return v->as_bool(key);
  }
  std::string get_string(const std::string& key, const std::string& fallback) const {
    const Json* v = get(key);
    if (v == nullptr) return fallback;
    if (!v->is_string()) fail("'" + key + "': expected a string");
    return v->as_string(key);
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
  // Refuses every key that was neither read nor listed as harmless.
  void refuse_unread(const std::set<std::string>& harmless, const std::string& what) const {
    if (!j_.is_object()) return;
    for (const auto& [key, value] : j_.as_object(where_)) {
      if (read_.count(key) || harmless.count(key) || value.is_null()) continue;
      fail("key '" + key + "' is not understood by longbow for " + what +
           " (it may change the model's output; refusing rather than ignoring it)");
    }
  }

 private:
  const Json& j_;
  std::string where_;
  mutable std::set<std::string> read_;
};

std::string join(const std::string& dir, const char* name) {
  return (dir.empty() || dir.back() == '/') ? dir + name : dir + "/" + name;
}

// One RoPE parameter object: legacy `rope_scaling` or transformers 5 `rope_parameters`.
void read_rope_object(const Json& obj, const std::string& where, ModelConfig& c, float& theta) {
  const Fields r(obj, where);
  if (!obj.is_object()) r.fail("expected an object");
  std::string type = r.get_string("rope_type", "");
  const std::string legacy = r.get_string("type", "");
  if (type.empty()) type = legacy;
  if (type == "default") type.clear();
  c.rope_scaling.type = type;
  c.rope_scaling.factor = static_cast<float>(r.get_float("factor", 1.0));
  c.rope_scaling.low_freq_factor =
      static_cast<float>(r.get_float("low_freq_factor", c.rope_scaling.low_freq_factor));
  c.rope_scaling.high_freq_factor =
      static_cast<float>(r.get_float("high_freq_factor", c.rope_scaling.high_freq_factor));
  c.rope_scaling.original_max_position =
      r.get_int("original_max_position_embeddings", c.rope_scaling.original_max_position);
  theta = static_cast<float>(r.get_float("rope_theta", theta));
  const double partial = r.get_float("partial_rotary_factor", 1.0);
  if (partial != 1.0) c.rot_dim = static_cast<int>(std::lround(c.head_dim * partial));
  // Type-specific keys of types longbow does not run (yarn, longrope, dynamic) end up here and
  // are refused; validate() names the type itself.
  r.refuse_unread({}, "RoPE");
}

void read_rope(const Fields& f, const std::string& file, ModelConfig& c) {
  c.rope_theta = static_cast<float>(f.get_float("rope_theta", c.rope_theta));
  if (const Json* rs = f.get("rope_scaling"))
    read_rope_object(*rs, file + " rope_scaling", c, c.rope_theta);
  const double partial = f.get_float("partial_rotary_factor", 1.0);
  if (partial != 1.0) c.rot_dim = static_cast<int>(std::lround(c.head_dim * partial));
  if (c.architecture == "gemma3")
    c.rope_theta_sliding = static_cast<float>(f.get_float("rope_local_base_freq", 10000.0));
  const Json* rp = f.get("rope_parameters");
  if (rp == nullptr) return;
  if (!rp->is_object()) f.fail("'rope_parameters': expected an object");
  const Json* full = rp->get("full_attention");
  const Json* sliding = rp->get("sliding_attention");
  if (full == nullptr && sliding == nullptr) {
    read_rope_object(*rp, file + " rope_parameters", c, c.rope_theta);
    return;
  }
  // Per layer type (Gemma 3): the global layers carry the scaling, the sliding ones a plain base.
  const Fields per_type(*rp, file + " rope_parameters");
  if (full != nullptr)
    read_rope_object(*per_type.get("full_attention"), file + " rope_parameters.full_attention", c,
                     c.rope_theta);
  if (sliding != nullptr) {
    ModelConfig local = c;
    float theta = c.rope_theta;
    read_rope_object(*per_type.get("sliding_attention"),
                     file + " rope_parameters.sliding_attention", local, theta);
    if (!local.rope_scaling.type.empty())
      per_type.fail("sliding_attention: RoPE scaling on sliding layers is not supported");
    c.rope_theta_sliding = theta;
  }
  per_type.refuse_unread({}, "per-layer-type RoPE");
}

// Which layers use the sliding window: `layer_types` when given, else the family's rule.
void read_attention_layout(const Fields& f, const ArchFacts& arch, ModelConfig& c) {
  const bool qwen = arch.name == "qwen2" || arch.name == "qwen3";
  const bool use_window = qwen ? f.get_bool("use_sliding_window", false) : true;
  const int window = f.get_int("sliding_window", 0);
  if (const Json* lt = f.get("layer_types")) {
    if (!lt->is_array() || static_cast<int>(lt->as_array("layer_types").size()) != c.num_layers) {
      f.fail("'layer_types': expected a list of " + std::to_string(c.num_layers) + " strings");
    }
    c.layer_sliding.clear();
    for (const Json& t : lt->as_array("layer_types")) {
      const std::string s = t.is_string() ? t.as_string("layer_types") : "";
      if (s != "full_attention" && s != "sliding_attention") {
        f.fail("'layer_types': expected 'full_attention' or 'sliding_attention', found '" + s +
               "'");
      }
      c.layer_sliding.push_back(s == "sliding_attention");
    }
  } else if (qwen && use_window) {
    const int first = f.get_int("max_window_layers", c.num_layers);
    for (int l = 0; l < c.num_layers; ++l) c.layer_sliding.push_back(l >= first);
  } else if (arch.sliding_pattern > 0) {
    const int n = arch.sliding_pattern;
    for (int l = 0; l < c.num_layers; ++l) c.layer_sliding.push_back(l % n < n - 1);
  }
  const bool any_sliding =
      c.layer_sliding.empty() ||
      std::any_of(c.layer_sliding.begin(), c.layer_sliding.end(), [](uint8_t b) { return b; });
  if (window > 0 && use_window && any_sliding) c.sliding_window = window;
  if (c.sliding_window == 0) c.layer_sliding.clear();
  if (window <= 0 && !c.layer_sliding.empty()) {
    const bool sliding =
        std::any_of(c.layer_sliding.begin(), c.layer_sliding.end(), [](uint8_t b) { return b; });
    if (sliding)
      f.fail("'layer_types' lists sliding_attention layers but 'sliding_window' is not set");
  }
}

Activation read_activation(const Fields& f, const ArchFacts& arch) {
  const std::string key(arch.hf_activation_key);
  const std::string act = f.get_string(key, activation_name(arch.default_activation));
  if (act == "silu" || act == "swish") return Activation::Silu;
  if (act == "gelu_pytorch_tanh" || act == "gelu_tanh" || act == "gelu_new")
    return Activation::GeluTanh;
  f.fail("'" + key + "': activation '" + act +
         "' is not supported (supported: silu, gelu_pytorch_tanh)");
}

std::string hf_model_type(const std::string& dir) {
  const std::string file = join(dir, "config.json");
  if (!is_regular_file(file))
    throw std::invalid_argument("[config] " + file + ": no config.json beside the weights");
  const Json j = Json::parse(read_text_file(file, "config"), file);
  const Fields f(j, file);
  if (!j.is_object())
    f.fail(std::string("expected a JSON object, found ") + Json::kind_name(j.kind()));
  return f.get_string("model_type", "llama");
}

}  // namespace

ModelConfig config_from_hf(const std::string& dir) {
  const std::string file = join(dir, "config.json");
  const std::string model_type = hf_model_type(dir);
  const Json j = Json::parse(read_text_file(file, "config"), file);
  const Fields f(j, file);
  const ArchFacts* arch = find_arch_by_hf_model_type(model_type);
  if (arch == nullptr) {
    if (model_type == "gemma3" && f.get("text_config") != nullptr) {
      f.fail(
          "model_type 'gemma3' is the multimodal Gemma 3; longbow runs the text-only model "
          "(model_type "
          "'gemma3_text')");
    }
    f.fail("model_type: expected one of " + hf_model_type_names() + ", found '" + model_type + "'");
  }
  ModelConfig c;
  c.architecture = std::string(arch->name);
  c.hidden_size = f.get_int("hidden_size", 0, true);
  c.intermediate_size = f.get_int("intermediate_size", 0, true);
  c.num_layers = f.get_int("num_hidden_layers", 0, true);
  c.num_heads = f.get_int("num_attention_heads", 0, true);
  c.num_kv_heads = f.get_int("num_key_value_heads", c.num_heads);
  const int derived_head_dim = arch->default_head_dim > 0
                                   ? arch->default_head_dim
                                   : (c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
  c.head_dim = f.get_int("head_dim", derived_head_dim);
  c.rot_dim = c.head_dim;
  c.vocab_size = f.get_int("vocab_size", 0, true);
  c.max_position = f.get_int("max_position_embeddings", c.max_position);
  c.rms_eps = static_cast<float>(f.get_float("rms_norm_eps", arch->default_rms_eps));
  read_rope(f, file, c);
  c.activation = read_activation(f, *arch);
  if (arch->name == "gemma2" || arch->name == "gemma3") {
    (void)f.get("hidden_act");  // legacy duplicate of hidden_activation; Gemma 2/3 use the latter
  }
  c.qkv_bias = arch->qkv_bias;
  if (arch->name != "qwen2" && arch->name != "mistral" && arch->name != "phi3") {
    const bool bias = f.get_bool("attention_bias", false);
    c.qkv_bias = c.qkv_bias || bias;
    c.o_bias = bias;
  }
  if (arch->name == "llama") c.mlp_bias = f.get_bool("mlp_bias", false);
  c.qk_norm = arch->qk_norm;
  c.sandwich_norms = arch->sandwich_norms;
  c.norm_weight_offset = arch->gemma_norms ? 1.0f : 0.0f;
  c.embedding_scale = arch->scaled_embedding ? std::sqrt(static_cast<float>(c.hidden_size)) : 1.0f;
  if (arch->name == "gemma2" || arch->name == "gemma3") {
    const double qpas = f.get_float("query_pre_attn_scalar", c.head_dim);
    if (!(qpas > 0)) f.fail("'query_pre_attn_scalar' must be positive");
    c.attention_scale = static_cast<float>(1.0 / std::sqrt(qpas));
    c.attn_logit_softcap = static_cast<float>(f.get_float("attn_logit_softcapping", 0.0));
    c.final_logit_softcap = static_cast<float>(f.get_float("final_logit_softcapping", 0.0));
    if (f.get_bool("use_bidirectional_attention", false))
      f.fail("'use_bidirectional_attention' is not supported");
  }
  if (arch->has_sliding_window) read_attention_layout(f, *arch, c);
  c.tie_embeddings = f.get_bool("tie_word_embeddings", arch->default_tie);
  if (f.get("quantization_config") != nullptr) {
    f.fail(
        "'quantization_config': pre-quantized Hugging Face checkpoints are not supported (use a "
        "GGUF file)");
  }
  c.rope_interleaved = false;
  c.bos_token_id = f.get_int("bos_token_id", -1);
  c.eos_token_ids = f.get_int_list("eos_token_id");
  f.refuse_unread(kHarmlessKeys, "model_type '" + model_type + "'");

  const std::string gen_file = join(dir, "generation_config.json");
  if (is_regular_file(gen_file)) {
    const Json g = Json::parse(read_text_file(gen_file, "config"), gen_file);
    for (int id : Fields(g, gen_file).get_int_list("eos_token_id")) {
      if (std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), id) == c.eos_token_ids.end()) {
        c.eos_token_ids.push_back(id);
      }
    }
  }
  return c;
}

}  // namespace longbow
