// The decoder-only transformer shared by every supported family (core/architecture.h), written
// once against backend.h: pre-norm blocks with RMSNorm, RoPE, grouped-query attention over the
// paged KV cache and a gated MLP. The family facts in ModelConfig switch its variations: biases,
// q/k norms, Gemma's scaled embeddings and norms around each block, GELU-tanh, fused Phi-3
// projections (split at load), soft-capping and sliding-window layers.
#pragma once

#include <memory>
#include <vector>

#include "longbow/models/model.h"
#include "longbow/models/weight_loader.h"

namespace longbow::models {

class Decoder final : public Model {
 public:
  // Wraps the mmap'ed weights of `file` (no copy where the backend allows), checks every shape
  // and that every tensor of the file is used, and that the backend runs every feature.
  Decoder(std::shared_ptr<const ModelFile> file, Backend& backend, const LoadOptions& options = {});

  const ModelConfig& config() const override { return config_; }
  void reserve(int max_tokens, int max_seqs, int max_blocks_per_seq, int max_rows) override;
  void forward(const Batch& batch, KvCache& kv,
               AttentionVariant variant = AttentionVariant::Auto) override;
  BufView logits() const override { return {logits_.get(), 0}; }

 private:
  struct Layer {
    WeightRef attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down;
    WeightRef bq, bk, bv, bo, b_gate, b_up, b_down;  // optional biases; empty when absent
    WeightRef q_norm, k_norm;                        // (head_dim,) when config.qk_norm
    WeightRef attn_post_norm, ffn_post_norm;         // when config.sandwich_norms
  };

  void load_layer(WeightLoader& w, int layer_idx, Layer& L);
  void load_rope(WeightLoader& w);
  void load_hadamard();
  void check_backend_features() const;
  void upload_batch(const Batch& batch);
  void run_layer(int layer_idx, const Batch& batch, KvCache& kv, AttentionVariant variant);
  void run_mlp(const Layer& L, int num_tokens);
  MlpArgs mlp_args(const Layer& L, int num_tokens) const;

  std::shared_ptr<const ModelFile> file_;
  Backend& backend_;
  ModelConfig config_;
  std::vector<std::unique_ptr<Buffer>> owned_;  // wrapped weights and converted vectors
  WeightRef token_embd_, output_norm_, output_;
  std::vector<Layer> layers_;
  std::unique_ptr<Buffer> inv_freq_;          // (rot_dim / 2,) f32
  std::unique_ptr<Buffer> inv_freq_sliding_;  // (rot_dim / 2,) f32, Gemma 3's sliding layers
  // LoadOptions::kv_rotation: (head_dim, head_dim) f32 normalized Hadamard matrix (symmetric) as a
  // matmul weight over the rows of every head, and its host data (the backend may wrap it).
  std::vector<float> hadamard_host_;
  std::unique_ptr<Buffer> hadamard_;

  // Activation arena, sized by reserve().
  int max_tokens_ = 0, max_seqs_ = 0, max_blocks_per_seq_ = 0, max_rows_ = 0;
  std::unique_ptr<Buffer> x_;          // (max_tokens, hidden) residual stream
  std::unique_ptr<Buffer> h_;          // (max_tokens, hidden) normed input
  std::unique_ptr<Buffer> q_;          // (max_tokens, num_heads * head_dim)
  std::unique_ptr<Buffer> k_, v_;      // (max_tokens, num_kv_heads * head_dim)
  std::unique_ptr<Buffer> attn_;       // (max_tokens, num_heads * head_dim)
  std::unique_ptr<Buffer> rq_, rk_;    // kv_rotation: rotated q and k, shaped as q_ and k_
  std::unique_ptr<Buffer> gate_, up_;  // (max_tokens, intermediate)
  std::unique_ptr<Buffer> rows_;       // (max_rows, hidden) gathered rows for the LM head
  std::unique_ptr<Buffer> logits_;     // (max_rows, vocab)
  std::unique_ptr<Buffer> batch_i32_;  // token_ids | positions | query_start | seq_lens | generated
                                       // | slots | rows | tables
  BufView token_ids_, positions_, query_start_, seq_lens_, generated_seqs_, slot_mapping_,
      logits_rows_, block_tables_;
};

}  // namespace longbow::models
