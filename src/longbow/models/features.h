// The features a model config asks for, each with whether longbow runs it. The decoder refuses a
// config with an unsupported feature before loading weights; `longbow info` lists them.
#pragma once

#include <string>
#include <vector>

#include "longbow/core/model_config.h"

namespace longbow::models {

struct Feature {
  std::string
      name;  // e.g. "q/k/v biases", "sliding-window attention (window 4096, 16 of 32 layers)"
  bool supported = false;
};

// Only the features beyond the plain Llama graph (RMSNorm, RoPE, GQA, SwiGLU) are listed.
std::vector<Feature> model_features(const ModelConfig& c);

}  // namespace longbow::models
