// Iteration-level scheduler (continuous batching): FCFS waiting queue, running list, a token
// budget per step with chunked prefill, preemption by recompute when KV blocks run out, prefix
// cache hits at admission, and copy-on-write for the n samples of one prompt.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "longbow/core/model_config.h"
#include "longbow/engine/block_manager.h"
#include "longbow/engine/sequence.h"

namespace longbow::engine {

struct SchedulerConfig {
  int max_num_seqs = 64;
  int max_num_batched_tokens = 512;
  int max_model_len = 2048;
  // Speculative decoding: draft tokens a sequence may ask for per step (0 = off), and the batch
  // size above which no sequence speculates (verify costs more than it saves in large batches).
  int num_speculative_tokens = 0;
  int speculative_max_batch = 0;
  // Prefill chunks are sized by work, not only by tokens, so a long prompt cannot stretch a step
  // (and every running stream's token gap) with attention over its long context: a prompt token
  // at position p costs 1 + p / context_per_token budget units, where context_per_token is how
  // many context positions of attention cost as much as one token through the weights
  // (attention_context_per_token). 0 = plain token count.
  double context_per_token = 0.0;
};

// Context positions whose attention costs as many FLOPs as one token's matmuls: per layer, a
// token does 2 FLOPs per weight (q, k, v, o, gate, up, down) and 4 * num_heads * head_dim FLOPs
// per context position (q.k and p.v). About 3000 for SmolLM2-135M.
double attention_context_per_token(const ModelConfig& config);

struct ScheduledSeq {
  Sequence* seq = nullptr;
  int num_new_tokens = 0;     // tokens [num_computed, num_computed + num_new_tokens) run this step
  bool needs_logits = false;  // the step reaches the sequence's last token: sample the next one
  int num_spec = 0;  // draft-token slots reserved after the last token (speculative decoding)
};

// What one step did to a sequence that sampled: the tokens it gained (verified draft tokens, then
// the sampled one) and how it ended.
struct SeqUpdate {
  Sequence* seq = nullptr;
  std::vector<int> new_tokens;
  int num_accepted = 0;  // of seq->draft_tokens (their K/V are computed now)
  FinishReason finish = FinishReason::None;
};

struct SchedulerOutput {
  std::vector<ScheduledSeq> scheduled;
  int num_batched_tokens = 0;
  int num_preempted = 0;
  // Blocks the device must copy (src, dst) before the forward: copy-on-write of shared blocks.
  std::vector<std::pair<int, int>> copies;
  bool empty() const { return scheduled.empty(); }
};

class Scheduler {
 public:
  // Verify steps in a row that accept no draft token before a sequence stops speculating.
  static constexpr int MAX_SPEC_MISSES = 8;

  Scheduler(const SchedulerConfig& config, BlockManager& blocks);

  // Takes ownership of a request's first sample (its other params.n - 1 samples are forked
  // from it when its prompt is computed); throws std::invalid_argument for a duplicate id or a
  // request that can never fit (prompt longer than max_model_len or than the whole KV pool).
  void add(std::unique_ptr<Sequence> seq);
  // Picks this step's work: running sequences first (decode tokens, then unfinished prefill
  // chunks), then waiting ones, within the token budget; preempts the newest running sequence
  // when blocks run out.
  SchedulerOutput schedule();
  // After the forward of `plan`: advances each scheduled sequence's computed tokens, registers
  // its full blocks in the prefix cache, and forks the samples of prompts completed now. Returns
  // the sequences that sample this step, in the plan's order (a forked prompt: all its samples).
  std::vector<Sequence*> on_forward_done(const SchedulerOutput& plan);
  // After sampling: appends each sequence's new tokens, accounts its accepted draft tokens
  // (computed K/V; only verified tokens enter the prefix cache), frees the blocks of rejected
  // draft slots, adapts its number of draft tokens, and finishes it when `finish` says so.
  void update_from_output(const std::vector<SeqUpdate>& updates);
  // Marks a sequence finished and frees its blocks at once.
  void finish(Sequence* seq, FinishReason reason);
  // Finishes a request (every sample, or only sample_idx >= 0) wherever it is; returns the
  // sample indices it finished (empty if unknown or already finished).
  std::vector<int> abort(const std::string& request_id, int sample_idx = -1);
  // Removes finished sequences from the table (after their outputs were reported).
  void reap_finished();

  bool has_unfinished() const { return !running_.empty() || !waiting_.empty(); }
  int num_running() const { return static_cast<int>(running_.size()); }
  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  uint64_t num_preemptions() const { return num_preemptions_; }
  // Prefix cache counters, in tokens: looked up at admission, and found cached.
  uint64_t num_prefix_queries() const { return num_prefix_queries_; }
  uint64_t num_prefix_hits() const { return num_prefix_hits_; }
  uint64_t num_cow_copies() const { return num_cow_copies_; }
  const SchedulerConfig& config() const { return config_; }
  const std::vector<Sequence*>& running() const { return running_; }
  // The samples of a request (forked so far), or nullptr if unknown.
  const std::vector<std::unique_ptr<Sequence>>* find(const std::string& request_id) const;

 private:
  std::vector<Sequence*> fork(Sequence* parent);
  void preempt(Sequence* victim);
  int num_spec_slots(const Sequence& seq, int budget) const;
  // Tokens of seq's prompt to run this step from position `start`, within `budget` units.
  int prefill_chunk(const Sequence& seq, int start, int budget) const;
  int chunk_cost(int start, int n) const;
  bool admit(Sequence* seq, int budget, SchedulerOutput& out);
  int num_reserved_seqs() const;  // running sequences plus the forks they will add

  SchedulerConfig config_;
  BlockManager& blocks_;
  std::map<std::string, std::vector<std::unique_ptr<Sequence>>> table_;  // request -> samples
  std::deque<Sequence*> waiting_;
  std::vector<Sequence*> running_;  // oldest first
  uint64_t next_arrival_ = 0;
  uint64_t num_preemptions_ = 0;
  uint64_t num_prefix_queries_ = 0, num_prefix_hits_ = 0, num_cow_copies_ = 0;
};

}  // namespace longbow::engine
