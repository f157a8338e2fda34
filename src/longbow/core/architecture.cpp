#include "longbow/core/architecture.h"

namespace longbow {

const std::vector<ArchFacts>& architectures() {
  static const std::vector<ArchFacts> table = [] {
    std::vector<ArchFacts> t;
    t.push_back({.name = "llama",
                 .hf_model_types = {"llama"},
                 .gguf_rope_interleaved = true,
                 .has_sliding_window = false,
                 .default_rms_eps = 1e-6f});
    t.push_back({.name = "mistral",
                 .hf_model_types = {"mistral"},
                 .gguf_rope_interleaved = true,
                 .default_rms_eps = 1e-6f});
    t.push_back(
        {.name = "qwen2", .hf_model_types = {"qwen2"}, .qkv_bias = true, .default_rms_eps = 1e-6f});
    t.push_back({.name = "qwen3",
                 .hf_model_types = {"qwen3"},
                 .qk_norm = true,
                 .default_head_dim = 128,
                 .default_rms_eps = 1e-6f});
    t.push_back({.name = "phi3",
                 .hf_model_types = {"phi3"},
                 .fused_projections = true,
                 .default_rms_eps = 1e-5f});
    t.push_back({.name = "gemma2",
                 .hf_model_types = {"gemma2"},
                 .sandwich_norms = true,
                 .gemma_norms = true,
                 .scaled_embedding = true,
                 .default_activation = Activation::GeluTanh,
                 .default_head_dim = 256,
                 .default_tie = true,
                 .sliding_pattern = 2,
                 .default_rms_eps = 1e-6f,
                 .hf_activation_key = "hidden_activation"});
    t.push_back({.name = "gemma3",
                 .hf_model_types = {"gemma3_text"},
                 .qk_norm = true,
                 .sandwich_norms = true,
                 .gemma_norms = true,
                 .scaled_embedding = true,
                 .default_activation = Activation::GeluTanh,
                 .default_head_dim = 256,
                 .default_tie = true,
                 .sliding_pattern = 6,
                 .default_rms_eps = 1e-6f,
                 .hf_activation_key = "hidden_activation"});
    return t;
  }();
  return table;
}

const ArchFacts* find_arch(std::string_view name) {
  for (const ArchFacts& a : architectures()) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

const ArchFacts* find_arch_by_hf_model_type(std::string_view model_type) {
  for (const ArchFacts& a : architectures()) {
    for (std::string_view t : a.hf_model_types) {
      if (t == model_type) return &a;
    }
  }
  return nullptr;
}

std::string arch_names() {
  std::string s;
  for (const ArchFacts& a : architectures()) s += (s.empty() ? "" : ", ") + std::string(a.name);
  return s;
}

std::string hf_model_type_names() {
  std::string s;
  for (const ArchFacts& a : architectures()) {
    for (std::string_view t : a.hf_model_types) s += (s.empty() ? "" : ", ") + std::string(t);
  }
  return s;
}

const char* activation_name(Activation a) { return a == Activation::Silu ? "silu" : "gelu_tanh"; }

}  // namespace longbow
