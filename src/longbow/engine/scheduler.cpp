#include "longbow/engine/scheduler.h"

#include <algorithm>
#include <stdexcept>

namespace longbow::engine {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Abort: return "abort";
    default: return "";
  }
}

Scheduler::Scheduler(const SchedulerConfig& config, BlockManager& blocks) : config_(config), blocks_(blocks) {
  if (config.max_num_seqs <= 0 || config.max_num_batched_tokens <= 0 || config.max_model_len <= 0) {
    throw std::invalid_argument("[scheduler] max_num_seqs, max_num_batched_tokens and max_model_len must be > 0");
  }
}

void Scheduler::add(std::unique_ptr<Sequence> seq) {
  const std::string& id = seq->request_id;
  if (table_.count(id)) throw std::invalid_argument("[scheduler] duplicate request id '" + id + "'");
  if (seq->num_tokens() == 0) throw std::invalid_argument("[scheduler] request '" + id + "' has an empty prompt");
  if (seq->num_tokens() >= config_.max_model_len) {
    throw std::invalid_argument("[scheduler] request '" + id + "': prompt of " + std::to_string(seq->num_tokens()) +
                                " tokens leaves no room within max_model_len=" + std::to_string(config_.max_model_len));
  }
  const int longest = std::min(config_.max_model_len, seq->num_tokens() + seq->params.max_tokens);
  if (blocks_.blocks_for(longest) > blocks_.num_blocks() - 1) {
    throw std::invalid_argument("[scheduler] request '" + id + "' needs up to " + std::to_string(longest) +
                                " tokens of KV cache but the pool holds only " +
                                std::to_string((blocks_.num_blocks() - 1) * blocks_.block_size()));
  }
  seq->status = SeqStatus::Waiting;
  seq->arrival = next_arrival_++;
  waiting_.push_back(seq.get());
  table_[id] = std::move(seq);
}

void Scheduler::preempt(Sequence* victim) {
  blocks_.release(victim->block_table);
  victim->block_table.clear();
  victim->num_computed = 0;
  victim->status = SeqStatus::Waiting;
  ++victim->num_preemptions;
  ++num_preemptions_;
  running_.erase(std::find(running_.begin(), running_.end(), victim));
  waiting_.push_front(victim);  // recomputed first when blocks return
}

SchedulerOutput Scheduler::schedule() {
  SchedulerOutput out;
  int budget = config_.max_num_batched_tokens;

  for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
    Sequence* seq = running_[i];
    const int n = std::min(seq->num_tokens() - seq->num_computed, budget);
    if (n <= 0) continue;
    bool self_preempted = false;
    while (!blocks_.ensure_capacity(seq->block_table, seq->num_computed + n)) {
      Sequence* victim = running_.back();
      preempt(victim);
      ++out.num_preempted;
      if (victim == seq) {
        self_preempted = true;
        break;
      }
    }
    if (self_preempted) break;
    out.scheduled.push_back({seq, n, seq->num_computed + n == seq->num_tokens()});
    budget -= n;
  }

  // Admit waiting requests only when nothing was preempted (so preempted work goes first).
  while (out.num_preempted == 0 && budget > 0 && !waiting_.empty() &&
         static_cast<int>(running_.size()) < config_.max_num_seqs) {
    Sequence* seq = waiting_.front();
    const int n = std::min(seq->num_tokens() - seq->num_computed, budget);
    if (!blocks_.ensure_capacity(seq->block_table, seq->num_computed + n)) break;
    waiting_.pop_front();
    seq->status = SeqStatus::Running;
    running_.push_back(seq);
    out.scheduled.push_back({seq, n, seq->num_computed + n == seq->num_tokens()});
    budget -= n;
  }
  out.num_batched_tokens = config_.max_num_batched_tokens - budget;
  return out;
}

void Scheduler::finish(Sequence* seq, FinishReason reason) {
  if (seq->status == SeqStatus::Finished) return;
  blocks_.release(seq->block_table);
  seq->block_table.clear();
  if (seq->status == SeqStatus::Running) {
    running_.erase(std::find(running_.begin(), running_.end(), seq));
  } else {
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), seq));
  }
  seq->status = SeqStatus::Finished;
  seq->finish_reason = reason;
}

bool Scheduler::abort(const std::string& request_id) {
  Sequence* seq = find(request_id);
  if (!seq || seq->status == SeqStatus::Finished) return false;
  finish(seq, FinishReason::Abort);
  return true;
}

void Scheduler::reap_finished() {
  for (auto it = table_.begin(); it != table_.end();) {
    it = it->second->status == SeqStatus::Finished ? table_.erase(it) : std::next(it);
  }
}

Sequence* Scheduler::find(const std::string& request_id) const {
  auto it = table_.find(request_id);
  return it == table_.end() ? nullptr : it->second.get();
}

}  // namespace longbow::engine
