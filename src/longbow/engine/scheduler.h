// Iteration-level scheduler (continuous batching): FCFS waiting queue, running list, a token
// budget per step with chunked prefill, preemption by recompute when KV blocks run out.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <string>
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
  int num_new_tokens = 0;    // tokens [num_computed, num_computed + num_new_tokens) run this step
  bool needs_logits = false;  // the step reaches the sequence's last token: sample the next one
};

struct SchedulerOutput {
  std::vector<ScheduledSeq> scheduled;
  int num_batched_tokens = 0;
  int num_preempted = 0;
  bool empty() const { return scheduled.empty(); }
};

class Scheduler {
 public:
  Scheduler(const SchedulerConfig& config, BlockManager& blocks);

  // Takes ownership; throws std::invalid_argument for a duplicate id or a request that can
  // never fit (prompt longer than max_model_len or than the whole KV pool).
  void add(std::unique_ptr<Sequence> seq);
  // Picks this step's work: running sequences first (decode tokens, then unfinished prefill
  // chunks), then waiting ones, within the token budget; preempts the newest running sequence
  // when blocks run out.
  SchedulerOutput schedule();
  // Marks a sequence finished and frees its blocks at once.
  void finish(Sequence* seq, FinishReason reason);
  // Finishes a request wherever it is; false if unknown or already finished.
  bool abort(const std::string& request_id);
  // Removes finished sequences from the table (after their outputs were reported).
  void reap_finished();

  bool has_unfinished() const { return !running_.empty() || !waiting_.empty(); }
  int num_running() const { return static_cast<int>(running_.size()); }
  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  uint64_t num_preemptions() const { return num_preemptions_; }
  const SchedulerConfig& config() const { return config_; }
  const std::vector<Sequence*>& running() const { return running_; }
  Sequence* find(const std::string& request_id) const;

 private:
  void preempt(Sequence* victim);

  SchedulerConfig config_;
  BlockManager& blocks_;
  std::map<std::string, std::unique_ptr<Sequence>> table_;
  std::deque<Sequence*> waiting_;
  std::vector<Sequence*> running_;  // oldest first
  uint64_t next_arrival_ = 0;
  uint64_t num_preemptions_ = 0;
};

}  // namespace longbow::engine
