// Metal sample op encoder: one threadgroup per logits row (metal/sample.metal), with scratch for
// the working logits and the sort keys.
#include <stdexcept>
#include <string>

#include "kargs.h"
#include "longbow/backend/metal/kernel_names.h"
#include "longbow/backend/metal/metal_backend.h"
#include "longbow/core/check.h"

namespace longbow::metal {

namespace {
constexpr size_t VALS_SLOT = 1, KEYS_SLOT = 2;  // scratch slots (attention uses 0)

}  // namespace

void MetalBackend::sample(const SampleArgs& a) {
  const std::string where = name_ + ".sample";
  require(a.num_rows >= 0 && a.vocab_size > 0, where,
          "expected num_rows >= 0 and vocab_size > 0, found " + std::to_string(a.num_rows) + ", " +
              std::to_string(a.vocab_size));
  require(a.vocab_size <= (1 << 30), where,
          "expected vocab_size <= 2^30, found " + std::to_string(a.vocab_size));
  require(a.max_top >= 0 && a.max_top <= SampleArgs::MAX_TOP, where,
          "expected max_top in 0.." + std::to_string(SampleArgs::MAX_TOP) + ", found " +
              std::to_string(a.max_top));
  const size_t R = a.num_rows, V = a.vocab_size, K = a.max_top;
  const Bound ids = bind_view(a.out_ids, R * 4, "sample", "out_ids");            // (num_rows,) i32
  const Bound lps = bind_view(a.out_logprobs, R * 4, "sample", "out_logprobs");  // (num_rows,) f32
  // (num_rows, max_top) i32 / f32; when max_top is 0 the kernel touches neither (ids stands in).
  const Bound top_ids = K == 0 ? ids : bind_view(a.out_top_ids, R * K * 4, "sample", "out_top_ids");
  const Bound top_lps =
      K == 0 ? ids : bind_view(a.out_top_logprobs, R * K * 4, "sample", "out_top_logprobs");
  const Bound logits = bind_view(a.logits, R * V * 4, "sample", "logits");  // (num_rows, vocab) f32
  const Bound params =
      bind_view(a.params, R * sizeof(SampleRowParams), "sample", "params");  // (num_rows,)
  // (capacity,) i32: the kernel clamps each row's slice to what is bound.
  size_t capacity = 0;
  Bound toks = logits;
  if (!a.penalty_tokens.empty()) {
    const size_t bytes = a.penalty_tokens.buffer->bytes();
    capacity = a.penalty_tokens.offset < bytes ? (bytes - a.penalty_tokens.offset) / 4 : 0;
    toks = bind_view(a.penalty_tokens, capacity * 4, "sample", "penalty_tokens");
  }
  require(a.num_probs_rows >= 0, where,
          "expected num_probs_rows >= 0, found " + std::to_string(a.num_probs_rows));
  // (num_probs_rows, vocab) f32; when none, the kernel touches no probs row (logits stand in).
  const Bound probs = a.num_probs_rows == 0
                          ? logits
                          : bind_view(a.probs, a.num_probs_rows * V * 4, "sample", "probs");
  require(
      a.num_mask_rows >= 0 && (a.num_mask_rows == 0 || a.mask_words == (a.vocab_size + 31) / 32),
      where,
      "expected num_mask_rows >= 0 and mask_words = ceil(vocab_size / 32) = " +
          std::to_string((a.vocab_size + 31) / 32) + ", found " + std::to_string(a.num_mask_rows) +
          ", " + std::to_string(a.mask_words));
  // (num_mask_rows, mask_words) u32; when none, the kernel reads no mask (logits stand in).
  const Bound allowed =
      a.num_mask_rows == 0
          ? logits
          : bind_view(a.allowed, static_cast<size_t>(a.num_mask_rows) * a.mask_words * 4, "sample",
                      "allowed");
  if (R == 0) return;
  int sort_size = 1;
  while (static_cast<size_t>(sort_size) < V) sort_size <<= 1;
  const Bound vals = scratch(VALS_SLOT, R * V * 4);  // (num_rows, vocab) f32
  const Bound keys =
      scratch(KEYS_SLOT, R * static_cast<size_t>(sort_size) * 8);  // (num_rows, sort_size) u64
  SampleKArgs k{a.num_rows,      a.vocab_size,
                sort_size,       static_cast<int32_t>(std::min<size_t>(capacity, 0x7fffffff)),
                a.max_top,       a.num_probs_rows,
                a.num_mask_rows, a.num_mask_rows == 0 ? 0 : a.mask_words};
  encode(kernel_name(Op::Sample, "", DType::F32), &k, sizeof k,
         {ids, lps, top_ids, top_lps, logits, params, toks, vals, keys, probs, allowed},
         {static_cast<uint32_t>(R), 1, 1}, {LONGBOW_SAMPLE_THREADS, 1, 1});
}

}  // namespace longbow::metal
