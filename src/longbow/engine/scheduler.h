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

#include "longbow/engine/block_manager.h"
#include "longbow/engine/sequence.h"

namespace longbow::engine {

struct SchedulerConfig {
  int max_num_seqs = 64;
  int max_num_batched_tokens = 512;
  int max_model_len = 2048;
};

struct ScheduledSeq {
  Sequence* seq = nullptr;
  int num_new_tokens = 0;     // tokens [num_computed, num_computed + num_new_tokens) run this step
  bool needs_logits = false;  // the step reaches the sequence's last token: sample the next one
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
  Scheduler(const SchedulerConfig& config, BlockManager& blocks);

  // Takes ownership of a request's first sample (its other params.n - 1 samples are forked
  // from it when its prompt is computed); throws std::invalid_argument for a duplicate id or a
  // request that can never fit (prompt longer than max_model_len or than the whole KV pool).
  void add(std::unique_ptr<Sequence> seq);
  // Picks this step's work: running sequences first (decode tokens, then unfinished prefill
  // chunks), then waiting ones, within the token budget; preempts the newest running sequence
  // when blocks run out.
  SchedulerOutput schedule();
  // Forks the pending samples of `parent` (its prompt is computed): each shares the parent's
  // blocks and runs from now on. Returns all samples of the request, parent first.
  std::vector<Sequence*> fork(Sequence* parent);
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
  void preempt(Sequence* victim);
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
