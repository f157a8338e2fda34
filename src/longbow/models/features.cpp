#include "longbow/models/features.h"

namespace longbow::models {

std::vector<Feature> model_features(const ModelConfig& c) {
  std::vector<Feature> f;
  auto add = [&](bool needed, std::string name, bool supported) {
    if (needed) f.push_back({std::move(name), supported});
  };
  add(!c.rope_scaling.type.empty(), "RoPE scaling " + c.rope_scaling.type, true);
  add(c.rot_dim != c.head_dim,
      "partial rotary (" + std::to_string(c.rot_dim) + " of " + std::to_string(c.head_dim) + ")",
      true);
  add(c.qkv_bias, "q/k/v biases", true);
  add(c.o_bias, "attention output bias", true);
  add(c.mlp_bias, "MLP biases", true);
  add(c.qk_norm, "q/k RMSNorm", true);
  add(c.sandwich_norms, "post-attention and post-MLP norms", true);
  add(c.norm_weight_offset != 0.0f, "(1 + w) RMSNorm weights", true);
  add(c.activation != Activation::Silu, std::string("activation ") + activation_name(c.activation),
      true);
  add(c.embedding_scale != 1.0f, "scaled embeddings", true);
  add(c.attention_scale > 0, "attention scale from query_pre_attn_scalar", true);
  add(c.attn_logit_softcap > 0, "attention logit soft-capping", true);
  add(c.final_logit_softcap > 0, "final logit soft-capping", true);
  if (c.sliding_window > 0) {
    int n = 0;
    for (int l = 0; l < c.num_layers; ++l) n += c.layer_uses_window(l) ? 1 : 0;
    add(true,
        "sliding-window attention (window " + std::to_string(c.sliding_window) + ", " +
            std::to_string(n) + " of " + std::to_string(c.num_layers) + " layers)",
        true);
  }
  add(c.rope_theta_sliding > 0, "separate RoPE base on sliding layers", true);
  return f;
}

}  // namespace longbow::models
