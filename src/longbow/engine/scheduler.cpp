#include "longbow/engine/scheduler.h"

#include <algorithm>
#include <cmath>
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

Scheduler::Scheduler(const SchedulerConfig& config, BlockManager& blocks)
    : config_(config), blocks_(blocks) {
  if (config.max_num_seqs <= 0 || config.max_num_batched_tokens <= 0 || config.max_model_len <= 0) {
    throw std::invalid_argument(
        "[scheduler] max_num_seqs, max_num_batched_tokens and max_model_len must be > 0");
  }
}

void Scheduler::add(std::unique_ptr<Sequence> seq) {
  const std::string& id = seq->request_id;
  if (table_.count(id))
    throw std::invalid_argument("[scheduler] duplicate request id '" + id + "'");
  if (seq->num_tokens() == 0)
    throw std::invalid_argument("[scheduler] request '" + id + "' has an empty prompt");
  if (seq->num_tokens() >= config_.max_model_len) {
    throw std::invalid_argument(
        "[scheduler] request '" + id + "': prompt of " + std::to_string(seq->num_tokens()) +
        " tokens leaves no room within max_model_len=" + std::to_string(config_.max_model_len));
  }
  if (seq->params.n < 1 || seq->params.n > config_.max_num_seqs) {
    throw std::invalid_argument(
        "[scheduler] request '" + id + "': expected n in [1, max_num_seqs=" +
        std::to_string(config_.max_num_seqs) + "], found " + std::to_string(seq->params.n));
  }
  // In 64 bits: max_tokens may be INT_MAX ("until the context is full").
  const int longest = static_cast<int>(std::min<int64_t>(
      config_.max_model_len, static_cast<int64_t>(seq->num_tokens()) + seq->params.max_tokens));
  if (blocks_.blocks_for(longest) > blocks_.num_blocks() - 1) {
    throw std::invalid_argument("[scheduler] request '" + id + "' needs up to " +
                                std::to_string(longest) +
                                " tokens of KV cache but the pool holds only " +
                                std::to_string((blocks_.num_blocks() - 1) * blocks_.block_size()));
  }
  seq->status = SeqStatus::Waiting;
  seq->sample_idx = 0;
  seq->num_pending_forks = seq->params.n - 1;
  seq->spec_k = seq->params.speculative ? config_.num_speculative_tokens : 0;
  seq->arrival = next_arrival_++;
  waiting_.push_back(seq.get());
  table_[id].push_back(std::move(seq));
}

void Scheduler::preempt(Sequence* victim) {
  blocks_.release(victim->block_table);
  victim->block_table.clear();
  victim->block_hashes.clear();
  victim->num_computed = 0;
  victim->draft_computed = 0;
  victim->clear_draft();
  victim->status = SeqStatus::Waiting;
  ++victim->num_preemptions;
  ++num_preemptions_;
  running_.erase(std::find(running_.begin(), running_.end(), victim));
  waiting_.push_front(victim);  // recomputed first when blocks return
}

int Scheduler::num_reserved_seqs() const {
  int n = static_cast<int>(running_.size());
  for (const Sequence* s : running_) n += s->num_pending_forks;
  return n;
}

// Admits the front waiting sequence: takes its cached prefix blocks, then blocks for its first
// chunk. False (nothing changed) when the pool cannot hold the chunk.
bool Scheduler::admit(Sequence* seq, int budget, SchedulerOutput& out) {
  const int bs = blocks_.block_size();
  // Never hit the whole sequence: its last token must run to produce logits.
  const int max_hit = seq->num_tokens() - 1;
  const std::vector<int> hits = blocks_.match_prefix(seq->tokens, max_hit);
  const int cached = static_cast<int>(hits.size()) * bs;
  const int n = prefill_chunk(*seq, cached, budget);
  const int need = blocks_.blocks_for(cached + n) - static_cast<int>(hits.size());
  int free_hits = 0;
  for (int b : hits) free_hits += blocks_.ref_count(b) == 0;
  if (blocks_.num_free() - free_hits < need) return false;

  PrefixHit hit = blocks_.acquire_prefix(seq->tokens, max_hit);
  seq->block_table = std::move(hit.blocks);
  seq->block_hashes = std::move(hit.hashes);
  seq->num_computed = cached;
  if (!blocks_.ensure_capacity(seq->block_table, cached + n)) {
    throw std::logic_error("[scheduler] admit: block count check and allocation disagree");
  }
  if (blocks_.prefix_caching()) {
    num_prefix_queries_ += static_cast<uint64_t>(seq->num_tokens());
    num_prefix_hits_ += static_cast<uint64_t>(cached);
  }
  seq->status = SeqStatus::Running;
  running_.push_back(seq);
  out.scheduled.push_back({seq, n, seq->num_computed + n == seq->num_tokens()});
  return true;
}

double attention_context_per_token(const ModelConfig& c) {
  const double q = static_cast<double>(c.num_heads) * c.head_dim;
  const double kv = static_cast<double>(c.num_kv_heads) * c.head_dim;
  const double weights =
      static_cast<double>(c.hidden_size) * (2.0 * q + 2.0 * kv) +      // q, k, v, o
      3.0 * static_cast<double>(c.hidden_size) * c.intermediate_size;  // gate, up, down
  return q > 0 ? 2.0 * weights / (4.0 * q) : 0.0;
}

// The prompt tokens [start, start + n) run this step: n is the most that fit `budget` units
// (config_.context_per_token), at least 1 when budget > 0 so every prompt progresses; a decoding
// sequence (one token left) always costs 1.
int Scheduler::prefill_chunk(const Sequence& seq, int start, int budget) const {
  const int left = seq.num_tokens() - start;
  const int n = std::min(left, budget);
  const double k = config_.context_per_token;
  if (n <= 1 || k <= 0.0) return n;
  // chunk_cost(start, m) <= budget: from the positive root of m + (m start + m (m-1) / 2) / k,
  // then the exact check (rounding).
  const double b = 1.0 + (start - 0.5) / k, a = 0.5 / k;
  int fit = static_cast<int>((-b + std::sqrt(b * b + 4.0 * a * budget)) / (2.0 * a));
  fit = std::clamp(fit, 1, n);
  while (fit > 1 && chunk_cost(start, fit) > budget) --fit;
  while (fit < n && chunk_cost(start, fit + 1) <= budget) ++fit;
  return fit;
}

// Budget units of tokens [start, start + n) of one sequence: n, plus their attention over the
// context in token equivalents (rounded up); a decode token costs 1.
int Scheduler::chunk_cost(int start, int n) const {
  const double k = config_.context_per_token;
  if (n <= 1 || k <= 0.0) return n;
  const double extra = (n * static_cast<double>(start) + n * (n - 1.0) / 2.0) / k;
  return n + static_cast<int>(std::ceil(extra - 1e-9));
}

SchedulerOutput Scheduler::schedule() {
  SchedulerOutput out;
  int budget = config_.max_num_batched_tokens;  // units (chunk_cost)
  int num_tokens = 0;

  for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
    Sequence* seq = running_[i];
    const int n = prefill_chunk(*seq, seq->num_computed, budget);
    if (n <= 0) continue;
    int spec = num_spec_slots(*seq, budget - n);
    bool self_preempted = false;
    const size_t num_copies = out.copies.size();
    while (!blocks_.prepare_write(seq->block_table, seq->num_computed, seq->num_computed + n + spec,
                                  out.copies)) {
      if (spec > 0) {  // drop the draft slots before preempting anyone
        spec = 0;
        continue;
      }
      Sequence* victim = running_.back();
      preempt(victim);
      ++out.num_preempted;
      if (victim == seq) {
        self_preempted = true;
        break;
      }
    }
    if (self_preempted) break;
    num_cow_copies_ += out.copies.size() - num_copies;
    out.scheduled.push_back({seq, n, seq->num_computed + n == seq->num_tokens(), spec});
    budget -= chunk_cost(seq->num_computed, n) + spec;
    num_tokens += n + spec;
  }

  // Admit waiting requests only when nothing was preempted (so preempted work goes first).
  while (out.num_preempted == 0 && budget > 0 && !waiting_.empty()) {
    Sequence* seq = waiting_.front();
    if (num_reserved_seqs() + 1 + seq->num_pending_forks > config_.max_num_seqs) break;
    if (!admit(seq, budget, out)) break;
    waiting_.pop_front();
    const int n = out.scheduled.back().num_new_tokens;
    budget -= chunk_cost(seq->num_computed, n);
    num_tokens += n;
  }
  out.num_batched_tokens = num_tokens;
  return out;
}

// Draft-token slots for a decoding sequence this step: its adaptive k, within the budget left,
// the context (every draft could be accepted plus one sampled token) and max_tokens; none in a
// batch larger than speculative_max_batch, and none for a sequence whose next token is masked.
int Scheduler::num_spec_slots(const Sequence& seq, int budget) const {
  if (seq.spec_k <= 0 || seq.num_tokens() - seq.num_computed != 1) return 0;
  // A masked next token (structured output) is sampled alone: drafts could not follow the mask.
  if (!seq.allowed_tokens.empty()) return 0;
  if (static_cast<int>(running_.size()) > config_.speculative_max_batch) return 0;
  const int64_t room_len = static_cast<int64_t>(config_.max_model_len) - seq.num_tokens() - 1;
  const int64_t room_out = static_cast<int64_t>(seq.params.max_tokens) - seq.num_generated() - 1;
  return static_cast<int>(
      std::max<int64_t>(0, std::min<int64_t>({seq.spec_k, budget, room_len, room_out})));
}

std::vector<Sequence*> Scheduler::on_forward_done(const SchedulerOutput& plan) {
  std::vector<Sequence*> sampling;
  for (const ScheduledSeq& s : plan.scheduled) {
    Sequence* seq = s.seq;
    seq->num_computed += s.num_new_tokens;
    blocks_.cache_full_blocks(seq->block_table, seq->tokens, seq->num_computed, seq->block_hashes);
    if (!s.needs_logits) continue;
    if (seq->num_pending_forks > 0) {
      for (Sequence* sample : fork(seq)) sampling.push_back(sample);
    } else {
      sampling.push_back(seq);
    }
  }
  return sampling;
}

void Scheduler::update_from_output(const std::vector<SeqUpdate>& updates) {
  for (const SeqUpdate& u : updates) {
    Sequence* seq = u.seq;
    const int drafted = static_cast<int>(seq->draft_tokens.size());
    if (u.num_accepted < 0 || u.num_accepted > drafted) {
      throw std::logic_error("[scheduler] update_from_output: accepted " +
                             std::to_string(u.num_accepted) + " of " + std::to_string(drafted) +
                             " draft tokens");
    }
    seq->tokens.insert(seq->tokens.end(), u.new_tokens.begin(), u.new_tokens.end());
    seq->num_computed += u.num_accepted;
    if (drafted > 0) {
      ++seq->num_verify_steps;
      seq->num_draft_tokens += drafted;
      seq->num_accepted_tokens += u.num_accepted;
      // Adaptive k: grow after a fully accepted proposal, shrink to what was accepted (plus
      // one) otherwise; a sequence whose proposals keep failing stops speculating.
      seq->spec_misses = u.num_accepted == 0 ? seq->spec_misses + 1 : 0;
      if (u.num_accepted == drafted) {
        seq->spec_k = std::min(seq->spec_k + 1, config_.num_speculative_tokens);
      } else {
        seq->spec_k = std::max(1, u.num_accepted + 1);
      }
      if (seq->spec_misses >= MAX_SPEC_MISSES) seq->spec_k = 0;
    }
    seq->clear_draft();
    seq->draft_computed = std::min(seq->draft_computed, seq->num_computed);
    if (u.finish != FinishReason::None) {
      finish(seq, u.finish);
      continue;
    }
    blocks_.cache_full_blocks(seq->block_table, seq->tokens, seq->num_computed, seq->block_hashes);
    blocks_.truncate(seq->block_table, seq->num_tokens());
  }
}

// Forks the pending samples of `parent` (its prompt is computed): each shares the parent's
// blocks and runs from now on. Returns all samples of the request, parent first.
std::vector<Sequence*> Scheduler::fork(Sequence* parent) {
  auto& samples = table_.at(parent->request_id);
  std::vector<Sequence*> all{parent};
  const int n = parent->num_pending_forks;
  parent->num_pending_forks = 0;
  int next_idx = static_cast<int>(samples.size());
  auto skipped = [&](int idx) {
    return std::find(parent->skipped_forks.begin(), parent->skipped_forks.end(), idx) !=
           parent->skipped_forks.end();
  };
  for (int i = 1; i <= n; ++i) {
    while (skipped(next_idx)) ++next_idx;  // aborted before the fork: its index stays unused
    auto child = std::make_unique<Sequence>(*parent);
    child->skipped_forks.clear();
    child->sample_idx = next_idx++;
    child->seed = parent->seed + static_cast<uint64_t>(child->sample_idx);
    child->num_preemptions = 0;
    child->num_draft_tokens = child->num_accepted_tokens = child->num_verify_steps = 0;
    child->allowed_tokens.clear();  // its own mask, if one was set for it before the fork
    child->fork_allowed_tokens.clear();
    for (auto& [idx, mask] : parent->fork_allowed_tokens) {
      if (idx == child->sample_idx) child->allowed_tokens = std::move(mask);
    }
    blocks_.share(child->block_table);
    running_.push_back(child.get());
    all.push_back(child.get());
    samples.push_back(std::move(child));
  }
  parent->fork_allowed_tokens.clear();
  return all;
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

std::vector<int> Scheduler::abort(const std::string& request_id, int sample_idx) {
  std::vector<int> done;
  auto it = table_.find(request_id);
  if (it == table_.end()) return done;
  auto& samples = it->second;
  // Samples not forked yet are aborted with their parent (sample 0), or one by one (skipped at the
  // fork).
  const int n_total = samples.front()->params.n;
  const bool parent_pending = samples.front()->num_pending_forks > 0;
  Sequence* parent = samples.front().get();
  auto is_skipped = [&](int idx) {
    return std::find(parent->skipped_forks.begin(), parent->skipped_forks.end(), idx) !=
           parent->skipped_forks.end();
  };
  if (parent_pending && sample_idx > 0 && sample_idx < n_total && !is_skipped(sample_idx)) {
    // One sample that has not been forked yet: it will simply never be created.
    parent->skipped_forks.push_back(sample_idx);
    parent->num_pending_forks -= 1;
    done.push_back(sample_idx);
    return done;
  }
  for (auto& s : samples) {
    if (sample_idx >= 0 && s->sample_idx != sample_idx) continue;
    if (s->status == SeqStatus::Finished) continue;
    finish(s.get(), FinishReason::Abort);
    done.push_back(s->sample_idx);
  }
  if (parent_pending && parent->status == SeqStatus::Finished) {
    for (int i = 1; i < n_total; ++i) {
      if (!is_skipped(i)) done.push_back(i);  // the samples it would have forked
    }
    parent->num_pending_forks = 0;
  }
  return done;
}

void Scheduler::reap_finished() {
  for (auto it = table_.begin(); it != table_.end();) {
    bool all_done = true;
    for (const auto& s : it->second) all_done = all_done && s->status == SeqStatus::Finished;
    it = all_done ? table_.erase(it) : std::next(it);
  }
}

const std::vector<std::unique_ptr<Sequence>>* Scheduler::find(const std::string& request_id) const {
  auto it = table_.find(request_id);
  return it == table_.end() ? nullptr : &it->second;
}

}  // namespace longbow::engine
