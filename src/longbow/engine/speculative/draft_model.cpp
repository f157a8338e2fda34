// Draft-model proposer: drafts from a second, smaller model with the target's vocabulary, batched
// over the speculating sequences, with its own paged KV cache indexed by the target's block tables
// (so allocation, copy-on-write and preemption stay the scheduler's). Each draft token is sampled
// under the request's own parameters: greedy at temperature 0, else drawn with its distribution
// kept for the target's rejection sampling.
#include <algorithm>
#include <span>
#include <stdexcept>
#include <string>

#include "longbow/engine/batch_builder.h"
#include "longbow/engine/sample_rows.h"
#include "longbow/engine/speculative/proposer.h"
#include "longbow/models/model.h"
#include "philox.h"  // LONGBOW_PHILOX_STREAM_DRAFT

namespace longbow::engine {

namespace {

class DraftModelProposer final : public Proposer {
 public:
  DraftModelProposer(std::shared_ptr<const ModelFile> file, const ModelConfig& target,
                     Backend& backend, const DraftModelOptions& o)
      : backend_(backend), options_(o) {
    const ModelConfig& dc = file->config();
    if (dc.vocab_size != target.vocab_size) {
      throw std::invalid_argument("[speculative] draft model " + file->path() + " has vocab_size " +
                                  std::to_string(dc.vocab_size) + ", the target " +
                                  std::to_string(target.vocab_size) +
                                  " (a draft must share the target's vocabulary)");
    }
    model_ = models::create_model(std::move(file), backend, {o.quantize, o.kv_rotation});
    KvCacheLayout layout;
    layout.num_layers = dc.num_layers;
    layout.num_blocks = o.num_blocks;
    layout.block_size = o.block_size;
    layout.num_kv_heads = dc.num_kv_heads;
    layout.head_dim = dc.head_dim;
    layout.k_dtype = o.k_dtype;
    layout.v_dtype = o.v_dtype;
    kv_ = std::make_unique<KvCache>(backend, layout);
    max_tokens_ = std::max(o.max_num_batched_tokens, o.max_num_seqs);
    model_->reserve(max_tokens_, o.max_num_seqs, o.max_blocks_per_seq, o.max_num_seqs);
    if (!o.eos_ids) throw std::invalid_argument("[speculative] the draft model needs eos_ids");
    vocab_ = dc.vocab_size;
    ids_ = backend.alloc(o.max_num_seqs * sizeof(int32_t));
    logprobs_ = backend.alloc(o.max_num_seqs * sizeof(float));
    top_ids_ = backend.alloc(sizeof(int32_t));
    top_logprobs_ = backend.alloc(sizeof(float));
    params_ = backend.alloc(o.max_num_seqs * sizeof(SampleRowParams));
    penalty_capacity_ = 4096;
    penalty_tokens_ = backend.alloc(penalty_capacity_ * sizeof(int32_t));
  }

  KvCache* kv_cache() override { return kv_.get(); }
  BufView draft_probs() const override { return {probs_.get(), 0}; }
  int num_draft_probs_rows() const override { return probs_rows_; }

  void propose(const std::vector<ProposalRequest>& requests) override {
    std::vector<ProposalRequest> live;
    int rows = 0;  // probs rows of the sampled (temperature > 0) sequences
    for (const ProposalRequest& r : requests) {
      r.seq->clear_draft();
      if (r.max_draft <= 0) continue;
      live.push_back(r);
      if (r.seq->params.temperature > 0.0f) {
        r.seq->draft_probs_row = rows;
        rows += r.max_draft;
      }
    }
    if (rows > probs_rows_) {  // grows rarely; the previous verify has been read back
      probs_rows_ = std::max(rows, 2 * probs_rows_);
      probs_ = backend_.alloc(static_cast<size_t>(probs_rows_) * vocab_ * sizeof(float));
    }
    catch_up(live);
    // Draft token j: feed draft j - 1 at position num_tokens - 1 + j.
    for (int j = 1;; ++j) {
      BatchBuilder b(options_.block_size);
      std::vector<Sequence*> owners;
      for (const ProposalRequest& r : live) {
        Sequence* s = r.seq;
        if (r.max_draft <= j || static_cast<int>(s->draft_tokens.size()) != j) continue;
        const int pos = s->num_tokens() - 1 + j;
        b.add_logits_row(b.add(std::span(&s->draft_tokens[j - 1], 1), pos, s->block_table, true));
        s->draft_computed = pos + 1;
        owners.push_back(s);
      }
      if (owners.empty()) return;
      run(b.finish(), owners);
    }
  }

 private:
  // Feeds each sequence's tokens the draft has not seen, in forwards of at most max_tokens_
  // tokens; a sequence whose last token is fed gets its first draft token.
  void catch_up(const std::vector<ProposalRequest>& live) {
    std::vector<Sequence*> pending;
    for (const ProposalRequest& r : live) pending.push_back(r.seq);
    while (!pending.empty()) {
      BatchBuilder b(options_.block_size);
      std::vector<Sequence*> owners, later;
      int budget = max_tokens_;
      for (Sequence* s : pending) {
        const int left = s->num_tokens() - s->draft_computed;
        const int n = std::min(left, budget);
        if (n <= 0) {
          later.push_back(s);
          continue;
        }
        const int at = b.add(std::span(s->tokens).subspan(s->draft_computed, n), s->draft_computed,
                             s->block_table, s->draft_computed >= s->num_prompt_tokens);
        s->draft_computed += n;
        budget -= n;
        if (n == left) {
          b.add_logits_row(at + n - 1);
          owners.push_back(s);
        } else {
          later.push_back(s);
        }
      }
      run(b.finish(), owners);
      pending.swap(later);
    }
  }

  // One draft forward; row i samples owners[i]'s next draft token (sample_rows.h, on the DRAFT
  // Philox stream) and writes its distribution to the sequence's probs row when it samples.
  void run(const Batch& batch, const std::vector<Sequence*>& owners) {
    model_->forward(batch, *kv_, options_.attention);
    const int rows = static_cast<int>(owners.size());
    if (rows == 0) return;
    std::vector<SampleRowParams> params(rows);
    std::vector<int32_t> tokens;
    for (int i = 0; i < rows; ++i) {
      const Sequence& s = *owners[i];
      const int j = static_cast<int>(s.draft_tokens.size());
      params[i] = sample_row_params(s, j, *options_.eos_ids, vocab_, tokens);
      params[i].stream = LONGBOW_PHILOX_STREAM_DRAFT;
      params[i].num_top_logprobs = 0;
      if (s.draft_probs_row >= 0) params[i].probs_row = s.draft_probs_row + j;
    }
    if (tokens.size() > penalty_capacity_) {
      penalty_capacity_ = std::max(tokens.size(), 2 * penalty_capacity_);
      penalty_tokens_ = backend_.alloc(penalty_capacity_ * sizeof(int32_t));
    }
    backend_.upload({params_.get(), 0}, params.data(), rows * sizeof(SampleRowParams));
    if (!tokens.empty())
      backend_.upload({penalty_tokens_.get(), 0}, tokens.data(), tokens.size() * sizeof(int32_t));
    backend_.sample({.out_ids = {ids_.get(), 0},
                     .out_logprobs = {logprobs_.get(), 0},
                     .out_top_ids = {top_ids_.get(), 0},
                     .out_top_logprobs = {top_logprobs_.get(), 0},
                     .logits = model_->logits(),
                     .params = {params_.get(), 0},
                     .penalty_tokens = {penalty_tokens_.get(), 0},
                     .probs = {probs_.get(), 0},
                     .num_rows = rows,
                     .vocab_size = vocab_,
                     .max_top = 0,
                     .num_probs_rows = probs_rows_});
    std::vector<int32_t> ids(rows);
    backend_.download(ids.data(), {ids_.get(), 0}, rows * sizeof(int32_t));
    for (int i = 0; i < rows; ++i) owners[i]->draft_tokens.push_back(ids[i]);
  }

  Backend& backend_;
  DraftModelOptions options_;
  std::unique_ptr<models::Model> model_;
  std::unique_ptr<KvCache> kv_;
  int max_tokens_ = 0, vocab_ = 0;
  std::unique_ptr<Buffer> ids_, logprobs_, top_ids_, top_logprobs_, params_, penalty_tokens_;
  size_t penalty_capacity_ = 0;
  std::unique_ptr<Buffer> probs_;  // (probs_rows_, vocab) f32: distributions of sampled drafts
  int probs_rows_ = 0;
};

}  // namespace

std::unique_ptr<Proposer> make_draft_model_proposer(std::shared_ptr<const ModelFile> draft,
                                                    const ModelConfig& target, Backend& backend,
                                                    const DraftModelOptions& options) {
  if (!draft) throw std::invalid_argument("[speculative] no draft model");
  return std::make_unique<DraftModelProposer>(std::move(draft), target, backend, options);
}

}  // namespace longbow::engine
