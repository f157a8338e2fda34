#include "longbow/core/name_mapping.h"

#include <cstring>

#include "longbow/core/architecture.h"

namespace longbow {

namespace {
struct Rule {
  const char* hf;         // part after "model.layers.N."
  const char* canonical;  // part after "blk.N."
};
constexpr Rule kLayerRules[] = {
    {"self_attn.q_proj", "attn_q"},
    {"self_attn.k_proj", "attn_k"},
    {"self_attn.v_proj", "attn_v"},
    {"self_attn.o_proj", "attn_output"},
    {"mlp.gate_proj", "ffn_gate"},
    {"mlp.up_proj", "ffn_up"},
    {"mlp.down_proj", "ffn_down"},
    {"input_layernorm", "attn_norm"},
    {"post_attention_layernorm", "ffn_norm"},
    {"self_attn.q_norm", "attn_q_norm"},
    {"self_attn.k_norm", "attn_k_norm"},  // Qwen3, Gemma 3
    {"self_attn.qkv_proj", "attn_qkv"},
    {"mlp.gate_up_proj", "ffn_up"},  // Phi-3 (fused)
};
// Gemma 2/3 norms around attention and the MLP (llama.cpp's names).
constexpr Rule kGemmaLayerRules[] = {
    {"post_attention_layernorm", "post_attention_norm"},
    {"pre_feedforward_layernorm", "ffn_norm"},
    {"post_feedforward_layernorm", "post_ffw_norm"},
};

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

// Splits "x.weight" / "x.bias" into stem and suffix; false for anything else.
bool split_param(const std::string& s, std::string& stem, std::string& suffix) {
  for (const char* sfx : {".weight", ".bias"}) {
    const size_t n = std::strlen(sfx);
    if (s.size() > n && s.compare(s.size() - n, n, sfx) == 0) {
      stem = s.substr(0, s.size() - n);
      suffix = sfx;
      return true;
    }
  }
  return false;
}
}  // namespace

std::string canonical_tensor_name(const std::string& hf_name, const std::string& arch) {
  std::string stem, suffix;
  if (!split_param(hf_name, stem, suffix)) return hf_name;
  if (stem == "model.embed_tokens") return "token_embd" + suffix;
  if (stem == "model.norm") return "output_norm" + suffix;
  if (stem == "lm_head") return "output" + suffix;
  const char* prefix = "model.layers.";
  if (!starts_with(stem, prefix)) return hf_name;
  const size_t num_start = std::strlen(prefix);
  size_t num_end = num_start;
  while (num_end < stem.size() && stem[num_end] >= '0' && stem[num_end] <= '9') ++num_end;
  if (num_end == num_start || num_end - num_start > 6 || num_end >= stem.size() ||
      stem[num_end] != '.')
    return hf_name;
  const std::string layer = stem.substr(num_start, num_end - num_start);
  const std::string rest = stem.substr(num_end + 1);
  if (const ArchFacts* facts = find_arch(arch); facts != nullptr && facts->sandwich_norms) {
    for (const Rule& r : kGemmaLayerRules) {
      if (rest == r.hf) return "blk." + layer + "." + r.canonical + suffix;
    }
  }
  for (const Rule& r : kLayerRules) {
    if (rest == r.hf) return "blk." + layer + "." + r.canonical + suffix;
  }
  return hf_name;
}

}  // namespace longbow
