// The model seam: what the engine needs from a model, whatever its family. A model is written
// once against backend.h; the engine owns one (and, for speculative decoding, a second one as
// the draft) through this interface.
#pragma once

#include <memory>
#include <optional>

#include "longbow/backend/backend.h"
#include "longbow/core/model_config.h"
#include "longbow/core/model_file.h"
#include "longbow/models/batch.h"
#include "longbow/models/kv_cache.h"

namespace longbow::models {

class Model {
 public:
  virtual ~Model() = default;
  virtual const ModelConfig& config() const = 0;
  // Sizes the activation arena: at most max_tokens tokens, max_seqs sequences with
  // max_blocks_per_seq blocks each, and max_rows logits rows per forward.
  virtual void reserve(int max_tokens, int max_seqs, int max_blocks_per_seq, int max_rows) = 0;
  // One forward over a flattened varlen batch. Writes K/V of the new tokens into `kv`, and the
  // logits of batch.logits_rows into logits() as (num_rows, vocab_size) f32.
  virtual void forward(const Batch& batch, KvCache& kv,
                       AttentionVariant variant = AttentionVariant::Auto) = 0;
  virtual BufView logits() const = 0;
};

struct LoadOptions {
  // Float matmul weights quantized to this (q8_0, q4_0 or q4_1) as they load: a smaller, faster
  // model from an F32/F16/BF16 file (speculative self-draft, EngineConfig::quantize).
  std::optional<DType> quantize;
  // Rotate q and k of every head by the normalized Hadamard matrix after RoPE (head_dim a power
  // of two): q·k is unchanged, and outlier dimensions of K are spread before a quantized KV cache
  // stores it (EngineConfig::kv_rotation).
  bool kv_rotation = false;
};

// The model for file->config().architecture (a name from core/architecture.h), with its weights
// wrapped or packed by `backend`. Throws std::invalid_argument naming the file and the tensor or
// feature when the model cannot be run exactly as the file describes.
std::unique_ptr<Model> create_model(std::shared_ptr<const ModelFile> file, Backend& backend,
                                    const LoadOptions& options = {});

}  // namespace longbow::models
