// Hyper-parameters of a Llama-family model, read from config.json or GGUF metadata.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace longbow {

struct RopeScaling {
  std::string type;  // "" (none), "llama3", "linear"
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_max_position = 8192;
};

struct ModelConfig {
  std::string architecture = "llama";
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;   // hidden_size / num_heads unless given
  int rot_dim = 0;    // rotary dimensions (head_dim unless given)
  int max_position = 2048;
  float rms_eps = 1e-5f;
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  bool tie_embeddings = false;  // true when there is no separate output.weight
  // GGUF llama files store Q/K rows permuted for RoPE on adjacent pairs; HF folders keep the
  // rotate-half layout. The model picks the RoPE variant that matches the weights.
  bool rope_interleaved = false;
  int bos_token_id = -1;
  std::vector<int> eos_token_ids;

  // Throws std::invalid_argument (naming `source`) when values are missing or inconsistent.
  void validate(const std::string& source) const;
};

// Per-pair inverse frequencies (rot_dim / 2) with rope scaling applied.
std::vector<float> rope_inv_freq(const ModelConfig& c);

}  // namespace longbow
