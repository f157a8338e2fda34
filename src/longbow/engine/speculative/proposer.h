// Speculative decoding proposers: each fills a sequence's draft_tokens with tokens that the target
// model then verifies in one forward. Verification (engine.cpp) keeps drafts while the target's
// row for that position outputs them: a one-hot draft is compared with the target's own sample, a
// sampled draft is rejection-sampled against the distribution it came from. Either way the output
// is distributed exactly as without speculation; a proposer decides only how many tokens a step
// yields.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "longbow/backend/backend.h"
#include "longbow/core/model_file.h"
#include "longbow/engine/sequence.h"
#include "longbow/models/kv_cache.h"

namespace longbow::engine {

// A sequence that speculates this step and the most draft tokens it may get.
struct ProposalRequest {
  Sequence* seq = nullptr;
  int max_draft = 0;
};

class Proposer {
 public:
  virtual ~Proposer() = default;
  // Sets each request's seq->draft_tokens (0..max_draft tokens).
  virtual void propose(const std::vector<ProposalRequest>& requests) = 0;
  // The proposer's own paged KV cache (indexed by the target's block tables), or nullptr.
  virtual KvCache* kv_cache() { return nullptr; }
  // Rows (vocab_size f32 each) holding the distributions of sampled drafts: draft token j of a
  // sequence with draft_probs_row >= 0 was drawn from row draft_probs_row + j. Empty when the
  // proposer never samples.
  virtual BufView draft_probs() const { return {}; }
  virtual int num_draft_probs_rows() const { return 0; }
};

// Prompt lookup: finds the latest earlier occurrence of the sequence's last n tokens (n from
// max_n down to min_n) in its prompt and output, and proposes the tokens that followed it.
std::unique_ptr<Proposer> make_ngram_proposer(int min_n, int max_n);

// Drafts from a second model (same vocabulary) on the target's backend, batched over the
// speculating sequences: one forward catches its KV up with the sequence, then one forward per
// further draft token. Each draft row samples under the request's own parameters (sample_rows.h):
// greedy at temperature 0, else drawn on the DRAFT Philox stream with its distribution kept in a
// probs row. Its KV cache has the target's blocks (same ids, block size and count).
struct DraftModelOptions {
  int num_blocks = 0, block_size = 0;
  DType k_dtype = DType::F16, v_dtype = DType::F16;
  int max_num_seqs = 0, max_num_batched_tokens = 0, max_blocks_per_seq = 0;
  AttentionVariant attention = AttentionVariant::Auto;
  const std::vector<int>* eos_ids = nullptr;  // the engine's end-of-sequence ids (banned rows)
  std::optional<DType> quantize;  // the draft's float weights quantized at load (self-draft)
  bool kv_rotation = false;       // the target's (its KV cache has the target's type)
};
std::unique_ptr<Proposer> make_draft_model_proposer(std::shared_ptr<const ModelFile> draft,
                                                    const ModelConfig& target, Backend& backend,
                                                    const DraftModelOptions& options);

}  // namespace longbow::engine
