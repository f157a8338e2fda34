#include "longbow/engine/engine.h"

#include <algorithm>
#include <optional>
#include <stdexcept>

#include "longbow/backend/op_checks.h"
#include "longbow/core/check.h"
#include "longbow/engine/batch_builder.h"
#include "longbow/engine/sample_rows.h"

namespace longbow::engine {

namespace {
void check_range(const char* name, int64_t value, int64_t lo, int64_t hi,
                 const std::string& note = "") {
  require(value >= lo && value <= hi, "engine", [&] {
    return "expected " + std::string(name) + " in [" + std::to_string(lo) + ", " +
           std::to_string(hi) + "]" + note + ", found " + std::to_string(value);
  });
}

// "" -> none; "q8_0" / "q4_0" / "q4_1" -> that block type; anything else names `setting`.
std::optional<DType> load_quantize(const std::string& name, const char* setting) {
  if (name.empty()) return std::nullopt;
  std::optional<DType> t;
  try {
    t = dtype_from_name(name, setting);
  } catch (const std::invalid_argument&) {
  }
  if (!t || !dtype_is_quantized(*t)) {
    throw std::invalid_argument(std::string("[engine] expected ") + setting +
                                " '', 'q8_0', 'q4_0' or 'q4_1', found '" + name + "'");
  }
  return t;
}

// Self-draft quantizes the model's float weights: a file whose matmul weights are already
// quantized has nothing faster to draft with.
void require_float_weights(const ModelFile& file) {
  for (const TensorInfo& t : file.tensors()) {
    if (t.shape.size() == 2 && t.name != "token_embd.weight" && dtype_is_quantized(t.dtype)) {
      throw std::invalid_argument(
          "[engine] speculative 'self' drafts with a quantized copy of float weights, but " +
          file.path() + " stores " + t.source_name + " as " + dtype_name(t.dtype) +
          " (use speculative 'ngram', or 'draft' with a smaller draft_model)");
    }
  }
}

}  // namespace

// Rejects settings that would crash, overflow or silently change meaning (ValueError in Python).
void validate_config(const EngineConfig& c, const ModelConfig& mc) {
  check_range("block_size", c.block_size, 0, MAX_BLOCK_SIZE, " (0 = the backend's choice)");
  check_range("max_num_seqs", c.max_num_seqs, 1, MAX_NUM_SEQS);
  check_range("max_num_batched_tokens", c.max_num_batched_tokens, 1, MAX_NUM_BATCHED_TOKENS);
  check_range("num_threads", c.num_threads, 0, 1024, " (0 = number of cores)");
  check_range("num_blocks", c.num_blocks, 0, MAX_NUM_BLOCKS, " (0 = derived from kv_cache_bytes)");
  if (c.num_blocks == 1) {
    throw std::invalid_argument(
        "[engine] expected num_blocks 0 (derived) or >= 2 (block 0 is the null block), found 1");
  }
  check_range("max_model_len", c.max_model_len, 0, mc.max_position,
              " (0 = the model's context length " + std::to_string(mc.max_position) + ")");
  if (c.speculative != "" && c.speculative != "ngram" && c.speculative != "draft" &&
      c.speculative != "self") {
    throw std::invalid_argument(
        "[engine] expected speculative '', 'ngram', 'draft' or 'self', found '" + c.speculative +
        "'");
  }
  load_quantize(c.quantize, "quantize");
  load_quantize(c.draft_quantize, "draft_quantize");
  if ((c.speculative == "draft") != !c.draft_model.empty()) {
    throw std::invalid_argument(c.draft_model.empty()
                                    ? "[engine] speculative 'draft' needs draft_model (a path)"
                                    : "[engine] draft_model is set but speculative is '" +
                                          c.speculative + "' (expected 'draft')");
  }
  if (!c.speculative.empty()) {
    check_range("num_speculative_tokens", c.num_speculative_tokens, 1, 64);
    check_range("speculative_max_batch", c.speculative_max_batch, 1, MAX_NUM_SEQS);
    check_range("ngram_min", c.ngram_min, 1, 64);
    check_range("ngram_max", c.ngram_max, c.ngram_min, 64, " (>= ngram_min)");
  }
  check_kv_dtype(c.k_dtype, mc.head_dim, "engine kv_dtype/k_dtype");
  check_kv_dtype(c.v_dtype, mc.head_dim, "engine kv_dtype/v_dtype");
}

Engine::Engine(std::shared_ptr<const ModelFile> model, const EngineConfig& config)
    : config_(config), file_(std::move(model)), seed_source_(std::random_device{}()) {
  if (!file_) throw std::invalid_argument("[engine] no model");
  validate_config(config_, file_->config());
  if (config_.speculative == "self") require_float_weights(*file_);  // before any weight loads
  backend_ = create_backend(config_.backend, BackendOptions{config_.num_threads, config_.mlp});
  if (config_.block_size == 0) config_.block_size = backend_->preferred_block_size();
  model_ = models::create_model(file_, *backend_,
                                {load_quantize(config_.quantize, "quantize"), config_.kv_rotation});
  const ModelConfig& mc = model_->config();
  if (config_.max_model_len == 0) config_.max_model_len = mc.max_position;

  KvCacheLayout layout;
  layout.num_layers = mc.num_layers;
  layout.block_size = config_.block_size;
  layout.num_kv_heads = mc.num_kv_heads;
  layout.head_dim = mc.head_dim;
  layout.k_dtype = config_.k_dtype;
  layout.v_dtype = config_.v_dtype;
  layout.num_blocks = 1;
  const int blocks_one_seq = (config_.max_model_len + config_.block_size - 1) / config_.block_size;
  if (config_.num_blocks > 0) {
    layout.num_blocks = config_.num_blocks;
  } else {
    const size_t per_block = layout.bytes_per_block();
    layout.num_blocks =
        static_cast<int>(std::min<size_t>(config_.kv_cache_bytes / per_block + 1, 1u << 24));
    layout.num_blocks =
        std::max(layout.num_blocks, blocks_one_seq + 1);  // one full-length sequence fits
  }
  config_.num_blocks = layout.num_blocks;
  kv_ = std::make_unique<KvCache>(*backend_, layout);
  blocks_ = std::make_unique<BlockManager>(layout.num_blocks, layout.block_size,
                                           config_.enable_prefix_caching);
  const bool speculating = !config_.speculative.empty();
  scheduler_ = std::make_unique<Scheduler>(
      SchedulerConfig{config_.max_num_seqs, config_.max_num_batched_tokens, config_.max_model_len,
                      speculating ? config_.num_speculative_tokens : 0,
                      config_.speculative_max_batch, attention_context_per_token(model_config())},
      *blocks_);
  max_blocks_per_seq_ = blocks_one_seq;
  // A speculating sequence needs a logits row per draft token too (bounded by the token budget).
  max_rows_ = config_.max_num_seqs;
  if (speculating) {
    max_rows_ += std::min(config_.max_num_batched_tokens,
                          std::min(config_.max_num_seqs, config_.speculative_max_batch) *
                              config_.num_speculative_tokens);
  }
  model_->reserve(config_.max_num_batched_tokens, config_.max_num_seqs, max_blocks_per_seq_,
                  max_rows_);
  if (config_.speculative == "ngram") {
    proposer_ = make_ngram_proposer(config_.ngram_min, config_.ngram_max);
  } else if (config_.speculative == "draft" || config_.speculative == "self") {
    const bool self = config_.speculative == "self";
    proposer_ = make_draft_model_proposer(
        self ? file_ : ModelFile::open(config_.draft_model), mc, *backend_,
        {.num_blocks = layout.num_blocks,
         .block_size = layout.block_size,
         .k_dtype = config_.k_dtype,
         .v_dtype = config_.v_dtype,
         .max_num_seqs = config_.max_num_seqs,
         .max_num_batched_tokens = config_.max_num_batched_tokens,
         .max_blocks_per_seq = max_blocks_per_seq_,
         .attention = config_.attention,
         .eos_ids = &eos_ids_,
         .quantize = self ? load_quantize(config_.draft_quantize, "draft_quantize") : std::nullopt,
         .kv_rotation = config_.kv_rotation});
  }

  eos_ids_ = mc.eos_token_ids;
  sample_ids_ = backend_->alloc(max_rows_ * sizeof(int32_t));
  sample_logprobs_ = backend_->alloc(max_rows_ * sizeof(float));
  sample_params_ = backend_->alloc(max_rows_ * sizeof(SampleRowParams));
  sample_top_ids_ = backend_->alloc(max_rows_ * SampleArgs::MAX_TOP * sizeof(int32_t));
  sample_top_logprobs_ = backend_->alloc(max_rows_ * SampleArgs::MAX_TOP * sizeof(float));
  penalty_capacity_ = 4096;
  penalty_tokens_ = backend_->alloc(penalty_capacity_ * sizeof(int32_t));
  copy_capacity_ = static_cast<size_t>(config_.max_num_seqs);
  copy_pairs_ = backend_->alloc(copy_capacity_ * 2 * sizeof(int32_t));
}

void Engine::set_eos_token_ids(std::vector<int> ids) {
  for (int id : ids) {
    if (id < 0 || id >= model_config().vocab_size) {
      throw std::invalid_argument("[engine] eos token id " + std::to_string(id) + " out of range");
    }
  }
  eos_ids_ = std::move(ids);
}

void Engine::add_request(const std::string& request_id, std::vector<int> prompt,
                         const SamplingParams& params) {
  const int vocab = model_config().vocab_size;
  params.validate(vocab);
  for (size_t i = 0; i < prompt.size(); ++i) {
    if (prompt[i] < 0 || prompt[i] >= vocab) {
      throw std::invalid_argument("[engine] request '" + request_id + "': prompt token " +
                                  std::to_string(i) + " = " + std::to_string(prompt[i]) +
                                  " out of range for vocab_size " + std::to_string(vocab));
    }
  }
  auto seq = std::make_unique<Sequence>();
  seq->request_id = request_id;
  seq->num_prompt_tokens = static_cast<int>(prompt.size());
  seq->tokens = std::move(prompt);
  seq->params = params;
  seq->seed = params.seed ? *params.seed : seed_source_();
  scheduler_->add(std::move(seq));
}

bool Engine::abort(const std::string& request_id, int sample_idx) {
  const std::vector<int> done = scheduler_->abort(request_id, sample_idx);
  for (int i : done)
    pending_aborts_.push_back({request_id, -1, 0.0f, true, FinishReason::Abort, i});
  return !done.empty();
}

std::vector<uint32_t>* Engine::allowed_tokens_slot(const char* fn, const std::string& request_id,
                                                   int sample_idx) {
  const std::string where = std::string("[engine] ") + fn + ": request '" + request_id + "': ";
  // The scheduler's table owns the samples; the engine changes only their masks here.
  const auto* samples = scheduler_->find(request_id);
  if (samples == nullptr || samples->empty()) {
    throw std::invalid_argument(where +
                                "unknown request (never added, or finished and reported already)");
  }
  Sequence* parent = samples->front().get();
  const int n = parent->params.n;
  if (sample_idx < 0 || sample_idx >= n) {
    throw std::invalid_argument(where + "expected sample_index in 0.." + std::to_string(n - 1) +
                                " (n = " + std::to_string(n) + "), found " +
                                std::to_string(sample_idx));
  }
  for (const auto& s : *samples) {
    if (s->sample_idx != sample_idx) continue;
    return s->status == SeqStatus::Finished ? nullptr : &s->allowed_tokens;
  }
  // Not forked yet: the parent keeps the mask until the fork, unless the sample was aborted.
  const auto& skipped = parent->skipped_forks;
  if (parent->num_pending_forks == 0 ||
      std::find(skipped.begin(), skipped.end(), sample_idx) != skipped.end()) {
    return nullptr;
  }
  for (auto& [idx, mask] : parent->fork_allowed_tokens) {
    if (idx == sample_idx) return &mask;
  }
  return &parent->fork_allowed_tokens.emplace_back(sample_idx, std::vector<uint32_t>{}).second;
}

void Engine::set_allowed_tokens(const std::string& request_id, int sample_idx,
                                std::vector<uint32_t> mask) {
  const char* fn = "set_allowed_tokens";
  const std::string where = std::string("[engine] ") + fn + ": request '" + request_id + "': ";
  const int vocab = model_config().vocab_size;
  const size_t words = (static_cast<size_t>(vocab) + 31) / 32;
  std::vector<uint32_t>* slot = allowed_tokens_slot(fn, request_id, sample_idx);
  if (slot == nullptr) {
    throw std::invalid_argument(where + "sample " + std::to_string(sample_idx) + " is finished");
  }
  if (mask.size() != words) {
    throw std::invalid_argument(where + "expected " + std::to_string(words) +
                                " mask words (ceil(vocab_size " + std::to_string(vocab) +
                                " / 32)), found " + std::to_string(mask.size()));
  }
  const uint32_t tail = vocab % 32 == 0 ? 0u : ~0u << (vocab % 32);  // bits of ids >= vocab
  if ((mask.back() & tail) != 0) {
    int id = vocab;  // the first such id
    while (((mask.back() >> (id % 32)) & 1u) == 0) ++id;
    throw std::invalid_argument(where + "mask allows token " + std::to_string(id) +
                                ", expected ids below vocab_size " + std::to_string(vocab));
  }
  if (std::all_of(mask.begin(), mask.end(), [](uint32_t w) { return w == 0; })) {
    throw std::invalid_argument(where + "mask allows no token");
  }
  *slot = std::move(mask);
}

bool Engine::clear_allowed_tokens(const std::string& request_id, int sample_idx) {
  std::vector<uint32_t>* slot = allowed_tokens_slot("clear_allowed_tokens", request_id, sample_idx);
  if (slot == nullptr || slot->empty()) return false;
  slot->clear();
  return true;
}

void Engine::copy_blocks(const std::vector<std::pair<int, int>>& copies) {
  if (copies.empty()) return;
  if (copies.size() > copy_capacity_) {  // grows rarely, never inside a forward
    copy_capacity_ = std::max(copies.size(), 2 * copy_capacity_);
    copy_pairs_ = backend_->alloc(copy_capacity_ * 2 * sizeof(int32_t));
  }
  std::vector<int32_t> pairs;  // (num_pairs, 2)
  for (const auto& [src, dst] : copies) {
    pairs.push_back(src);
    pairs.push_back(dst);
  }
  backend_->upload({copy_pairs_.get(), 0}, pairs.data(), pairs.size() * sizeof(int32_t));
  for (KvCache* kv : {kv_.get(), proposer_ ? proposer_->kv_cache() : nullptr}) {
    if (kv == nullptr) continue;
    const KvCacheLayout& layout = kv->layout();
    for (const auto& [planes, block_bytes] :  // every layer's K planes, then every V plane
         {std::pair{kv->all_keys(), layout.k_block_bytes()},
          std::pair{kv->all_values(), layout.v_block_bytes()}}) {
      backend_->copy_blocks({.cache = planes,
                             .pairs = {copy_pairs_.get(), 0},
                             .num_pairs = static_cast<int>(copies.size()),
                             .num_planes = layout.num_layers,
                             .num_blocks = layout.num_blocks,
                             .block_bytes = block_bytes});
    }
  }
}

Batch Engine::build_batch(const SchedulerOutput& plan) const {
  BatchBuilder b(config_.block_size);
  for (const ScheduledSeq& s : plan.scheduled) {
    const Sequence& seq = *s.seq;
    std::vector<int> ids(seq.tokens.begin() + seq.num_computed,
                         seq.tokens.begin() + seq.num_computed + s.num_new_tokens);
    ids.insert(ids.end(), seq.draft_tokens.begin(), seq.draft_tokens.end());
    // Generated tokens (a decode or verify step) once the prompt's K/V are all in the cache.
    const int at =
        b.add(ids, seq.num_computed, seq.block_table, seq.num_computed >= seq.num_prompt_tokens);
    if (!s.needs_logits) continue;
    // The last token's logits, once per sample of a prompt whose samples fork now; then one row
    // per draft token (speculative decoding verifies every draft position).
    const int last = at + s.num_new_tokens - 1;
    b.add_logits_row(last, 1 + seq.num_pending_forks);
    for (size_t j = 1; j <= seq.draft_tokens.size(); ++j)
      b.add_logits_row(last + static_cast<int>(j));
  }
  return b.finish();
}

// Fills the draft tokens of the sequences the scheduler gave draft slots.
void Engine::propose(const SchedulerOutput& plan) {
  if (!proposer_) return;
  std::vector<ProposalRequest> requests;
  for (const ScheduledSeq& s : plan.scheduled) {
    if (s.num_spec > 0) requests.push_back({s.seq, s.num_spec});
  }
  if (!requests.empty()) proposer_->propose(requests);
  for (const ProposalRequest& r : requests) {
    if (static_cast<int>(r.seq->draft_tokens.size()) > r.max_draft)
      throw std::logic_error("[engine] the proposer returned more draft tokens than asked for");
  }
}

bool Engine::is_stop(const Sequence& seq, int token, int num_generated) const {
  const auto& p = seq.params;
  // The first min_tokens tokens cannot be stop or end-of-sequence ids (append_banned_ids keeps
  // the sampler from drawing them).
  if (num_generated <= p.min_tokens) return false;
  if (std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), token) != p.stop_token_ids.end())
    return true;
  if (p.ignore_eos) return false;
  return std::find(eos_ids_.begin(), eos_ids_.end(), token) != eos_ids_.end();
}

// Samples every logits row of the step on the device and applies the results. A speculating
// sequence has a row per position: row j samples generated token num_generated + j under the
// request's filters, with penalties over the tokens before it, and draft token j is kept iff the
// row outputs it. A one-hot draft (greedy draft model, n-gram) needs nothing more: the row samples
// exactly as plain decoding would (same Philox counter), so the output has the target's
// distribution and, with a seed, the very tokens of plain decoding. A sampled draft (drawn from q
// at temperature > 0, q in the proposer's probs rows) is rejection-sampled by the op: kept with
// probability min(1, p/q), else replaced by a draw from max(0, p - q), which again gives p. A
// rejection ends the sequence's tokens for the step; full acceptance adds the bonus row's token.
std::vector<TokenOutput> Engine::sample_and_update(const SchedulerOutput& plan) {
  const std::vector<Sequence*> sampling = scheduler_->on_forward_done(plan);
  std::vector<TokenOutput> out;
  if (sampling.empty()) return out;

  struct Row {
    Sequence* seq;
    int j;  // position after the sequence's last token: 0 = the next token, j = draft j - 1 ...
  };
  std::vector<Row> rows;
  for (Sequence* seq : sampling) {
    for (int j = 0; j <= static_cast<int>(seq->draft_tokens.size()); ++j) rows.push_back({seq, j});
  }
  const int R = static_cast<int>(rows.size());
  std::vector<SampleRowParams> params(R);
  std::vector<int32_t> penalty;
  std::vector<uint32_t> masks;  // (num_mask_rows, mask_words): allowed tokens of masked rows
  const int mask_words = (model_config().vocab_size + 31) / 32;
  int max_top = 0;  // the widest top-logprobs request of the step sets the output row stride
  for (int r = 0; r < R; ++r) {
    const Sequence& seq = *rows[r].seq;
    const int j = rows[r].j;
    SampleRowParams& p = params[r];
    p = sample_row_params(seq, j, eos_ids_, model_config().vocab_size, penalty);
    max_top = std::max(max_top, p.num_top_logprobs);
    if (seq.draft_probs_row >= 0 && j < static_cast<int>(seq.draft_tokens.size())) {
      p.draft_row = seq.draft_probs_row + j;  // a sampled draft: rejection sampling against q
      p.draft_token = seq.draft_tokens[j];
    }
    if (j == 0) add_mask_row(seq, penalty, p, masks);  // a masked sequence has no drafts
  }
  if (penalty.size() > penalty_capacity_) {  // grows rarely, never inside a forward
    penalty_capacity_ = std::max(penalty.size(), 2 * penalty_capacity_);
    penalty_tokens_ = backend_->alloc(penalty_capacity_ * sizeof(int32_t));
  }
  if (masks.size() > mask_capacity_) {  // likewise
    mask_capacity_ = std::max(masks.size(), 2 * mask_capacity_);
    allowed_masks_ = backend_->alloc(mask_capacity_ * sizeof(uint32_t));
  }
  backend_->upload({sample_params_.get(), 0}, params.data(), R * sizeof(SampleRowParams));
  if (!penalty.empty())
    backend_->upload({penalty_tokens_.get(), 0}, penalty.data(), penalty.size() * sizeof(int32_t));
  if (!masks.empty())
    backend_->upload({allowed_masks_.get(), 0}, masks.data(), masks.size() * sizeof(uint32_t));
  backend_->sample({.out_ids = {sample_ids_.get(), 0},
                    .out_logprobs = {sample_logprobs_.get(), 0},
                    .out_top_ids = {sample_top_ids_.get(), 0},
                    .out_top_logprobs = {sample_top_logprobs_.get(), 0},
                    .logits = model_->logits(),
                    .params = {sample_params_.get(), 0},
                    .penalty_tokens = {penalty_tokens_.get(), 0},
                    .probs = proposer_ ? proposer_->draft_probs() : BufView{},
                    .allowed = {allowed_masks_.get(), 0},
                    .num_rows = R,
                    .vocab_size = model_config().vocab_size,
                    .max_top = max_top,
                    .num_probs_rows = proposer_ ? proposer_->num_draft_probs_rows() : 0,
                    .num_mask_rows = static_cast<int>(masks.size()) / mask_words,
                    .mask_words = mask_words});
  std::vector<int32_t> ids(R);
  std::vector<float> logprobs(R);
  backend_->download(ids.data(), {sample_ids_.get(), 0}, R * sizeof(int32_t));
  backend_->download(logprobs.data(), {sample_logprobs_.get(), 0}, R * sizeof(float));
  std::vector<int32_t> top_ids(static_cast<size_t>(R) * max_top);  // (R, max_top)
  std::vector<float> top_lps(top_ids.size());                      // (R, max_top)
  if (max_top > 0) {
    backend_->download(top_ids.data(), {sample_top_ids_.get(), 0},
                       top_ids.size() * sizeof(int32_t));
    backend_->download(top_lps.data(), {sample_top_logprobs_.get(), 0},
                       top_lps.size() * sizeof(float));
  }

  std::vector<SeqUpdate> updates;
  for (int r = 0; r < R;) {
    Sequence* seq = rows[r].seq;
    const int drafted = static_cast<int>(seq->draft_tokens.size());
    seq->allowed_tokens.clear();  // the mask applied to the token sampled now
    SeqUpdate u{seq, {}, 0, FinishReason::None};
    for (int j = 0; j <= drafted; ++j) {
      const int row = r + j;
      const int id = ids[row];
      u.new_tokens.push_back(id);
      TokenOutput t{seq->request_id, id, logprobs[row], false, FinishReason::None, seq->sample_idx};
      for (int k = 0; k < seq->params.top_logprobs && top_ids[row * max_top + k] >= 0; ++k) {
        t.top_logprobs.emplace_back(top_ids[row * max_top + k], top_lps[row * max_top + k]);
      }
      const int generated = seq->num_generated() + j + 1;
      if (is_stop(*seq, id, generated)) {
        t.finish_reason = FinishReason::Stop;
      } else if (generated >= seq->params.max_tokens ||
                 seq->num_tokens() + j + 1 >= config_.max_model_len) {
        t.finish_reason = FinishReason::Length;
      }
      const bool accepted = j < drafted && id == seq->draft_tokens[j];
      if (accepted) ++u.num_accepted;
      t.num_verify_steps = seq->num_verify_steps + (drafted > 0);
      t.num_draft_tokens = seq->num_draft_tokens + drafted;
      t.num_accepted_tokens = seq->num_accepted_tokens + u.num_accepted;
      if (t.finish_reason != FinishReason::None) {
        t.finished = true;
        u.finish = t.finish_reason;
      }
      out.push_back(std::move(t));
      if (u.finish != FinishReason::None || !accepted) break;
    }
    if (drafted > 0) {
      ++num_verify_steps_;
      num_draft_tokens_ += static_cast<uint64_t>(drafted);
      num_accepted_tokens_ += static_cast<uint64_t>(u.num_accepted);
    }
    // The last new token's K/V is not computed yet (it is fed next step), so only the accepted
    // drafts before it count as computed.
    u.num_accepted = std::min(u.num_accepted, static_cast<int>(u.new_tokens.size()) - 1);
    updates.push_back(std::move(u));
    r += drafted + 1;
  }
  scheduler_->update_from_output(updates);
  return out;
}

std::vector<TokenOutput> Engine::step() {
  std::vector<TokenOutput> out;
  out.swap(pending_aborts_);
  scheduler_->reap_finished();
  SchedulerOutput plan = scheduler_->schedule();
  last_step_tokens_ = plan.num_batched_tokens;
  last_step_seqs_ = static_cast<int>(plan.scheduled.size());
  if (plan.empty()) return out;
  ++num_steps_;
  total_step_tokens_ += static_cast<uint64_t>(plan.num_batched_tokens);
  copy_blocks(plan.copies);  // copy-on-write before any K/V of this step is written
  propose(plan);
  Batch batch = build_batch(plan);
  model_->forward(batch, *kv_, config_.attention);
  std::vector<TokenOutput> tokens = sample_and_update(plan);
  out.insert(out.end(), tokens.begin(), tokens.end());
  scheduler_->reap_finished();
  return out;
}

EngineStats Engine::stats() const {
  EngineStats s;
  s.num_running = scheduler_->num_running();
  s.num_waiting = scheduler_->num_waiting();
  s.num_blocks_total = blocks_->num_blocks() - 1;
  s.num_blocks_free = blocks_->num_free();
  s.num_blocks_used = blocks_->num_used();
  s.num_blocks_cached = blocks_->num_cached();
  // Tokens stored per block, counting a block shared by several sequences once.
  const int bs = blocks_->block_size();
  std::vector<int> filled(static_cast<size_t>(blocks_->num_blocks()), 0);
  for (const Sequence* seq : scheduler_->running()) {
    for (size_t i = 0; i < seq->block_table.size(); ++i) {
      const int n = std::clamp(seq->num_computed - static_cast<int>(i) * bs, 0, bs);
      filled[seq->block_table[i]] = std::max(filled[seq->block_table[i]], n);
    }
  }
  int64_t stored = 0;
  for (int f : filled) stored += f;
  const int64_t slots = static_cast<int64_t>(s.num_blocks_used) * bs;
  s.kv_utilization = slots > 0 ? static_cast<double>(stored) / slots : 0.0;
  s.num_preemptions = scheduler_->num_preemptions();
  s.prefix_cache_queries = scheduler_->num_prefix_queries();
  s.prefix_cache_hits = scheduler_->num_prefix_hits();
  s.prefix_cache_hit_rate = s.prefix_cache_queries > 0
                                ? static_cast<double>(s.prefix_cache_hits) / s.prefix_cache_queries
                                : 0.0;
  s.num_cow_copies = scheduler_->num_cow_copies();
  s.num_evictions = blocks_->num_evictions();
  s.last_step_tokens = last_step_tokens_;
  s.last_step_seqs = last_step_seqs_;
  s.num_steps = num_steps_;
  s.mean_step_tokens = num_steps_ > 0 ? static_cast<double>(total_step_tokens_) / num_steps_ : 0.0;
  s.num_verify_steps = num_verify_steps_;
  s.num_draft_tokens = num_draft_tokens_;
  s.num_accepted_tokens = num_accepted_tokens_;
  s.acceptance_rate =
      num_draft_tokens_ > 0 ? static_cast<double>(num_accepted_tokens_) / num_draft_tokens_ : 0.0;
  s.mean_accepted_length =
      num_verify_steps_ > 0
          ? static_cast<double>(num_accepted_tokens_ + num_verify_steps_) / num_verify_steps_
          : 0.0;
  return s;
}

std::vector<float> Engine::prompt_logits(const std::vector<int>& prompt, int first) {
  if (scheduler_->has_unfinished())
    throw std::logic_error("[engine] prompt_logits needs an idle engine");
  const int vocab = model_config().vocab_size;
  const int n = static_cast<int>(prompt.size());
  if (n == 0 || n > config_.max_model_len) {
    throw std::invalid_argument("[engine] prompt_logits: prompt must have 1..max_model_len (" +
                                std::to_string(config_.max_model_len) + ") tokens, found " +
                                std::to_string(n));
  }
  if (first < 0) first = n - 1;
  if (first >= n) {
    throw std::invalid_argument("[engine] prompt_logits: expected first in 0.." +
                                std::to_string(n - 1) + ", found " + std::to_string(first));
  }
  for (int id : prompt) {
    if (id < 0 || id >= vocab)
      throw std::invalid_argument("[engine] prompt token " + std::to_string(id) + " out of range");
  }
  std::vector<int> table;
  if (!blocks_->ensure_capacity(table, n)) {
    throw std::runtime_error("[engine] prompt_logits: KV pool too small for the prompt");
  }
  std::vector<float> logits(static_cast<size_t>(n - first) * vocab);  // (n - first, vocab)
  try {
    // Forwards of at most max_num_batched_tokens tokens and max_rows_ logits rows each.
    for (int at = 0; at < n;) {
      int len = std::min(n - at, config_.max_num_batched_tokens);
      len = std::min(len, std::max(first - at, 0) + max_rows_);
      BatchBuilder b(config_.block_size);
      b.add(std::span(prompt).subspan(at, len), at, table, false);
      const int row0 = std::max(first, at);
      for (int t = row0; t < at + len; ++t) b.add_logits_row(t - at);
      model_->forward(b.finish(), *kv_, config_.attention);
      if (row0 < at + len) {
        backend_->download(logits.data() + static_cast<size_t>(row0 - first) * vocab,
                           model_->logits(),
                           static_cast<size_t>(at + len - row0) * vocab * sizeof(float));
      }
      at += len;
    }
  } catch (...) {
    blocks_->release(table);
    throw;
  }
  blocks_->release(table);
  return logits;
}

}  // namespace longbow::engine
