// The engine step loop: scheduler → one batched forward → sampling on the device → token ids.
#pragma once

#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "longbow/backend/backend.h"
#include "longbow/core/model_file.h"
#include "longbow/engine/block_manager.h"
#include "longbow/engine/scheduler.h"
#include "longbow/engine/speculative/proposer.h"
#include "longbow/engine_defaults.h"
#include "longbow/models/kv_cache.h"
#include "longbow/models/model.h"
#include "longbow/sampling_params.h"

namespace longbow::engine {

struct EngineConfig {
  std::string backend = defaults::BACKEND;
  int num_threads = 0;                               // CPU backend threads; 0 = number of cores
  DType k_dtype = DType::F16, v_dtype = DType::F16;  // KV cache types, chosen independently
  // Rotate q and k per head by a Hadamard matrix before the cache (models::LoadOptions): for a
  // quantized K cache.
  bool kv_rotation = defaults::KV_ROTATION;
  int block_size = 0;  // KV block size in tokens; 0: the backend's preferred_block_size()
  int num_blocks = 0;  // 0: derived from kv_cache_bytes
  size_t kv_cache_bytes = defaults::KV_CACHE_BYTES;  // used when num_blocks == 0
  int max_num_seqs = defaults::MAX_NUM_SEQS;
  int max_num_batched_tokens = defaults::MAX_NUM_BATCHED_TOKENS;
  int max_model_len = 0;  // 0: the model's context length
  AttentionVariant attention = AttentionVariant::Auto;
  bool enable_prefix_caching = true;  // reuse cached full blocks of earlier prompts
  // "" (weights as stored) or q8_0 / q4_0 / q4_1: float matmul weights quantized at load.
  std::string quantize;
  // Speculative decoding: "" (off), "ngram" (prompt lookup), "draft" (draft_model) or "self" (the
  // model's float weights quantized to draft_quantize at load draft for it).
  std::string speculative;
  std::string draft_model;  // path of the draft model (GGUF file or HF folder)
  std::string draft_quantize = defaults::DRAFT_QUANTIZE;  // q8_0, q4_0 or q4_1
  int num_speculative_tokens = defaults::NUM_SPECULATIVE_TOKENS;
  int ngram_min = defaults::NGRAM_MIN, ngram_max = defaults::NGRAM_MAX;
  int speculative_max_batch = defaults::SPECULATIVE_MAX_BATCH;
  MlpPath mlp = mlp_path_from_name(defaults::MLP);  // who runs the MLP block (Backend::mlp)
};

// Upper bounds of the config (beyond them buffers sizes overflow or cannot be allocated).
constexpr int MAX_BLOCK_SIZE = 1024;
constexpr int MAX_NUM_SEQS = 1 << 16;
constexpr int MAX_NUM_BATCHED_TOKENS = 1 << 20;
constexpr int MAX_NUM_BLOCKS = 1 << 24;

// Throws std::invalid_argument naming the first setting out of range (max_model_len must not
// exceed the model's context length; 0 means "the model's").
void validate_config(const EngineConfig& config, const ModelConfig& model);

struct TokenOutput {
  std::string request_id;
  int token_id = -1;
  float logprob = 0.0f;
  bool finished = false;
  FinishReason finish_reason = FinishReason::None;
  int sample_idx = 0;  // which of the request's n samples
  // The request's top_logprobs most likely (token id, logprob), most likely first; empty when
  // it asked for none (and for aborts).
  std::vector<std::pair<int, float>> top_logprobs;
  // Speculative decoding so far for this sample: verify steps, draft tokens proposed, accepted.
  int64_t num_verify_steps = 0, num_draft_tokens = 0, num_accepted_tokens = 0;
};

struct EngineStats {
  int num_running = 0,
      num_waiting = 0;  // sequences (a request with n samples counts n once forked)
  int num_blocks_total = 0, num_blocks_used = 0, num_blocks_free = 0;
  int num_blocks_cached = 0;    // blocks registered in the prefix cache (used or free)
  double kv_utilization = 0.0;  // tokens stored / token slots allocated (shared blocks once)
  uint64_t num_preemptions = 0;
  uint64_t prefix_cache_queries = 0, prefix_cache_hits = 0;  // tokens looked up / found cached
  double prefix_cache_hit_rate = 0.0;
  uint64_t num_cow_copies = 0, num_evictions = 0;
  int last_step_tokens = 0, last_step_seqs = 0;
  double mean_step_tokens = 0.0;  // running mean of batched tokens over non-empty steps
  uint64_t num_steps = 0;
  // Speculative decoding: verify steps, draft tokens proposed and accepted (all requests).
  uint64_t num_verify_steps = 0, num_draft_tokens = 0, num_accepted_tokens = 0;
  double acceptance_rate = 0.0;       // accepted / proposed draft tokens
  double mean_accepted_length = 0.0;  // tokens per verify step (accepted drafts + the sampled one)
};

class Engine {
 public:
  Engine(std::shared_ptr<const ModelFile> model, const EngineConfig& config);

  const ModelConfig& model_config() const { return model_->config(); }
  const EngineConfig& config() const { return config_; }
  Backend& backend() { return *backend_; }

  // Token ids that end a request (unless ignore_eos); defaults to the model's eos ids.
  void set_eos_token_ids(std::vector<int> ids);
  const std::vector<int>& eos_token_ids() const { return eos_ids_; }

  // Queues a request; throws std::invalid_argument for bad ids, params or lengths.
  void add_request(const std::string& request_id, std::vector<int> prompt,
                   const SamplingParams& params);
  // One iteration: returns the tokens produced this step (one per sequence that sampled) and
  // the requests that finished (aborted requests are reported once, with token_id = -1).
  std::vector<TokenOutput> step();
  // Aborts a request (all samples, or one when sample_idx >= 0); false if nothing was running.
  bool abort(const std::string& request_id, int sample_idx = -1);
  // Structured output: the tokens allowed for the NEXT token that sample `sample_idx` of a request
  // samples, (ceil(vocab_size / 32),) words, bit t % 32 of word t / 32 set = token t allowed. It
  // applies once and is then cleared; it waits while the sample is in prefill, not forked yet or
  // preempted. Replaces a pending mask. A sample with a pending mask gets no speculative draft
  // tokens. Throws std::invalid_argument naming the request for an unknown request, a sample index
  // out of range or finished, a wrong word count, bits at or beyond vocab_size, or no token.
  void set_allowed_tokens(const std::string& request_id, int sample_idx,
                          std::vector<uint32_t> mask);
  // Drops the pending mask of a sample; false if it had none (or is finished). Throws
  // std::invalid_argument for an unknown request or a sample index out of range.
  bool clear_allowed_tokens(const std::string& request_id, int sample_idx);
  bool has_unfinished() const { return scheduler_->has_unfinished() || !pending_aborts_.empty(); }
  // The scheduler's prefill cost rule (SchedulerConfig::context_per_token).
  double context_per_token() const { return scheduler_->config().context_per_token; }
  EngineStats stats() const;

  // Logits (n - first, vocab_size) of prompt positions [first, n) (first = -1: the last token
  // only), computed through the same paged path, in forwards of at most max_num_batched_tokens
  // tokens; needs an idle engine (oracle tests, `longbow info`, perplexity).
  std::vector<float> prompt_logits(const std::vector<int>& prompt, int first = -1);

 private:
  Batch build_batch(const SchedulerOutput& plan) const;
  void propose(const SchedulerOutput& plan);
  std::vector<TokenOutput> sample_and_update(const SchedulerOutput& plan);
  void copy_blocks(const std::vector<std::pair<int, int>>& copies);
  // The pending mask of sample_idx of a request (in its Sequence, or in the parent's fork list
  // before the fork); nullptr for a finished sample. Throws for an unknown request or an index out
  // of range (`fn` names the caller).
  std::vector<uint32_t>* allowed_tokens_slot(const char* fn, const std::string& request_id,
                                             int sample_idx);
  // Whether `token`, generated token number `num_generated` (from 1) of seq, ends it.
  bool is_stop(const Sequence& seq, int token, int num_generated) const;

  EngineConfig config_;
  std::shared_ptr<const ModelFile> file_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<models::Model> model_;
  std::unique_ptr<KvCache> kv_;
  std::unique_ptr<BlockManager> blocks_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<Proposer> proposer_;  // speculative decoding, or nullptr
  std::vector<int> eos_ids_;
  std::vector<TokenOutput> pending_aborts_;
  std::mt19937_64 seed_source_;
  int max_blocks_per_seq_ = 0;
  int max_rows_ = 0;  // logits rows per step: one per sequence, plus one per draft token
  // Sampling buffers on the device.
  std::unique_ptr<Buffer> sample_ids_, sample_logprobs_, sample_params_, penalty_tokens_;
  std::unique_ptr<Buffer> sample_top_ids_,
      sample_top_logprobs_;  // (max_num_seqs, SampleArgs::MAX_TOP)
  size_t penalty_capacity_ = 0;
  std::unique_ptr<Buffer> allowed_masks_;  // (mask_capacity_ / mask words, mask words) u32
  size_t mask_capacity_ = 0;               // u32 words
  std::unique_ptr<Buffer> copy_pairs_;     // (capacity, 2) i32 (src, dst) for copy-on-write
  size_t copy_capacity_ = 0;
  uint64_t total_step_tokens_ = 0;
  int last_step_tokens_ = 0, last_step_seqs_ = 0;
  uint64_t num_steps_ = 0;
  uint64_t num_verify_steps_ = 0, num_draft_tokens_ = 0, num_accepted_tokens_ = 0;
};

}  // namespace longbow::engine
