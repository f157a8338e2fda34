// Llama-family decoder (Llama 2/3, SmolLM/SmolLM2, TinyLlama, Mistral without sliding window),
// written once against backend.h: RMSNorm, RoPE, grouped-query attention over the paged KV
// cache, SwiGLU MLP, tied or untied embeddings.
#pragma once

#include <memory>
#include <vector>

#include "longbow/backend/backend.h"
#include "longbow/core/model_file.h"
#include "longbow/models/batch.h"
#include "longbow/models/kv_cache.h"

namespace longbow {

struct WeightRef {
  BufView view;
  DType dtype = DType::F32;
  int rows = 0, cols = 0;  // (rows, cols) = (N, K) for a matmul weight
};

class LlamaModel {
 public:
  // Wraps the mmap'ed weights of `file` (no copy where the backend allows) and checks that
  // the backend supports every weight dtype.
  LlamaModel(std::shared_ptr<const ModelFile> file, Backend& backend);

  const ModelConfig& config() const { return config_; }

  // Sizes the activation arena: at most max_tokens tokens, max_seqs sequences with
  // max_blocks_per_seq blocks each, and max_rows logits rows per forward.
  void reserve(int max_tokens, int max_seqs, int max_blocks_per_seq, int max_rows);

  // One forward over a flattened varlen batch. Writes K/V of the new tokens into `kv`, and the
  // logits of batch.logits_rows into logits() as (num_rows, vocab_size) f32.
  void forward(const Batch& batch, KvCache& kv, AttentionVariant variant = AttentionVariant::Auto);

  BufView logits() const { return {logits_.get(), 0}; }

 private:
  struct Layer {
    WeightRef attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down;
    WeightRef bq, bk, bv;  // optional biases (Qwen-style); empty views when absent
  };

  // Norm vectors and biases become f32 copies; embedding tables are wrapped in place; matmul
  // weights go through Backend::matmul_weight (the CPU backend packs quantized ones).
  enum class WeightUse { Matmul, Norm, Embedding };
  WeightRef weight(const std::string& name, WeightUse use = WeightUse::Matmul);
  WeightRef optional_bias(const std::string& name);
  void upload_batch(const Batch& batch);
  void run_layer(int layer_idx, const Batch& batch, KvCache& kv, AttentionVariant variant);

  std::shared_ptr<const ModelFile> file_;
  Backend& backend_;
  ModelConfig config_;
  std::vector<std::unique_ptr<Buffer>> owned_;  // wrapped weights and converted norms
  WeightRef token_embd_, output_norm_, output_;
  std::vector<Layer> layers_;
  std::unique_ptr<Buffer> inv_freq_;  // (rot_dim / 2,) f32

  // Activation arena, sized by reserve().
  int max_tokens_ = 0, max_seqs_ = 0, max_blocks_per_seq_ = 0, max_rows_ = 0;
  std::unique_ptr<Buffer> x_;        // (max_tokens, hidden) residual stream
  std::unique_ptr<Buffer> h_;        // (max_tokens, hidden) normed input
  std::unique_ptr<Buffer> q_;        // (max_tokens, num_heads * head_dim)
  std::unique_ptr<Buffer> k_, v_;    // (max_tokens, num_kv_heads * head_dim)
  std::unique_ptr<Buffer> attn_;     // (max_tokens, num_heads * head_dim)
  std::unique_ptr<Buffer> gate_, up_;  // (max_tokens, intermediate)
  std::unique_ptr<Buffer> rows_;     // (max_rows, hidden) gathered rows for the LM head
  std::unique_ptr<Buffer> logits_;   // (max_rows, vocab)
  std::unique_ptr<Buffer> batch_i32_;  // token_ids | positions | query_start | seq_lens | slots | rows | tables
  BufView token_ids_, positions_, query_start_, seq_lens_, slot_mapping_, logits_rows_, block_tables_;
};

}  // namespace longbow
