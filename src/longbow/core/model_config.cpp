#include "longbow/core/model_config.h"

#include <cmath>
#include <stdexcept>

#include "longbow/core/check.h"

namespace longbow {

namespace {
void require_config(bool ok, const std::string& source, const std::string& what) {
  require(ok, source, [&] { return "invalid model config: " + what; });
}
}  // namespace

void ModelConfig::validate(const std::string& source) const {
  require_config(vocab_size > 0, source,
                 "vocab_size must be > 0, found " + std::to_string(vocab_size));
  require_config(hidden_size > 0, source,
                 "hidden_size must be > 0, found " + std::to_string(hidden_size));
  require_config(intermediate_size > 0, source,
                 "intermediate_size must be > 0, found " + std::to_string(intermediate_size));
  require_config(num_layers > 0 && num_layers <= 1024, source,
                 "num_layers must be in 1..1024, found " + std::to_string(num_layers));
  require_config(num_heads > 0, source,
                 "num_heads must be > 0, found " + std::to_string(num_heads));
  require_config(num_kv_heads > 0 && num_heads % num_kv_heads == 0, source,
                 "num_kv_heads must divide num_heads=" + std::to_string(num_heads) + ", found " +
                     std::to_string(num_kv_heads));
  require_config(head_dim > 0 && head_dim % 2 == 0 && head_dim <= 512, source,
                 "head_dim must be even and in 2..512, found " + std::to_string(head_dim));
  require_config(rot_dim > 0 && rot_dim % 2 == 0 && rot_dim <= head_dim, source,
                 "rotary dims must be even and <= head_dim, found " + std::to_string(rot_dim));
  require_config(max_position > 0, source, "max_position must be > 0");
  require_config(rms_eps > 0 && std::isfinite(rms_eps), source, "rms_norm_eps must be positive");
  require_config(rope_theta > 0 && std::isfinite(rope_theta), source,
                 "rope_theta must be positive");
  require_config(
      rope_scaling.type.empty() || rope_scaling.type == "llama3" || rope_scaling.type == "linear",
      source,
      "unsupported rope_scaling type '" + rope_scaling.type + "' (expected llama3 or linear)");
  require_config(rope_scaling.factor > 0 && std::isfinite(rope_scaling.factor), source,
                 "rope_scaling.factor must be positive");
  require_config(find_arch(architecture) != nullptr, source,
                 "unknown architecture '" + architecture + "' (supported: " + arch_names() + ")");
  auto finite_nonneg = [](float x) { return std::isfinite(x) && x >= 0; };
  require_config(
      finite_nonneg(norm_weight_offset) && std::isfinite(embedding_scale) && embedding_scale > 0,
      source, "norm weight offset and embedding scale must be finite (scale > 0)");
  require_config(finite_nonneg(attention_scale), source, "attention scale must be finite and >= 0");
  require_config(finite_nonneg(attn_logit_softcap), source,
                 "attention logit soft-cap must be finite and >= 0");
  require_config(finite_nonneg(final_logit_softcap), source,
                 "final logit soft-cap must be finite and >= 0");
  require_config(sliding_window >= 0, source,
                 "sliding_window must be >= 0, found " + std::to_string(sliding_window));
  require_config(layer_sliding.empty() || static_cast<int>(layer_sliding.size()) == num_layers,
                 source,
                 "per-layer attention types: expected " + std::to_string(num_layers) +
                     " entries, found " + std::to_string(layer_sliding.size()));
  require_config(finite_nonneg(rope_theta_sliding), source,
                 "sliding-layer rope theta must be finite and >= 0");
}

std::vector<float> rope_inv_freq(const ModelConfig& c, float theta) {
  const int half = c.rot_dim / 2;
  std::vector<float> inv(half);
  const bool plain = theta > 0;
  if (!plain) theta = c.rope_theta;
  for (int i = 0; i < half; ++i) {
    double f = 1.0 / std::pow(static_cast<double>(theta), (2.0 * i) / c.rot_dim);
    if (plain) {
      // No scaling: the base alone.
    } else if (c.rope_scaling.type == "linear") {
      f /= c.rope_scaling.factor;
    } else if (c.rope_scaling.type == "llama3") {
      // Llama 3.1 frequency-dependent scaling: long wavelengths slowed by `factor`, short kept,
      // a smooth blend in between.
      const RopeScaling& s = c.rope_scaling;
      const double low_wavelen = s.original_max_position / s.low_freq_factor;
      const double high_wavelen = s.original_max_position / s.high_freq_factor;
      const double wavelen = 2.0 * M_PI / f;
      if (wavelen > low_wavelen) {
        f /= s.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (s.original_max_position / wavelen - s.low_freq_factor) /
                              (s.high_freq_factor - s.low_freq_factor);
        f = (1.0 - smooth) * f / s.factor + smooth * f;
      }
    }
    inv[i] = static_cast<float>(f);
  }
  return inv;
}

}  // namespace longbow
