// Argument structs shared by the Metal host code (src/longbow/backend/metal/) and the kernels in
// metal/*.metal. Each kernel takes one of these at [[buffer(0)]]; data buffers start at 1.
// Plain 32-bit scalars only, so the layout is the same in MSL, in the simulator and on the host.
#pragma once

// LONGBOW_HOST_DEFAULT(v): a member's default value on the host (`= v`); kernels never
// default-construct these structs, so MSL sees a plain member.
#if defined(__METAL_VERSION__)
typedef int kargs_i32;
typedef uint kargs_u32;
#define LONGBOW_KARGS_BEGIN
#define LONGBOW_KARGS_END
#define LONGBOW_HOST_DEFAULT(v)
#else
#include <cstdint>
#define LONGBOW_KARGS_BEGIN namespace longbow::metal {
#define LONGBOW_KARGS_END }
#define LONGBOW_HOST_DEFAULT(v) = v
typedef int32_t kargs_i32;
typedef uint32_t kargs_u32;
#endif

LONGBOW_KARGS_BEGIN

// Threads per threadgroup the host uses for row-parallel kernels (must match the kernels).
#define LONGBOW_ROW_THREADS 256
// matmul tiled kernel: output tile (rows of x) x (rows of w), k step, threads.
#define LONGBOW_MM_TILE_M 32
#define LONGBOW_MM_TILE_N 32
#define LONGBOW_MM_TILE_K 32
#define LONGBOW_MM_THREADS 128
// matmul matrix-vector kernel: SIMD groups (= output rows) per threadgroup.
#define LONGBOW_MV_ROWS 4
// sample: threads per row.
#define LONGBOW_SAMPLE_THREADS 512
// attention fused decode / flash prefill (attention_decode.metal, attention_flash.metal).
#define LONGBOW_ATTN_MAX_HEAD_DIM 256      // largest head_dim of the fused kernels
#define LONGBOW_ATTN_DECODE_MAX_QUERY 2    // Auto: sequences with <= this many query tokens decode
#define LONGBOW_ATTN_MIN_SPLIT_KEYS 256    // flash-decoding: a key split is never shorter
#define LONGBOW_ATTN_DECODE_THREADS 128    // decode threadgroup: 4 SIMD groups over keys
#define LONGBOW_ATTN_DECODE_HEADS 8        // most query heads per decode threadgroup
#define LONGBOW_ATTN_FLASH_ROWS 32         // flash prefill: query rows (tokens x heads) per tile
#define LONGBOW_ATTN_FLASH_THREADS 128     // 4 SIMD groups, 8 rows each
#define LONGBOW_ATTN_FLASH_KV_FLOATS 4096  // K/V tile (key_tile, head_dim padded to 8) in f32
#define LONGBOW_ATTN_FLASH_MAX_KEYS 64     // most keys per tile

// embed: out (num_tokens, dim) = table[token_ids]
struct EmbedKArgs {
  kargs_i32 num_tokens, dim, vocab_size;
  kargs_u32 row_bytes;  // bytes of one table row
  float scale;          // rows are multiplied by it
};

// rms_norm: out = rms_norm(x) * weight
struct RmsNormKArgs {
  kargs_i32 num_rows, dim;
  float eps;
};

// matmul: out (M, N) = x (M, K) . w (N, K)^T (+ bias) (+ out when accumulate)
struct MatmulKArgs {
  kargs_i32 M, N, K;
  kargs_u32 row_bytes;  // bytes of one w row
  kargs_i32 has_bias, accumulate;
};

// rope: in place on q (T, H, D) and k (T, Hkv, D)
struct RopeKArgs {
  kargs_i32 num_tokens, num_heads, num_kv_heads, head_dim, rot_dim, interleaved;
};

// kv_write: k/v (T, Hkv, D) f32 -> caches (num_slots, Hkv, D)
struct KvWriteKArgs {
  kargs_i32 num_tokens, row_elems, num_slots;  // row_elems = Hkv * D
};

// copy_blocks: cache (num_planes, num_blocks, block_bytes), pairs (num_pairs, 2)
struct CopyBlocksKArgs {
  kargs_i32 num_pairs, num_planes, num_blocks;
  kargs_u32 block_words;  // block_bytes / word size of the variant
};

// attention split baseline: scores -> softmax -> values with a scratch (T * H, ctx_cap) f32
struct AttentionKArgs {
  kargs_i32 num_tokens, num_seqs, num_heads, num_kv_heads, head_dim;
  kargs_i32 block_size, max_blocks_per_seq, num_blocks;
  kargs_i32 ctx_cap;  // scores row stride = max_blocks_per_seq * block_size
  float scale;
  kargs_i32 sliding_window;  // 0: off; else position p sees keys p - sliding_window < j <= p
  float logit_softcap;       // 0: off; else scores s -> logit_softcap * tanh(s / logit_softcap)
  kargs_i32 has_generated;   // 1: generated_seqs is bound (AttentionArgs); 0: every sequence 0
};

// attention_decode_{fused,stage1}[_softcap]_<cache> and attention_decode_merge_f32. Grid: (decode
// tokens, num_kv_heads * num_head_chunks, num_splits).
struct AttentionDecodeKArgs {
  AttentionKArgs base;
  kargs_i32 select;           // 0: the Auto rule (attn_is_decode); 1: every sequence
  kargs_i32 num_splits;       // most key splits per token (flash-decoding); 1: none
  kargs_i32 head_chunk;       // query heads per threadgroup (<= LONGBOW_ATTN_DECODE_HEADS)
  kargs_i32 num_head_chunks;  // ceil(group / head_chunk)
};

// attention_flash_prefill[_window][_softcap]_<cache>. Grid: (query tiles, num_kv_heads *
// num_head_chunks).
struct AttentionFlashKArgs {
  AttentionKArgs base;
  kargs_i32 select;           // 0: the Auto rule (attn_is_prefill); 1: every sequence
  kargs_i32 head_chunk;       // query heads per tile (<= LONGBOW_ATTN_FLASH_ROWS)
  kargs_i32 num_head_chunks;  // ceil(group / head_chunk)
  kargs_i32 tile_tokens;      // query tokens per tile = LONGBOW_ATTN_FLASH_ROWS / head_chunk
  kargs_i32 key_tile;         // keys per K/V tile, a multiple of 8
  kargs_i32 dim_pad;          // head_dim rounded up to a multiple of 8
};

// glu / add / softcap / get_rows
struct GluKArgs {
  kargs_u32 n;  // num_rows * dim
};
struct SoftcapKArgs {
  kargs_u32 n;
  float cap;
};
struct AddKArgs {
  kargs_u32 n;
};
struct GetRowsKArgs {
  kargs_i32 num_rows, dim, num_src_rows;
};

// sample: one threadgroup per logits row
struct SampleKArgs {
  kargs_i32 num_rows, vocab_size;
  kargs_i32 sort_size;         // power of two >= vocab_size (bitonic sort length)
  kargs_i32 penalty_capacity;  // elements in the bound penalty_tokens buffer (slices are clamped)
  kargs_i32 max_top;           // row stride of the top-logprob outputs (0: none bound)
  kargs_i32 probs_rows;        // rows of the bound probs buffer (0: none bound)
  kargs_i32 num_mask_rows;     // rows of the bound allowed-token masks (0: none bound)
  kargs_i32 mask_words;        // u32 words per mask row, ceil(vocab_size / 32)
};

// Per-row sampling parameters (one row per logits row): filled by the engine, read by the CPU
// sampler and the sample kernel (longbow::SampleRowParams in backend.h is this struct).
struct SampleRowParams {
  float temperature LONGBOW_HOST_DEFAULT(0.0f);  // 0 = greedy
  kargs_i32 top_k LONGBOW_HOST_DEFAULT(0);       // 0 = off
  float top_p LONGBOW_HOST_DEFAULT(1.0f);        // 1 = off
  float min_p LONGBOW_HOST_DEFAULT(0.0f);        // 0 = off
  // 1 = off (CTRL-style: divide positive logits, multiply negative)
  float repetition_penalty LONGBOW_HOST_DEFAULT(1.0f);
  float presence_penalty LONGBOW_HOST_DEFAULT(0.0f);   // subtracted once per token already seen
  float frequency_penalty LONGBOW_HOST_DEFAULT(0.0f);  // subtracted per occurrence
  kargs_u32 seed_lo LONGBOW_HOST_DEFAULT(0);           // Philox key (philox.h)
  kargs_u32 seed_hi LONGBOW_HOST_DEFAULT(0);
  kargs_u32 counter LONGBOW_HOST_DEFAULT(0);        // Philox counter: token index in the request
  kargs_i32 penalty_start LONGBOW_HOST_DEFAULT(0);  // slice of the penalty token list
  kargs_i32 penalty_count LONGBOW_HOST_DEFAULT(0);
  // Slice of the same token list holding ids that cannot be drawn (logit set to -inf after the
  // penalties), e.g. end-of-sequence and stop ids before min_tokens.
  kargs_i32 ban_start LONGBOW_HOST_DEFAULT(0);
  kargs_i32 ban_count LONGBOW_HOST_DEFAULT(0);
  // Most likely tokens to report (log-softmax of the raw logits, like the chosen logprob), in
  // 0..SampleArgs::MAX_TOP; 0 = none. Per row: a batch mixes requests asking for different k,
  // and rows asking for none skip the selection. The kernel clamps it to 0..max_top.
  kargs_i32 num_top_logprobs LONGBOW_HOST_DEFAULT(0);
  // Philox counter word 1 of the row's draw (philox.h LONGBOW_PHILOX_STREAM_*).
  kargs_u32 stream LONGBOW_HOST_DEFAULT(0);
  // Speculative decoding with sampled drafts, through the probs buffer (rows of vocab_size f32):
  // probs_row >= 0: the row also writes the distribution its draw came from (after penalties,
  // bans, temperature, top_k / top_p / min_p; one-hot at temperature 0) to that probs row.
  // draft_row >= 0: rejection sampling of draft_token, drawn from the distribution q in that probs
  // row, against this row's distribution p: keep it iff u * q(x) < p(x), u from the ACCEPT stream
  // (probability min(1, p/q)), else draw from norm(max(0, p - q)) in index order with the row's
  // draw; the output then has distribution p (temperature 0: the argmax, q is not read).
  kargs_i32 probs_row LONGBOW_HOST_DEFAULT(-1);
  kargs_i32 draft_row LONGBOW_HOST_DEFAULT(-1);
  kargs_i32 draft_token LONGBOW_HOST_DEFAULT(-1);
  // Allowed-token mask (structured output): row of SampleArgs::allowed, bit (t % 32) of word t / 32
  // set = token t may be drawn; -1 = every token. A disallowed token's logit is -inf before the
  // penalties, bans, temperature, filters and the probs / draft handling, so greedy is the argmax
  // over allowed ids and draws only allowed ids. Logprobs stay those of the raw logits.
  kargs_i32 mask_row LONGBOW_HOST_DEFAULT(-1);
};

LONGBOW_KARGS_END

#if !defined(__METAL_VERSION__)
static_assert(sizeof(longbow::metal::EmbedKArgs) == 20);
static_assert(sizeof(longbow::metal::RmsNormKArgs) == 12);
static_assert(sizeof(longbow::metal::MatmulKArgs) == 24);
static_assert(sizeof(longbow::metal::RopeKArgs) == 24);
static_assert(sizeof(longbow::metal::KvWriteKArgs) == 12);
static_assert(sizeof(longbow::metal::CopyBlocksKArgs) == 16);
static_assert(sizeof(longbow::metal::AttentionKArgs) == 52);
static_assert(sizeof(longbow::metal::AttentionDecodeKArgs) == 68);
static_assert(sizeof(longbow::metal::AttentionFlashKArgs) == 76);
static_assert(sizeof(longbow::metal::GluKArgs) == 4);
static_assert(sizeof(longbow::metal::AddKArgs) == 4);
static_assert(sizeof(longbow::metal::SoftcapKArgs) == 8);
static_assert(sizeof(longbow::metal::GetRowsKArgs) == 12);
static_assert(sizeof(longbow::metal::SampleKArgs) == 32);
static_assert(sizeof(longbow::metal::SampleRowParams) == 80);
#endif
