// The backend seam: buffers and a small set of fused ops. The model and engine are written
// once against this interface; cpu, metal and metal-sim implement it (DESIGN.md §3).
//
// Conventions for every op:
//  - a BufView is (buffer, byte offset); shapes are given explicitly, row-major, outermost first;
//  - activations are f32; weights may be any DType the backend supports (see supports());
//  - ops are enqueued in order; results are visible to the host only after synchronize()
//    (the CPU backend runs them eagerly; Metal records one command buffer per step).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kargs.h"  // SampleRowParams, shared with the sample kernel
#include "longbow/core/architecture.h"
#include "longbow/core/dtype.h"
#include "longbow/sampling_params.h"  // MAX_TOP_LOGPROBS

namespace longbow {

// Device memory owned by one backend. On unified memory host_ptr() is valid for every buffer.
class Buffer {
 public:
  virtual ~Buffer() = default;
  // Size in bytes.
  virtual size_t bytes() const = 0;
  // Host-visible address of byte 0, or nullptr when the memory is not host-visible.
  virtual void* host_ptr() const = 0;
};

struct BufView {
  const Buffer* buffer = nullptr;
  size_t offset = 0;  // bytes
  bool empty() const { return buffer == nullptr; }
  BufView at(size_t extra_bytes) const { return {buffer, offset + extra_bytes}; }
};

enum class Op : uint8_t {
  Embed,
  RmsNorm,
  Matmul,
  Rope,
  KvWrite,
  Attention,
  Glu,
  Add,
  Softcap,
  GetRows,
  Sample,
  CopyBlocks,
};

// Attention algorithm variants (the split one is the reference baseline).
enum class AttentionVariant : uint8_t { Auto, Split, FusedDecode, FlashPrefill };

// ---- per-op arguments (mirrored by metal/kargs.h for the Metal kernels) ----

struct EmbedArgs {
  BufView out;        // (num_tokens, dim) f32
  BufView token_ids;  // (num_tokens,) i32
  BufView table;      // (vocab_size, dim) table_dtype
  DType table_dtype = DType::F32;
  int num_tokens = 0, dim = 0, vocab_size = 0;
  float scale = 1.0f;  // out rows are multiplied by it (Gemma: sqrt(dim))
};

// out = rms_norm(x) * weight, row by row (out may alias x).
struct RmsNormArgs {
  BufView out;     // (num_rows, dim) f32
  BufView x;       // (num_rows, dim) f32
  BufView weight;  // (dim,) f32
  int num_rows = 0, dim = 0;
  float eps = 1e-5f;
};

// out (M, N) = x (M, K) · wᵀ where w is (N, K) in w_dtype (+ bias (N,) f32 if set).
// When accumulate is true, out += x · wᵀ (fuses the residual add).
struct MatmulArgs {
  BufView out;   // (M, N) f32
  BufView x;     // (M, K) f32
  BufView w;     // (N, K) w_dtype, from Backend::matmul_weight (layout is the backend's)
  BufView bias;  // (N,) f32, optional
  DType w_dtype = DType::F32;
  int M = 0, N = 0, K = 0;
  bool accumulate = false;
};

// Rotary position embedding applied in place to q and k.
// interleaved = true rotates adjacent pairs (x[2i], x[2i+1]) (GGUF llama weights);
// false rotates halves (x[i], x[i + rot_dim/2]) (HF weights). Both give the same model.
struct RopeArgs {
  BufView q;          // (num_tokens, num_heads, head_dim) f32
  BufView k;          // (num_tokens, num_kv_heads, head_dim) f32
  BufView positions;  // (num_tokens,) i32
  BufView inv_freq;   // (rot_dim / 2,) f32: per-pair frequency, rope scaling already applied
  int num_tokens = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0, rot_dim = 0;
  bool interleaved = false;
};

// Paged KV cache layout for one layer: (num_blocks, block_size, num_kv_heads, head_dim).
struct KvWriteArgs {
  BufView k, v;  // (num_tokens, num_kv_heads, head_dim) f32
  // (num_blocks, block_size, num_kv_heads, head_dim) in k_dtype / v_dtype
  BufView k_cache, v_cache;
  BufView slot_mapping;  // (num_tokens,) i32: block * block_size + offset; < 0 skips the token
  DType k_dtype = DType::F16, v_dtype = DType::F16;  // chosen independently (op_checks.h)
  int num_tokens = 0, num_kv_heads = 0, head_dim = 0, num_slots = 0;
};

// Causal attention over the paged cache for a flattened varlen batch (DESIGN.md §2).
// Query token t of sequence s (query_start[s] <= t < query_start[s+1]) at position p attends
// to keys 0..p of s, read through block_tables[s]; with sliding_window W > 0 only to keys
// p - W < j <= p (W keys including itself; Mistral, Gemma 2/3). Scores are s = scale * q·k,
// or logit_softcap * tanh(s / logit_softcap) when logit_softcap > 0 (Gemma 2), before the softmax.
struct AttentionArgs {
  BufView out;  // (num_tokens, num_heads, head_dim) f32
  BufView q;    // (num_tokens, num_heads, head_dim) f32
  // (num_blocks, block_size, num_kv_heads, head_dim) in k_dtype / v_dtype
  BufView k_cache, v_cache;
  BufView block_tables;  // (num_seqs, max_blocks_per_seq) i32
  BufView query_start;   // (num_seqs + 1,) i32
  BufView seq_lens;      // (num_seqs,) i32: context length after this step
  BufView positions;     // (num_tokens,) i32
  // (num_seqs,) i32: 1 where the sequence's query tokens are generated ones (decode or speculative
  // verify; attention_policy.h), 0 for prompt tokens. Empty: every sequence 0.
  BufView generated_seqs;
  DType k_dtype = DType::F16, v_dtype = DType::F16;
  int num_tokens = 0, num_seqs = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0;
  int block_size = 16, max_blocks_per_seq = 0, num_blocks = 0;
  float scale = 1.0f;
  int sliding_window = 0;      // 0 = off (full causal); else keys p - sliding_window < j <= p
  float logit_softcap = 0.0f;  // 0 = off; else s -> logit_softcap * tanh(s / logit_softcap)
  AttentionVariant variant = AttentionVariant::Auto;
};

// Gated activation: out (M, F) = act(gate) * up, gate and up (M, F) f32. SiLU (SwiGLU) or the
// tanh approximation of GELU (GeGLU, Gemma): 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))).
struct GluArgs {
  BufView out, gate, up;
  int num_rows = 0, dim = 0;
  Activation act = Activation::Silu;
};

// Gated MLP block: out (M, D) = (act(x·W_gateᵀ + b_gate) * (x·W_upᵀ + b_up))·W_downᵀ + b_down,
// or out += ... when accumulate (fuses the residual add). Each weight comes from
// Backend::matmul_weight; gate and up are scratch the op overwrites.
struct MlpArgs {
  BufView out;                   // (M, D) f32
  BufView x;                     // (M, D) f32
  BufView gate, up;              // (M, F) f32 scratch
  BufView w_gate, w_up;          // (F, D) gate_dtype / up_dtype
  BufView w_down;                // (D, F) down_dtype
  BufView b_gate, b_up, b_down;  // (F,), (F,), (D,) f32, optional
  DType gate_dtype = DType::F32, up_dtype = DType::F32, down_dtype = DType::F32;
  int M = 0, D = 0, F = 0;
  Activation act = Activation::Silu;
  bool accumulate = false;
};

// Who runs the MLP block: the chooser (per shape, from measurements), always our kernels, or
// always the vendor library (an error where the backend has none for the weights).
enum class MlpPath : uint8_t { Auto, Custom, Vendor };
const char* mlp_path_name(MlpPath p);
// "auto" | "custom" | "vendor"; throws std::invalid_argument naming the valid names.
MlpPath mlp_path_from_name(const std::string& name);

// out = a + b elementwise over n f32.
struct AddArgs {
  BufView out, a, b;
  int64_t n = 0;
};

// Soft-capping: out = cap * tanh(x / cap) elementwise over n f32 (Gemma 2 final logits).
struct SoftcapArgs {
  BufView out, x;
  int64_t n = 0;
  float cap = 0.0f;  // > 0
};

// out (num_rows, dim) = x[rows] where x is (num_src_rows, dim) f32.
struct GetRowsArgs {
  BufView out, x, rows;  // rows: (num_rows,) i32
  int num_rows = 0, dim = 0, num_src_rows = 0;
};

// Per-row sampling parameters (one row per logits row); defined once in metal/kargs.h, the
// layout the sample kernel reads.
using SampleRowParams = metal::SampleRowParams;

// Samples one token per logits row on the device; only ids and logprobs come back (the chosen
// one and each row's num_top_logprobs most likely, never the whole logits row).
struct SampleArgs {
  static constexpr int MAX_TOP = MAX_TOP_LOGPROBS;  // most top logprobs per row
  BufView out_ids;                                  // (num_rows,) i32
  // (num_rows,) f32: log-softmax of the raw logits at the chosen id (before the allowed-token
  // mask, penalties, bans and temperature).
  BufView out_logprobs;
  // Row r's first min(num_top_logprobs, vocab_size) entries: ids by (raw logit desc, id asc, NaN
  // last) and their log-softmax values, of the raw logits too (a disallowed id may appear); the
  // rest of the row is id -1, logprob -inf. Unused
  // (may be empty) when max_top is 0.
  BufView out_top_ids;       // (num_rows, max_top) i32
  BufView out_top_logprobs;  // (num_rows, max_top) f32
  BufView logits;            // (num_rows, vocab_size) f32, may be modified (scratch)
  BufView params;            // (num_rows,) SampleRowParams
  BufView
      penalty_tokens;  // (total,) i32: tokens seen so far / banned ids per row, sliced by params
  // (num_probs_rows, vocab_size) f32: distributions written by rows with probs_row, read by rows
  // with draft_row (speculative decoding, SampleRowParams); a call does not do both. Unused (may
  // be empty) when num_probs_rows is 0.
  BufView probs;
  // (num_mask_rows, mask_words) u32: allowed-token masks, indexed by SampleRowParams::mask_row;
  // bit (t % 32) of word t / 32 set = token t allowed. Unused (may be empty) when num_mask_rows
  // is 0.
  BufView allowed;
  int num_rows = 0, vocab_size = 0;
  int max_top = 0;  // row stride of the top outputs, 0..MAX_TOP; bounds every num_top_logprobs
  int num_probs_rows = 0;
  int num_mask_rows = 0;
  int mask_words = 0;  // ceil(vocab_size / 32) when num_mask_rows > 0
};

// Copies whole KV blocks src[i] -> dst[i] in every layer's cache (copy-on-write).
struct CopyBlocksArgs {
  BufView cache;  // (num_planes, num_blocks, block_bytes): e.g. every layer's K plane
  BufView pairs;  // (num_pairs, 2) i32: (src, dst)
  int num_pairs = 0, num_planes = 0, num_blocks = 0;
  size_t block_bytes = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  // "cpu", "metal" or "metal-sim".
  virtual std::string name() const = 0;

  // ---- memory ----
  // New device buffer of `bytes` bytes (zero-initialized).
  virtual std::unique_ptr<Buffer> alloc(size_t bytes) = 0;
  // Wraps host memory (e.g. mmap'ed weights) without copying when the device can; the memory
  // must outlive the buffer.
  virtual std::unique_ptr<Buffer> wrap_host(const void* ptr, size_t bytes) = 0;
  // A matmul weight (N, K) in `dtype` made from host memory (e.g. mmap'ed file data). The
  // backend may keep the rows as they are (default: wrap_host, so the memory must outlive the
  // buffer) or re-lay them out for its kernels (the CPU backend packs Q4_0/Q4_1/Q8_0 into
  // 16-row panels and copies). MatmulArgs::w must be a view at offset 0 of such a buffer.
  virtual std::unique_ptr<Buffer> matmul_weight(const void* ptr, DType dtype, int N, int K);
  // Host → device and device → host copies; download waits for pending work.
  virtual void upload(BufView dst, const void* src, size_t bytes) = 0;
  virtual void download(void* dst, BufView src, size_t bytes) = 0;

  // KV block size (tokens) used when the engine is given none: 16 by default (GPU kernels read a
  // block per SIMD group); the CPU backend prefers 8.
  virtual int preferred_block_size() const { return 16; }
  // Whether op can run with this dtype (weight dtype for Matmul/Embed, cache dtype for KV ops).
  virtual bool supports(Op op, DType dtype) const = 0;
  // Whether a KV cache with K in k_dtype and V in v_dtype can run (kv_write and attention).
  // Default: each type supported by both ops.
  virtual bool supports_kv_cache(DType k_dtype, DType v_dtype) const {
    return supports(Op::KvWrite, k_dtype) && supports(Op::Attention, k_dtype) &&
           supports(Op::KvWrite, v_dtype) && supports(Op::Attention, v_dtype);
  }
  // Waits until every enqueued op has completed.
  virtual void synchronize() = 0;

  // ---- ops (contracts on the Args structs above) ----
  virtual void embed(const EmbedArgs& a) = 0;
  virtual void rms_norm(const RmsNormArgs& a) = 0;
  virtual void matmul(const MatmulArgs& a) = 0;
  // Several matmuls that read the same activation (same x view, M and K), e.g. the q/k/v or the
  // gate/up projections of a layer: each part as matmul(part) would compute it, bit for bit. A
  // backend may run them as one job (the CPU quantizes x once and splits all parts' rows over its
  // threads in one dispatch); the default runs matmul on each part in order.
  virtual void matmul_group(std::span<const MatmulArgs> parts);
  virtual void rope(const RopeArgs& a) = 0;
  virtual void kv_write(const KvWriteArgs& a) = 0;
  virtual void attention(const AttentionArgs& a) = 0;
  virtual void glu(const GluArgs& a) = 0;
  // The gated MLP block. Default (custom): matmul_group(gate, up), glu, matmul(down) — the same
  // ops, bit for bit, as a model issuing them itself. A backend may hand the block to a vendor
  // library (the CPU's BLAS, Metal's MPSGraph) as its MlpPath says.
  virtual void mlp(const MlpArgs& a);
  // Throws std::invalid_argument when mlp() would refuse blocks like `a` (only its dtypes, biases
  // and activation are read): the model checks its layers at load. Default: refuses nothing.
  virtual void check_mlp(const MlpArgs& a) const { (void)a; }
  // How mlp() chooses and what it chose so far, one line per entry ("path: ...", then measured
  // shapes), for `longbow info` and LLM.info().
  virtual std::vector<std::string> mlp_report() const { return {"path: custom (no vendor path)"}; }
  virtual void add(const AddArgs& a) = 0;
  virtual void softcap(const SoftcapArgs& a) = 0;
  virtual void get_rows(const GetRowsArgs& a) = 0;
  virtual void sample(const SampleArgs& a) = 0;
  virtual void copy_blocks(const CopyBlocksArgs& a) = 0;
};

struct BackendOptions {
  int num_threads = 0;            // CPU: 0 = number of cores
  MlpPath mlp = MlpPath::Custom;  // who runs the MLP block (Backend::mlp)
};

// Creates a backend by name ("cpu", "metal", "metal-sim", "auto"); throws std::invalid_argument
// naming the available backends when the name is unknown or not built in.
std::unique_ptr<Backend> create_backend(const std::string& name,
                                        const BackendOptions& options = {});
// Names of the backends compiled into this build and usable on this machine.
std::vector<std::string> available_backends();

}  // namespace longbow
