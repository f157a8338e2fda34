// ModelConfig from GGUF metadata (llama.cpp key names).
#include <cmath>
#include <stdexcept>

#include "longbow/core/check.h"
#include "longbow/core/gguf_reader.h"
#include "longbow/core/text.h"

namespace longbow {

namespace {

class Meta {
 public:
  Meta(const std::map<std::string, GgufValue>& md, const std::string& path)
      : md_(md), path_(path) {}

  [[noreturn]] void fail(const std::string& msg) const {
    longbow::fail("gguf", path_ + ": " + msg);
  }
  const GgufValue* find(const std::string& key) const {
    auto it = md_.find(key);
    return it == md_.end() ? nullptr : &it->second;
  }
  bool has(const std::string& key) const { return find(key) != nullptr; }

  int64_t get_int(const std::string& key) const {
    const GgufValue* v = find(key);
    if (v == nullptr) fail("missing metadata key " + key);
    if (const int64_t* i = std::get_if<int64_t>(v)) return *i;
    if (const uint64_t* u = std::get_if<uint64_t>(v)) {
      if (*u > static_cast<uint64_t>(INT64_MAX))
        fail("metadata key " + key + ": value " + std::to_string(*u) + " too large");
      return static_cast<int64_t>(*u);
    }
    fail("metadata key " + key + ": expected an integer, found another type");
  }
  int get_int32(const std::string& key, int64_t lo = 0, int64_t hi = (int64_t{1} << 30)) const {
    const int64_t v = get_int(key);
    if (v < lo || v > hi) {
      fail("metadata key " + key + ": expected a value in " + std::to_string(lo) + ".." +
           std::to_string(hi) + ", found " + std::to_string(v));
    }
    return static_cast<int>(v);
  }
  int get_int32_or(const std::string& key, int fallback) const {
    return has(key) ? get_int32(key) : fallback;
  }
  double get_float(const std::string& key) const {
    const GgufValue* v = find(key);
    if (v == nullptr) fail("missing metadata key " + key);
    if (const double* d = std::get_if<double>(v)) return *d;
    return static_cast<double>(get_int(key));
  }
  std::string get_string(const std::string& key) const {
    const GgufValue* v = find(key);
    if (v == nullptr) fail("missing metadata key " + key);
    if (const std::string* s = std::get_if<std::string>(v)) return *s;
    fail("metadata key " + key + ": expected a string, found another type");
  }

 private:
  const std::map<std::string, GgufValue>& md_;
  const std::string& path_;
};

// `<arch>.` keys that are read below or do not change the math; any other key of the family
// prefix is refused (it may describe a feature longbow does not implement).
const char* const kArchKeys[] = {"block_count",
                                 "embedding_length",
                                 "feed_forward_length",
                                 "attention.head_count",
                                 "attention.head_count_kv",
                                 "attention.key_length",
                                 "attention.value_length",
                                 "rope.dimension_count",
                                 "context_length",
                                 "attention.layer_norm_rms_epsilon",
                                 "rope.freq_base",
                                 "rope.scaling.type",
                                 "rope.scaling.factor",
                                 "rope.scaling.original_context_length",
                                 "rope.scaling.finetuned",
                                 "vocab_size",
                                 "attention.sliding_window",
                                 "attn_logit_softcapping",
                                 "final_logit_softcapping",
                                 "expert_count",
                                 "expert_used_count",
                                 "attention.causal",
                                 "rope.freq_base_swa"};

void refuse_unknown_arch_keys(const Meta& m, const std::map<std::string, GgufValue>& md,
                              const std::string& arch) {
  const std::string prefix = arch + ".";
  for (const auto& [key, value] : md) {
    if (key.rfind(prefix, 0) != 0) continue;
    const std::string rest = key.substr(prefix.size());
    bool known = false;
    for (const char* k : kArchKeys) known = known || rest == k;
    if (!known) {
      m.fail("metadata key " + printable(key) +
             " is not understood by longbow (it may change the model's output; refusing "
             "rather than ignoring it)");
    }
  }
}

}  // namespace

ModelConfig config_from_gguf(const std::map<std::string, GgufValue>& md,
                             const std::function<bool(const std::string&)>& has_tensor,
                             const std::string& path) {
  const Meta m(md, path);
  ModelConfig c;
  const std::string arch_name = m.get_string("general.architecture");
  const ArchFacts* arch = find_arch(arch_name);
  if (arch == nullptr)
    m.fail("general.architecture: expected one of " + arch_names() + ", found '" +
           printable(arch_name) + "'");
  refuse_unknown_arch_keys(m, md, arch_name);
  c.architecture = arch_name;
  const std::string a = arch_name + ".";
  c.num_layers = m.get_int32(a + "block_count", 1);
  c.hidden_size = m.get_int32(a + "embedding_length", 1);
  c.intermediate_size = m.get_int32(a + "feed_forward_length", 1);
  c.num_heads = m.get_int32(a + "attention.head_count", 1);
  c.num_kv_heads = m.get_int32_or(a + "attention.head_count_kv", c.num_heads);
  c.head_dim = m.get_int32_or(a + "attention.key_length", c.hidden_size / c.num_heads);
  if (m.get_int32_or(a + "attention.value_length", c.head_dim) != c.head_dim) {
    m.fail(a + "attention.value_length must equal " + a + "attention.key_length (" +
           std::to_string(c.head_dim) + ")");
  }
  c.rot_dim = m.get_int32_or(a + "rope.dimension_count", c.head_dim);
  c.max_position = m.get_int32_or(a + "context_length", c.max_position);
  c.rms_eps = arch->default_rms_eps;
  if (m.has(a + "attention.layer_norm_rms_epsilon"))
    c.rms_eps = static_cast<float>(m.get_float(a + "attention.layer_norm_rms_epsilon"));
  if (m.has(a + "rope.freq_base"))
    c.rope_theta = static_cast<float>(m.get_float(a + "rope.freq_base"));
  if (m.has(a + "rope.scaling.type")) {
    const std::string t = m.get_string(a + "rope.scaling.type");
    c.rope_scaling.type = (t == "none") ? "" : t;
  }
  if (m.has(a + "rope.scaling.factor"))
    c.rope_scaling.factor = static_cast<float>(m.get_float(a + "rope.scaling.factor"));
  if (m.has(a + "rope.scaling.original_context_length")) {
    c.rope_scaling.original_max_position =
        m.get_int32(a + "rope.scaling.original_context_length", 1);
  }
  if (m.get_int32_or(a + "expert_count", 0) > 0)
    m.fail(a + "expert_count: mixture-of-experts models are not supported");
  if (m.has(a + "attention.causal")) {
    const bool* causal = std::get_if<bool>(m.find(a + "attention.causal"));
    if (causal == nullptr || !*causal)
      m.fail(a + "attention.causal: only causal attention is supported");
  }
  if (m.has(a + "vocab_size")) {
    c.vocab_size = m.get_int32(a + "vocab_size", 1);
  } else if (const GgufValue* tokens = m.find("tokenizer.ggml.tokens")) {
    const auto* list = std::get_if<std::vector<std::string>>(tokens);
    if (list == nullptr) m.fail("tokenizer.ggml.tokens: expected an array of strings");
    c.vocab_size = static_cast<int>(list->size());
  } else {
    m.fail("missing metadata key " + a + "vocab_size (and no tokenizer.ggml.tokens to count)");
  }
  if (m.has("tokenizer.ggml.bos_token_id"))
    c.bos_token_id = m.get_int32("tokenizer.ggml.bos_token_id");
  for (const char* key : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"}) {
    if (!m.has(key)) continue;
    const int id = m.get_int32(key);
    bool dup = false;
    for (int e : c.eos_token_ids) dup = dup || e == id;
    if (!dup) c.eos_token_ids.push_back(id);
  }
  // Family facts. llama.cpp's converter stores Gemma norm weights with the +1 already added, and
  // Qwen2 biases / Qwen3 and Gemma 3 q/k norms as tensors; the model checks those exist.
  c.activation = arch->default_activation;
  // Optional biases exist when layer 0 has them (the model then requires them in every layer).
  c.qkv_bias = arch->qkv_bias || has_tensor("blk.0.attn_q.bias");
  c.o_bias = has_tensor("blk.0.attn_output.bias");
  c.mlp_bias = has_tensor("blk.0.ffn_gate.bias") || has_tensor("blk.0.ffn_up.bias") ||
               has_tensor("blk.0.ffn_down.bias");
  c.qk_norm = arch->qk_norm;
  c.sandwich_norms = arch->sandwich_norms;
  c.embedding_scale = arch->scaled_embedding ? std::sqrt(static_cast<float>(c.hidden_size)) : 1.0f;
  if (m.has(a + "attn_logit_softcapping"))
    c.attn_logit_softcap = static_cast<float>(m.get_float(a + "attn_logit_softcapping"));
  if (m.has(a + "final_logit_softcapping"))
    c.final_logit_softcap = static_cast<float>(m.get_float(a + "final_logit_softcapping"));
  if (m.has(a + "attention.sliding_window")) {
    c.sliding_window = m.get_int32(a + "attention.sliding_window");
    if (arch->sliding_pattern > 0) {
      const int n = arch->sliding_pattern;
      for (int l = 0; l < c.num_layers; ++l) c.layer_sliding.push_back(l % n < n - 1);
    }
  }
  // Gemma 3's sliding layers have their own RoPE base (llama.cpp's default when the key is absent).
  if (arch->name == "gemma3") {
    const std::string key = a + "rope.freq_base_swa";
    c.rope_theta_sliding = m.has(key) ? static_cast<float>(m.get_float(key)) : 10000.0f;
  }
  c.tie_embeddings = !has_tensor("output.weight");
  c.rope_interleaved = arch->gguf_rope_interleaved;
  return c;
}

}  // namespace longbow
