#include "longbow/models/llama.h"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace longbow {

namespace {
std::string layer_name(int i, const char* suffix) { return "blk." + std::to_string(i) + "." + suffix; }
}  // namespace

LlamaModel::LlamaModel(std::shared_ptr<const ModelFile> file, Backend& backend)
    : file_(std::move(file)), backend_(backend), config_(file_->config()) {
  config_.validate(file_->path());
  token_embd_ = weight("token_embd.weight", WeightUse::Embedding);
  output_norm_ = weight("output_norm.weight", WeightUse::Norm);
  // Tied embeddings: the same file data serves as the LM head, as a matmul weight of its own
  // (the backend may lay matmul weights out differently from the embedding rows).
  output_ = weight(file_->find("output.weight") ? "output.weight" : "token_embd.weight");
  if (!backend_.supports(Op::Embed, token_embd_.dtype)) {
    throw std::invalid_argument(std::string("[model] backend ") + backend_.name() + " cannot embed from " +
                                dtype_name(token_embd_.dtype) + " tensor token_embd.weight");
  }
  layers_.resize(config_.num_layers);
  for (int i = 0; i < config_.num_layers; ++i) {
    Layer& L = layers_[i];
    L.attn_norm = weight(layer_name(i, "attn_norm.weight"), WeightUse::Norm);
    L.wq = weight(layer_name(i, "attn_q.weight"));
    L.wk = weight(layer_name(i, "attn_k.weight"));
    L.wv = weight(layer_name(i, "attn_v.weight"));
    L.wo = weight(layer_name(i, "attn_output.weight"));
    L.ffn_norm = weight(layer_name(i, "ffn_norm.weight"), WeightUse::Norm);
    L.w_gate = weight(layer_name(i, "ffn_gate.weight"));
    L.w_up = weight(layer_name(i, "ffn_up.weight"));
    L.w_down = weight(layer_name(i, "ffn_down.weight"));
    L.bq = optional_bias(layer_name(i, "attn_q.bias"));
    L.bk = optional_bias(layer_name(i, "attn_k.bias"));
    L.bv = optional_bias(layer_name(i, "attn_v.bias"));
  }

  // Rotary frequencies; llama.cpp stores Llama-3 scaling as per-pair divisors in rope_freqs.
  std::vector<float> inv_freq = rope_inv_freq(config_);
  if (const TensorInfo* rf = file_->find("rope_freqs.weight")) {
    if (rf->dtype != DType::F32 || rf->numel() != static_cast<int64_t>(inv_freq.size())) {
      throw std::invalid_argument("[model] " + file_->path() + ": tensor rope_freqs.weight must be f32 (" +
                                  std::to_string(inv_freq.size()) + ",)");
    }
    ModelConfig plain = config_;
    plain.rope_scaling = RopeScaling{};
    inv_freq = rope_inv_freq(plain);
    const float* divisors = reinterpret_cast<const float*>(rf->data);
    for (size_t j = 0; j < inv_freq.size(); ++j) inv_freq[j] /= divisors[j];
  }
  inv_freq_ = backend_.alloc(inv_freq.size() * sizeof(float));
  backend_.upload({inv_freq_.get(), 0}, inv_freq.data(), inv_freq.size() * sizeof(float));
}

WeightRef LlamaModel::weight(const std::string& name, WeightUse use) {
  const TensorInfo& t = file_->get(name);
  WeightRef ref;
  ref.dtype = t.dtype;
  ref.rows = static_cast<int>(t.shape.size() == 2 ? t.shape[0] : 1);
  ref.cols = static_cast<int>(t.shape.back());
  if (use == WeightUse::Norm || t.shape.size() == 1) {
    // Norm vectors are tiny: keep them as f32 whatever the file stores.
    std::vector<float> f(static_cast<size_t>(t.numel()));
    for (size_t j = 0; j < f.size(); ++j) {
      switch (t.dtype) {
        case DType::F32: std::memcpy(&f[j], t.data + 4 * j, 4); break;
        case DType::F16: { uint16_t h; std::memcpy(&h, t.data + 2 * j, 2); f[j] = f16_to_f32(h); break; }
        case DType::BF16: { uint16_t h; std::memcpy(&h, t.data + 2 * j, 2); f[j] = bf16_to_f32(h); break; }
        default:
          throw std::invalid_argument("[model] " + file_->path() + ": tensor " + name + " is " +
                                      dtype_name(t.dtype) + ", expected f32, f16 or bf16 for a vector");
      }
    }
    owned_.push_back(backend_.alloc(f.size() * sizeof(float)));
    backend_.upload({owned_.back().get(), 0}, f.data(), f.size() * sizeof(float));
    ref.dtype = DType::F32;
    ref.view = {owned_.back().get(), 0};
    return ref;
  }
  if (!backend_.supports(Op::Matmul, t.dtype)) {
    throw std::invalid_argument("[model] backend " + backend_.name() + " has no matmul for " + dtype_name(t.dtype) +
                                " weights (tensor " + name + " in " + t.file + ")");
  }
  if (use == WeightUse::Embedding) {
    owned_.push_back(backend_.wrap_host(t.data, t.bytes));
  } else {
    owned_.push_back(backend_.matmul_weight(t.data, t.dtype, ref.rows, ref.cols));
    // A backend that copied the data (the CPU packs quantized weights) no longer reads the file
    // pages: give them back so the weights are resident once, not twice.
    if (owned_.back()->host_ptr() != static_cast<const void*>(t.data)) file_->drop_pages(t);
  }
  ref.view = {owned_.back().get(), 0};
  return ref;
}

WeightRef LlamaModel::optional_bias(const std::string& name) {
  if (!file_->find(name)) return {};
  return weight(name, WeightUse::Norm);
}

void LlamaModel::reserve(int max_tokens, int max_seqs, int max_blocks_per_seq, int max_rows) {
  if (max_tokens <= 0 || max_seqs <= 0 || max_blocks_per_seq <= 0 || max_rows <= 0) {
    throw std::invalid_argument("[model] reserve: sizes must be positive");
  }
  max_tokens_ = max_tokens;
  max_seqs_ = max_seqs;
  max_blocks_per_seq_ = max_blocks_per_seq;
  max_rows_ = max_rows;
  const ModelConfig& c = config_;
  const size_t T = max_tokens, f = sizeof(float);
  x_ = backend_.alloc(T * c.hidden_size * f);
  h_ = backend_.alloc(T * c.hidden_size * f);
  q_ = backend_.alloc(T * c.num_heads * c.head_dim * f);
  k_ = backend_.alloc(T * c.num_kv_heads * c.head_dim * f);
  v_ = backend_.alloc(T * c.num_kv_heads * c.head_dim * f);
  attn_ = backend_.alloc(T * c.num_heads * c.head_dim * f);
  gate_ = backend_.alloc(T * c.intermediate_size * f);
  up_ = backend_.alloc(T * c.intermediate_size * f);
  rows_ = backend_.alloc(static_cast<size_t>(max_rows) * c.hidden_size * f);
  logits_ = backend_.alloc(static_cast<size_t>(max_rows) * c.vocab_size * f);

  // i32 batch fields live in one buffer: offsets in elements.
  const size_t n_tok = T, n_seq = max_seqs;
  const size_t sizes[] = {n_tok, n_tok, n_seq + 1, n_seq, n_tok, static_cast<size_t>(max_rows),
                          n_seq * max_blocks_per_seq};
  size_t total = 0;
  for (size_t s : sizes) total += s;
  batch_i32_ = backend_.alloc(total * sizeof(int32_t));
  BufView* views[] = {&token_ids_, &positions_, &query_start_, &seq_lens_, &slot_mapping_, &logits_rows_,
                      &block_tables_};
  size_t off = 0;
  for (size_t i = 0; i < std::size(sizes); ++i) {
    *views[i] = {batch_i32_.get(), off * sizeof(int32_t)};
    off += sizes[i];
  }
}

void LlamaModel::upload_batch(const Batch& b) {
  if (max_tokens_ == 0) throw std::logic_error("[model] forward before reserve()");
  if (b.num_tokens() > max_tokens_ || b.num_seqs() > max_seqs_ || b.num_rows() > max_rows_ ||
      b.max_blocks_per_seq > max_blocks_per_seq_) {
    throw std::invalid_argument("[model] batch of " + std::to_string(b.num_tokens()) + " tokens, " +
                                std::to_string(b.num_seqs()) + " sequences, " + std::to_string(b.num_rows()) +
                                " logits rows exceeds the reserved arena (" + std::to_string(max_tokens_) + ", " +
                                std::to_string(max_seqs_) + ", " + std::to_string(max_rows_) + ")");
  }
  auto put = [&](BufView dst, const std::vector<int32_t>& v) {
    if (!v.empty()) backend_.upload(dst, v.data(), v.size() * sizeof(int32_t));
  };
  put(token_ids_, b.token_ids);
  put(positions_, b.positions);
  put(query_start_, b.query_start);
  put(seq_lens_, b.seq_lens);
  put(slot_mapping_, b.slot_mapping);
  put(logits_rows_, b.logits_rows);
  put(block_tables_, b.block_tables);
}

void LlamaModel::forward(const Batch& b, KvCache& kv, AttentionVariant variant) {
  b.validate(kv.layout().block_size, kv.layout().num_blocks);
  for (int32_t id : b.token_ids) {
    if (id < 0 || id >= config_.vocab_size) {
      throw std::invalid_argument("[model] token id " + std::to_string(id) + " out of range for vocab_size " +
                                  std::to_string(config_.vocab_size));
    }
  }
  upload_batch(b);
  const ModelConfig& c = config_;
  const int T = b.num_tokens();
  backend_.embed({.out = {x_.get(), 0}, .token_ids = token_ids_, .table = token_embd_.view,
                  .table_dtype = token_embd_.dtype, .num_tokens = T, .dim = c.hidden_size,
                  .vocab_size = c.vocab_size});
  for (int l = 0; l < c.num_layers; ++l) run_layer(l, b, kv, variant);

  // Only the rows that need a token go through the final norm and the LM head.
  const int R = b.num_rows();
  if (R == 0) return;
  backend_.get_rows({.out = {rows_.get(), 0}, .x = {x_.get(), 0}, .rows = logits_rows_, .num_rows = R,
                     .dim = c.hidden_size, .num_src_rows = T});
  backend_.rms_norm({.out = {rows_.get(), 0}, .x = {rows_.get(), 0}, .residual = {}, .weight = output_norm_.view,
                     .num_rows = R, .dim = c.hidden_size, .eps = c.rms_eps});
  backend_.matmul({.out = {logits_.get(), 0}, .x = {rows_.get(), 0}, .w = output_.view, .bias = {},
                   .w_dtype = output_.dtype, .M = R, .N = c.vocab_size, .K = c.hidden_size});
}

void LlamaModel::run_layer(int l, const Batch& b, KvCache& kv, AttentionVariant variant) {
  const ModelConfig& c = config_;
  const Layer& L = layers_[l];
  const int T = b.num_tokens(), D = c.hidden_size, Dh = c.head_dim;
  const int q_dim = c.num_heads * Dh, kv_dim = c.num_kv_heads * Dh;
  const BufView x{x_.get(), 0}, h{h_.get(), 0}, q{q_.get(), 0}, k{k_.get(), 0}, v{v_.get(), 0};
  const BufView attn{attn_.get(), 0}, gate{gate_.get(), 0}, up{up_.get(), 0};

  // Attention block: h = norm(x); q,k,v = h·W (one matmul group); rope; cache; attend; x += attn·Wo.
  backend_.rms_norm({.out = h, .x = x, .residual = {}, .weight = L.attn_norm.view, .num_rows = T, .dim = D,
                     .eps = c.rms_eps});
  const MatmulArgs qkv[] = {
      {.out = q, .x = h, .w = L.wq.view, .bias = L.bq.view, .w_dtype = L.wq.dtype, .M = T, .N = q_dim, .K = D},
      {.out = k, .x = h, .w = L.wk.view, .bias = L.bk.view, .w_dtype = L.wk.dtype, .M = T, .N = kv_dim, .K = D},
      {.out = v, .x = h, .w = L.wv.view, .bias = L.bv.view, .w_dtype = L.wv.dtype, .M = T, .N = kv_dim, .K = D}};
  backend_.matmul_group(qkv);
  backend_.rope({.q = q, .k = k, .positions = positions_, .inv_freq = {inv_freq_.get(), 0}, .num_tokens = T,
                 .num_heads = c.num_heads, .num_kv_heads = c.num_kv_heads, .head_dim = Dh, .rot_dim = c.rot_dim,
                 .interleaved = c.rope_interleaved});
  const KvCacheLayout& kl = kv.layout();
  backend_.kv_write({.k = k, .v = v, .k_cache = kv.keys(l), .v_cache = kv.values(l), .slot_mapping = slot_mapping_,
                     .cache_dtype = kl.dtype, .num_tokens = T, .num_kv_heads = c.num_kv_heads, .head_dim = Dh,
                     .num_slots = kl.num_blocks * kl.block_size});
  backend_.attention({.out = attn, .q = q, .k_cache = kv.keys(l), .v_cache = kv.values(l),
                      .block_tables = block_tables_, .query_start = query_start_, .seq_lens = seq_lens_,
                      .positions = positions_, .cache_dtype = kl.dtype, .num_tokens = T, .num_seqs = b.num_seqs(),
                      .num_heads = c.num_heads, .num_kv_heads = c.num_kv_heads, .head_dim = Dh,
                      .block_size = kl.block_size, .max_blocks_per_seq = b.max_blocks_per_seq,
                      .num_blocks = kl.num_blocks, .scale = 1.0f / std::sqrt(static_cast<float>(Dh)),
                      .variant = variant});
  backend_.matmul({.out = x, .x = attn, .w = L.wo.view, .bias = {}, .w_dtype = L.wo.dtype, .M = T, .N = D,
                   .K = q_dim, .accumulate = true});

  // MLP block (SwiGLU): x += (silu(h·Wg) * (h·Wu))·Wd.
  backend_.rms_norm({.out = h, .x = x, .residual = {}, .weight = L.ffn_norm.view, .num_rows = T, .dim = D,
                     .eps = c.rms_eps});
  const int F = c.intermediate_size;
  const MatmulArgs gate_up[] = {
      {.out = gate, .x = h, .w = L.w_gate.view, .bias = {}, .w_dtype = L.w_gate.dtype, .M = T, .N = F, .K = D},
      {.out = up, .x = h, .w = L.w_up.view, .bias = {}, .w_dtype = L.w_up.dtype, .M = T, .N = F, .K = D}};
  backend_.matmul_group(gate_up);
  backend_.silu_mul({.out = gate, .gate = gate, .up = up, .num_rows = T, .dim = F});
  backend_.matmul({.out = x, .x = gate, .w = L.w_down.view, .bias = {}, .w_dtype = L.w_down.dtype, .M = T, .N = D,
                   .K = F, .accumulate = true});
}

}  // namespace longbow
