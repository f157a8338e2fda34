#include "longbow/models/decoder.h"

#include "longbow/models/features.h"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace longbow::models {

namespace {
std::string layer_name(int i, const char* suffix) {
  return "blk." + std::to_string(i) + "." + suffix;
}
}  // namespace

Decoder::Decoder(std::shared_ptr<const ModelFile> file, Backend& backend,
                 const LoadOptions& options)
    : file_(std::move(file)), backend_(backend), config_(file_->config()) {
  config_.validate(file_->path());
  check_backend_features();
  const ModelConfig& c = config_;
  WeightLoader w(file_, backend_, options.quantize);
  if (options.kv_rotation) load_hadamard();
  token_embd_ = w.embedding("token_embd.weight", c.vocab_size, c.hidden_size);
  output_norm_ = w.vector("output_norm.weight", c.hidden_size, c.norm_weight_offset);
  // Tied embeddings: the same file data serves as the LM head, as a matmul weight of its own
  // (the backend may lay matmul weights out differently from the embedding rows). A tied HF
  // checkpoint that also stores lm_head must store the same values.
  if (c.tie_embeddings && w.has("output.weight")) {
    const TensorInfo& head = w.take("output.weight", {c.vocab_size, c.hidden_size});
    const TensorInfo& embd = file_->get("token_embd.weight");
    if (head.dtype != embd.dtype || head.bytes != embd.bytes ||
        std::memcmp(head.data, embd.data, head.bytes) != 0) {
      throw std::invalid_argument("[model] " + head.file +
                                  ": tie_word_embeddings is set but tensor " + head.source_name +
                                  " differs from the embedding table");
    }
  }
  if (!c.tie_embeddings && !w.has("output.weight")) {
    throw std::invalid_argument(
        "[model] " + file_->path() +
        ": missing tensor output.weight (lm_head) and tie_word_embeddings is false");
  }
  output_ = w.matmul(c.tie_embeddings ? "token_embd.weight" : "output.weight", c.vocab_size,
                     c.hidden_size);
  layers_.resize(c.num_layers);
  for (int l = 0; l < c.num_layers; ++l) {
    load_layer(w, l, layers_[l]);
    backend_.check_mlp(mlp_args(layers_[l], 1));  // a path the backend cannot run fails here
  }
  load_rope(w);
  w.refuse_unused();
  owned_ = std::move(w.buffers());
}

// Features the config asks for that the backend ops cannot run yet: refused here, before any
// weight is loaded, rather than run approximately.
void Decoder::check_backend_features() const {
  for (const Feature& f : model_features(config_)) {
    if (!f.supported) {
      throw std::invalid_argument("[model] " + file_->path() + ": " + f.name +
                                  " is not supported by longbow yet");
    }
  }
}

void Decoder::load_layer(WeightLoader& w, int l, Layer& L) {
  const ModelConfig& c = config_;
  const int D = c.hidden_size, F = c.intermediate_size, Dh = c.head_dim;
  const int q_dim = c.num_heads * Dh, kv_dim = c.num_kv_heads * Dh;
  const float off = c.norm_weight_offset;
  L.attn_norm = w.vector(layer_name(l, "attn_norm.weight"), D, off);
  L.ffn_norm = w.vector(layer_name(l, "ffn_norm.weight"), D, off);
  if (w.has(layer_name(l, "attn_qkv.weight"))) {
    // Phi-3: one (q_dim + 2 kv_dim, D) tensor; its row slices are the three projections.
    const std::string n = layer_name(l, "attn_qkv.weight");
    const int rows = q_dim + 2 * kv_dim;
    L.wq = w.matmul(n, rows, D, 0, q_dim);
    L.wk = w.matmul(n, rows, D, q_dim, kv_dim);
    L.wv = w.matmul(n, rows, D, q_dim + kv_dim, kv_dim);
  } else {
    L.wq = w.matmul(layer_name(l, "attn_q.weight"), q_dim, D);
    L.wk = w.matmul(layer_name(l, "attn_k.weight"), kv_dim, D);
    L.wv = w.matmul(layer_name(l, "attn_v.weight"), kv_dim, D);
  }
  L.wo = w.matmul(layer_name(l, "attn_output.weight"), D, q_dim);
  if (w.has(layer_name(l, "ffn_gate.weight")) || !w.has(layer_name(l, "ffn_up.weight"))) {
    L.w_gate = w.matmul(layer_name(l, "ffn_gate.weight"), F, D);
    L.w_up = w.matmul(layer_name(l, "ffn_up.weight"), F, D);
  } else {
    // Phi-3: ffn_up holds gate (rows 0..F) then up (rows F..2F).
    L.w_gate = w.matmul(layer_name(l, "ffn_up.weight"), 2 * F, D, 0, F);
    L.w_up = w.matmul(layer_name(l, "ffn_up.weight"), 2 * F, D, F, F);
  }
  L.w_down = w.matmul(layer_name(l, "ffn_down.weight"), D, F);
  if (c.qkv_bias) {
    L.bq = w.vector(layer_name(l, "attn_q.bias"), q_dim);
    L.bk = w.vector(layer_name(l, "attn_k.bias"), kv_dim);
    L.bv = w.vector(layer_name(l, "attn_v.bias"), kv_dim);
  }
  if (c.o_bias) L.bo = w.vector(layer_name(l, "attn_output.bias"), D);
  if (c.mlp_bias) {
    L.b_gate = w.vector(layer_name(l, "ffn_gate.bias"), F);
    L.b_up = w.vector(layer_name(l, "ffn_up.bias"), F);
    L.b_down = w.vector(layer_name(l, "ffn_down.bias"), D);
  }
  if (c.qk_norm) {
    L.q_norm = w.vector(layer_name(l, "attn_q_norm.weight"), Dh, off);
    L.k_norm = w.vector(layer_name(l, "attn_k_norm.weight"), Dh, off);
  }
  if (c.sandwich_norms) {
    L.attn_post_norm = w.vector(layer_name(l, "post_attention_norm.weight"), D, off);
    L.ffn_post_norm = w.vector(layer_name(l, "post_ffw_norm.weight"), D, off);
  }
}

// Rotary frequencies; llama.cpp stores Llama-3 scaling as per-pair divisors in rope_freqs.
void Decoder::load_rope(WeightLoader& w) {
  const ModelConfig& c = config_;
  std::vector<float> inv_freq = rope_inv_freq(c);
  if (w.has("rope_freqs.weight")) {
    const TensorInfo& rf = w.take("rope_freqs.weight", {static_cast<int64_t>(inv_freq.size())});
    if (rf.dtype != DType::F32) {
      throw std::invalid_argument("[model] " + file_->path() +
                                  ": tensor rope_freqs.weight must be f32 (" +
                                  std::to_string(inv_freq.size()) + ",)");
    }
    ModelConfig plain = c;
    plain.rope_scaling = RopeScaling{};
    inv_freq = rope_inv_freq(plain);
    const float* divisors = reinterpret_cast<const float*>(rf.data);
    for (size_t j = 0; j < inv_freq.size(); ++j) inv_freq[j] /= divisors[j];
  }
  const size_t bytes = inv_freq.size() * sizeof(float);
  inv_freq_ = backend_.alloc(bytes);
  backend_.upload({inv_freq_.get(), 0}, inv_freq.data(), bytes);
  if (c.rope_theta_sliding > 0) {
    const std::vector<float> local = rope_inv_freq(c, c.rope_theta_sliding);
    inv_freq_sliding_ = backend_.alloc(bytes);
    backend_.upload({inv_freq_sliding_.get(), 0}, local.data(), bytes);
  }
}

// Sylvester's construction: H[i][j] = (-1)^popcount(i & j) / sqrt(n), orthonormal and symmetric.
void Decoder::load_hadamard() {
  const int n = config_.head_dim;
  if (n < 2 || (n & (n - 1)) != 0) {
    throw std::invalid_argument("[model] " + file_->path() +
                                ": kv_rotation needs head_dim a power of two, found " +
                                std::to_string(n));
  }
  const float norm = 1.0f / std::sqrt(static_cast<float>(n));
  hadamard_host_.resize(static_cast<size_t>(n) * n);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j)
      hadamard_host_[static_cast<size_t>(i) * n + j] =
          (__builtin_popcount(i & j) & 1) ? -norm : norm;
  }
  hadamard_ = backend_.matmul_weight(hadamard_host_.data(), DType::F32, n, n);
}

void Decoder::reserve(int max_tokens, int max_seqs, int max_blocks_per_seq, int max_rows) {
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
  if (hadamard_) {
    rq_ = backend_.alloc(T * c.num_heads * c.head_dim * f);
    rk_ = backend_.alloc(T * c.num_kv_heads * c.head_dim * f);
  }
  gate_ = backend_.alloc(T * c.intermediate_size * f);
  up_ = backend_.alloc(T * c.intermediate_size * f);
  rows_ = backend_.alloc(static_cast<size_t>(max_rows) * c.hidden_size * f);
  logits_ = backend_.alloc(static_cast<size_t>(max_rows) * c.vocab_size * f);

  // i32 batch fields live in one buffer: offsets in elements.
  const size_t n_tok = T, n_seq = max_seqs;
  const size_t sizes[] = {n_tok,
                          n_tok,
                          n_seq + 1,
                          n_seq,
                          n_seq,
                          n_tok,
                          static_cast<size_t>(max_rows),
                          n_seq * max_blocks_per_seq};
  size_t total = 0;
  for (size_t s : sizes) total += s;
  batch_i32_ = backend_.alloc(total * sizeof(int32_t));
  BufView* views[] = {&token_ids_,      &positions_,    &query_start_, &seq_lens_,
                      &generated_seqs_, &slot_mapping_, &logits_rows_, &block_tables_};
  size_t off = 0;
  for (size_t i = 0; i < std::size(sizes); ++i) {
    *views[i] = {batch_i32_.get(), off * sizeof(int32_t)};
    off += sizes[i];
  }
}

void Decoder::upload_batch(const Batch& b) {
  if (max_tokens_ == 0) throw std::logic_error("[model] forward before reserve()");
  if (b.num_tokens() > max_tokens_ || b.num_seqs() > max_seqs_ || b.num_rows() > max_rows_ ||
      b.max_blocks_per_seq > max_blocks_per_seq_) {
    throw std::invalid_argument(
        "[model] batch of " + std::to_string(b.num_tokens()) + " tokens, " +
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
  put(generated_seqs_, b.generated_seqs);
  put(slot_mapping_, b.slot_mapping);
  put(logits_rows_, b.logits_rows);
  put(block_tables_, b.block_tables);
}

void Decoder::forward(const Batch& b, KvCache& kv, AttentionVariant variant) {
  b.validate(kv.layout().block_size, kv.layout().num_blocks);
  for (int32_t id : b.token_ids) {
    if (id < 0 || id >= config_.vocab_size) {
      throw std::invalid_argument("[model] token id " + std::to_string(id) +
                                  " out of range for vocab_size " +
                                  std::to_string(config_.vocab_size));
    }
  }
  upload_batch(b);
  const ModelConfig& c = config_;
  const int T = b.num_tokens();
  backend_.embed({.out = {x_.get(), 0},
                  .token_ids = token_ids_,
                  .table = token_embd_.view,
                  .table_dtype = token_embd_.dtype,
                  .num_tokens = T,
                  .dim = c.hidden_size,
                  .vocab_size = c.vocab_size,
                  .scale = c.embedding_scale});
  for (int l = 0; l < c.num_layers; ++l) run_layer(l, b, kv, variant);

  // Only the rows that need a token go through the final norm and the LM head.
  const int R = b.num_rows();
  if (R == 0) return;
  backend_.get_rows({.out = {rows_.get(), 0},
                     .x = {x_.get(), 0},
                     .rows = logits_rows_,
                     .num_rows = R,
                     .dim = c.hidden_size,
                     .num_src_rows = T});
  backend_.rms_norm({.out = {rows_.get(), 0},
                     .x = {rows_.get(), 0},
                     .weight = output_norm_.view,
                     .num_rows = R,
                     .dim = c.hidden_size,
                     .eps = c.rms_eps});
  backend_.matmul({.out = {logits_.get(), 0},
                   .x = {rows_.get(), 0},
                   .w = output_.view,
                   .bias = {},
                   .w_dtype = output_.dtype,
                   .M = R,
                   .N = c.vocab_size,
                   .K = c.hidden_size});
  if (c.final_logit_softcap > 0) {
    const BufView logits{logits_.get(), 0};
    backend_.softcap(
        {.out = logits, .x = logits, .n = int64_t{R} * c.vocab_size, .cap = c.final_logit_softcap});
  }
}

void Decoder::run_layer(int l, const Batch& b, KvCache& kv, AttentionVariant variant) {
  const ModelConfig& c = config_;
  const Layer& L = layers_[l];
  const int T = b.num_tokens(), D = c.hidden_size, Dh = c.head_dim;
  const int q_dim = c.num_heads * Dh, kv_dim = c.num_kv_heads * Dh;
  const BufView x{x_.get(), 0}, h{h_.get(), 0}, q{q_.get(), 0}, k{k_.get(), 0}, v{v_.get(), 0};
  const BufView attn{attn_.get(), 0};

  // Attention block: h = norm(x); q,k,v = h·W (one matmul group); [q/k norm]; rope; cache;
  // attend; x += attn·Wo (Gemma: x += norm(attn·Wo)).
  backend_.rms_norm(
      {.out = h, .x = x, .weight = L.attn_norm.view, .num_rows = T, .dim = D, .eps = c.rms_eps});
  const MatmulArgs qkv[] = {{.out = q,
                             .x = h,
                             .w = L.wq.view,
                             .bias = L.bq.view,
                             .w_dtype = L.wq.dtype,
                             .M = T,
                             .N = q_dim,
                             .K = D},
                            {.out = k,
                             .x = h,
                             .w = L.wk.view,
                             .bias = L.bk.view,
                             .w_dtype = L.wk.dtype,
                             .M = T,
                             .N = kv_dim,
                             .K = D},
                            {.out = v,
                             .x = h,
                             .w = L.wv.view,
                             .bias = L.bv.view,
                             .w_dtype = L.wv.dtype,
                             .M = T,
                             .N = kv_dim,
                             .K = D}};
  backend_.matmul_group(qkv);
  if (c.qk_norm) {  // per head: rows of head_dim
    backend_.rms_norm({.out = q,
                       .x = q,
                       .weight = L.q_norm.view,
                       .num_rows = T * c.num_heads,
                       .dim = Dh,
                       .eps = c.rms_eps});
    backend_.rms_norm({.out = k,
                       .x = k,
                       .weight = L.k_norm.view,
                       .num_rows = T * c.num_kv_heads,
                       .dim = Dh,
                       .eps = c.rms_eps});
  }
  const bool sliding = c.layer_uses_window(l);
  const BufView inv_freq{(sliding && inv_freq_sliding_) ? inv_freq_sliding_.get() : inv_freq_.get(),
                         0};
  backend_.rope({.q = q,
                 .k = k,
                 .positions = positions_,
                 .inv_freq = inv_freq,
                 .num_tokens = T,
                 .num_heads = c.num_heads,
                 .num_kv_heads = c.num_kv_heads,
                 .head_dim = Dh,
                 .rot_dim = c.rot_dim,
                 .interleaved = c.rope_interleaved});
  // kv_rotation: q and k rotated per head (rows of head_dim) by the Hadamard matrix; the cache
  // and attention see the rotated values, whose dot products are the same.
  BufView qa = q, ka = k;
  if (hadamard_) {
    qa = {rq_.get(), 0}, ka = {rk_.get(), 0};
    auto rotate = [&](BufView out, BufView in, int heads) {  // (T * heads, Dh) rows
      backend_.matmul({.out = out,
                       .x = in,
                       .w = {hadamard_.get(), 0},
                       .w_dtype = DType::F32,
                       .M = T * heads,
                       .N = Dh,
                       .K = Dh});
    };
    rotate(qa, q, c.num_heads);
    rotate(ka, k, c.num_kv_heads);
  }
  const KvCacheLayout& kl = kv.layout();
  backend_.kv_write({.k = ka,
                     .v = v,
                     .k_cache = kv.keys(l),
                     .v_cache = kv.values(l),
                     .slot_mapping = slot_mapping_,
                     .k_dtype = kl.k_dtype,
                     .v_dtype = kl.v_dtype,
                     .num_tokens = T,
                     .num_kv_heads = c.num_kv_heads,
                     .head_dim = Dh,
                     .num_slots = kl.num_blocks * kl.block_size});
  const float scale =
      c.attention_scale > 0 ? c.attention_scale : 1.0f / std::sqrt(static_cast<float>(Dh));
  backend_.attention({.out = attn,
                      .q = qa,
                      .k_cache = kv.keys(l),
                      .v_cache = kv.values(l),
                      .block_tables = block_tables_,
                      .query_start = query_start_,
                      .seq_lens = seq_lens_,
                      .positions = positions_,
                      .generated_seqs = generated_seqs_,
                      .k_dtype = kl.k_dtype,
                      .v_dtype = kl.v_dtype,
                      .num_tokens = T,
                      .num_seqs = b.num_seqs(),
                      .num_heads = c.num_heads,
                      .num_kv_heads = c.num_kv_heads,
                      .head_dim = Dh,
                      .block_size = kl.block_size,
                      .max_blocks_per_seq = b.max_blocks_per_seq,
                      .num_blocks = kl.num_blocks,
                      .scale = scale,
                      .sliding_window = sliding ? c.sliding_window : 0,
                      .logit_softcap = c.attn_logit_softcap,
                      .variant = variant});
  if (c.sandwich_norms) {
    backend_.matmul({.out = h,
                     .x = attn,
                     .w = L.wo.view,
                     .bias = L.bo.view,
                     .w_dtype = L.wo.dtype,
                     .M = T,
                     .N = D,
                     .K = q_dim});
    backend_.rms_norm({.out = h,
                       .x = h,
                       .weight = L.attn_post_norm.view,
                       .num_rows = T,
                       .dim = D,
                       .eps = c.rms_eps});
    backend_.add({.out = x, .a = x, .b = h, .n = int64_t{T} * D});
  } else {
    backend_.matmul({.out = x,
                     .x = attn,
                     .w = L.wo.view,
                     .bias = L.bo.view,
                     .w_dtype = L.wo.dtype,
                     .M = T,
                     .N = D,
                     .K = q_dim,
                     .accumulate = true});
  }
  run_mlp(L, T);
}

// The MLP block's arguments for T tokens: h = norm(x) in, x += (or, with sandwich norms, h =) the
// block's output.
MlpArgs Decoder::mlp_args(const Layer& L, int T) const {
  const ModelConfig& c = config_;
  const BufView x{x_.get(), 0}, h{h_.get(), 0}, gate{gate_.get(), 0}, up{up_.get(), 0};
  return {.out = c.sandwich_norms ? h : x,
          .x = h,
          .gate = gate,
          .up = up,
          .w_gate = L.w_gate.view,
          .w_up = L.w_up.view,
          .w_down = L.w_down.view,
          .b_gate = L.b_gate.view,
          .b_up = L.b_up.view,
          .b_down = L.b_down.view,
          .gate_dtype = L.w_gate.dtype,
          .up_dtype = L.w_up.dtype,
          .down_dtype = L.w_down.dtype,
          .M = T,
          .D = c.hidden_size,
          .F = c.intermediate_size,
          .act = c.activation,
          .accumulate = !c.sandwich_norms};
}

// MLP block (gated): x += (act(h·Wg) * (h·Wu))·Wd, h = norm(x) (Gemma: x += norm(...)).
void Decoder::run_mlp(const Layer& L, int T) {
  const ModelConfig& c = config_;
  const int D = c.hidden_size;
  const BufView x{x_.get(), 0}, h{h_.get(), 0};
  backend_.rms_norm(
      {.out = h, .x = x, .weight = L.ffn_norm.view, .num_rows = T, .dim = D, .eps = c.rms_eps});
  backend_.mlp(mlp_args(L, T));
  if (c.sandwich_norms) {
    backend_.rms_norm({.out = h,
                       .x = h,
                       .weight = L.ffn_post_norm.view,
                       .num_rows = T,
                       .dim = D,
                       .eps = c.rms_eps});
    backend_.add({.out = x, .a = x, .b = h, .n = int64_t{T} * D});
  }
}

}  // namespace longbow::models
