// Hyper-parameters of a decoder model, read from config.json or GGUF metadata. Every field that
// changes the math is here; the readers refuse config keys they do not understand.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "longbow/core/architecture.h"

namespace longbow {

struct RopeScaling {
  std::string type;  // "" (none), "llama3", "linear"
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_max_position = 8192;
};

struct ModelConfig {
  std::string architecture = "llama";  // a name from architectures()
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;  // hidden_size / num_heads unless given
  int rot_dim = 0;   // rotary dimensions (head_dim unless given)
  int max_position = 2048;
  float rms_eps = 1e-5f;
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  bool tie_embeddings = false;  // true when there is no separate output.weight
  // GGUF llama files store Q/K rows permuted for RoPE on adjacent pairs; HF folders keep the
  // rotate-half layout. The model picks the RoPE variant that matches the weights.
  bool rope_interleaved = false;
  Activation activation = Activation::Silu;
  // Biases of the linear layers (absent unless set): q/k/v, the attention output, the MLP.
  bool qkv_bias = false, o_bias = false, mlp_bias = false;
  bool qk_norm = false;              // per-head RMSNorm of q and k (weights (head_dim,))
  bool sandwich_norms = false;       // post-attention and post-MLP norms before the residual add
  float norm_weight_offset = 0.0f;   // added to every RMSNorm weight at load (1 for HF Gemma)
  float embedding_scale = 1.0f;      // embeddings are multiplied by it (sqrt(hidden) for Gemma)
  float attention_scale = 0.0f;      // softmax scale; 0 = 1 / sqrt(head_dim)
  float attn_logit_softcap = 0.0f;   // 0 = off; else scores s -> cap * tanh(s / cap)
  float final_logit_softcap = 0.0f;  // 0 = off; same on the output logits
  // Sliding-window attention: a query at position p sees keys p - sliding_window < j <= p on the
  // layers where layer_sliding[l] is set (all layers when the vector is empty). 0 = off.
  int sliding_window = 0;
  std::vector<uint8_t> layer_sliding;
  float rope_theta_sliding = 0.0f;  // RoPE base of the sliding layers (Gemma 3); 0 = rope_theta
  int bos_token_id = -1;
  std::vector<int> eos_token_ids;

  // Throws std::invalid_argument (naming `source`) when values are missing or inconsistent.
  void validate(const std::string& source) const;
  bool layer_uses_window(int layer_idx) const {
    return sliding_window > 0 && (layer_sliding.empty() || layer_sliding[layer_idx] != 0);
  }
};

// Per-pair inverse frequencies (rot_dim / 2) with rope scaling applied; `theta` overrides
// rope_theta when > 0 (the sliding layers of Gemma 3 use their own base, without scaling).
std::vector<float> rope_inv_freq(const ModelConfig& c, float theta = 0.0f);

}  // namespace longbow
