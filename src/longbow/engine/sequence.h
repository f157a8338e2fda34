// A request as the scheduler sees it: its tokens, KV blocks and progress.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "longbow/sampling_params.h"

namespace longbow::engine {

enum class SeqStatus { Waiting, Running, Finished };
enum class FinishReason { None, Stop, Length, Abort };

const char* finish_reason_name(FinishReason r);

struct Sequence {
  std::string request_id;          // the request (shared by its n samples)
  int sample_idx = 0;              // which of the request's n samples this is
  int num_pending_forks = 0;       // samples still to fork from this one when its prompt is done
  std::vector<int> skipped_forks;  // sample indices aborted before their fork (never created)
  std::vector<int> tokens;         // prompt followed by generated tokens
  int num_prompt_tokens = 0;
  int num_computed = 0;  // tokens whose K/V are in the cache
  std::vector<int> block_table;
  std::vector<uint64_t> block_hashes;  // chained hashes of the full blocks registered so far
  SamplingParams params;
  uint64_t seed = 0;
  SeqStatus status = SeqStatus::Waiting;
  FinishReason finish_reason = FinishReason::None;
  int num_preemptions = 0;
  uint64_t arrival = 0;  // arrival order (FCFS)

  // Speculative decoding (engine/speculative/): the scheduler reserves num_spec slots after the
  // last token, the proposer fills draft_tokens (at most that many), the target verifies them.
  std::vector<int> draft_tokens;  // this step's proposal
  // First of the proposer's probs rows holding the distributions draft_tokens were drawn from
  // (Proposer::draft_probs); -1: the drafts are one-hot (greedy or n-gram).
  int draft_probs_row = -1;
  int spec_k = 0;          // draft tokens to ask for next step (adaptive); 0 = none
  int spec_misses = 0;     // consecutive verify steps that accepted no draft token
  int draft_computed = 0;  // tokens whose K/V are in the draft model's cache
  int64_t num_draft_tokens = 0, num_accepted_tokens = 0, num_verify_steps = 0;

  // Structured output (Engine::set_allowed_tokens): the tokens allowed for the next token this
  // sequence samples, (ceil(vocab_size / 32),) words, bit t % 32 of word t / 32 = token t; empty =
  // every token. Kept through prefill and preemption, cleared when that token is sampled. A
  // sequence with a mask gets no draft slots (Scheduler::num_spec_slots).
  std::vector<uint32_t> allowed_tokens;
  // Masks set for samples of this request not forked yet (sample_idx, mask): the parent holds them
  // until the fork hands each to its sample.
  std::vector<std::pair<int, std::vector<uint32_t>>> fork_allowed_tokens;

  int num_tokens() const { return static_cast<int>(tokens.size()); }
  int num_generated() const { return num_tokens() - num_prompt_tokens; }
  void clear_draft() {
    draft_tokens.clear();
    draft_probs_row = -1;
  }
};

}  // namespace longbow::engine
