// The model families longbow runs and the facts that tell them apart. One row per family; the
// config readers (HF and GGUF), the tensor-name mapping and the model all read this table, so a
// family's facts are written once.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace longbow {

// Activation of the gated MLP: out = act(gate) * up.
enum class Activation : uint8_t { Silu, GeluTanh };

struct ArchFacts {
  std::string_view name;                         // registry key = GGUF general.architecture
  std::vector<std::string_view> hf_model_types;  // config.json model_type values
  // llama.cpp's converter permutes the Q/K rows of llama-type files for adjacent-pair RoPE; the
  // other families keep the rotate-half layout in GGUF as in HF.
  bool gguf_rope_interleaved = false;
  bool qkv_bias = false;           // always has q/k/v biases (Qwen2)
  bool qk_norm = false;            // per-head RMSNorm of q and k before RoPE (Qwen3, Gemma 3)
  bool sandwich_norms = false;     // extra norms after attention and after the MLP (Gemma 2/3)
  bool gemma_norms = false;        // HF stores RMSNorm weights as w - 1 (applied as 1 + w)
  bool scaled_embedding = false;   // embeddings multiplied by sqrt(hidden_size) (Gemma)
  bool fused_projections = false;  // one qkv_proj and one gate_up_proj tensor (Phi-3)
  Activation default_activation = Activation::Silu;
  int default_head_dim = 0;  // head_dim when config.json omits it; 0 = hidden / heads
  bool default_tie = false;  // tie_word_embeddings when config.json omits it
  bool has_sliding_window =
      true;  // config.json may set sliding_window (transformers' Llama ignores it)
  // Which layers use the sliding window when the file does not list them: 0 = all layers, n =
  // layer i when i % n < n - 1 (Gemma 2: even layers; Gemma 3: five of every six).
  int sliding_pattern = 0;
  float default_rms_eps = 1e-6f;  // transformers' config default for the family
  std::string_view hf_activation_key = "hidden_act";
};

// All supported families, in the order `longbow info` lists them.
const std::vector<ArchFacts>& architectures();
// nullptr when unknown.
const ArchFacts* find_arch(std::string_view name);
const ArchFacts* find_arch_by_hf_model_type(std::string_view model_type);
// "llama, mistral, ..." for error messages.
std::string arch_names();
std::string hf_model_type_names();

const char* activation_name(Activation a);

}  // namespace longbow
