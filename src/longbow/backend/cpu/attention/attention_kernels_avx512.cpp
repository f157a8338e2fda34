// AVX-512 attention kernels: the transposed FlashAttention-2 prefill item (attention_tile_simd.h)
// at 16 lanes with up to 4 row vectors (64 rows) per register block, and the fused decode item
// (attention_decode_simd.h) at 16 lanes; the generic tile kernels stay AVX2
// (attention_kernels_avx2.cpp).
//
// The file is compiled with the baseline flags; a target pragma (GCC) or attribute (clang)
// enables AVX-512 for these functions only; attn_kernels() uses them only when cpu_isa() has
// avx512 (attn_avx512_kernels() needs the AVX2 kernels, whose tile kernels it reuses).
// The sliding-window / soft-cap instantiations of the items are in
// attention_kernels_ext_avx512.cpp.
#include "longbow/backend/cpu/attention/attention_common.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")
// GCC 12 reports the _mm512_undefined_ps() pass-through operand of the unpack, shuffle and
// cvtph intrinsics as maybe uninitialized once the decode score tree inlines them (false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include "longbow/backend/cpu/attention/attention_decode_simd.h"
#include "longbow/backend/cpu/attention/attention_simd_avx512.h"
#include "longbow/backend/cpu/attention/attention_tile_simd.h"

namespace longbow::cpu {

namespace {

void avx512_prefill_item(const AttnBatch& b, const AttnItem& it, float* f32) {
  if (b.window > 0 || b.softcap > 0.0f) {
    avx512_prefill_item_ext(b, it, f32);
  } else {
    prefill_item_t<Avx512, false, false>(b, it, f32);
  }
}

size_t avx512_prefill_scratch(const AttnBatch& b, int rows) {
  return prefill_item_scratch(rows, b.head_dim, attn_tile_keys(b.block_size), Avx512::W);
}

// Head dims that are not a multiple of 16 fall back to the AVX2 decode item (8 lanes).
bool avx512_decode_item(const AttnBatch& b, const AttnItem& it, float* f32, int32_t* i32,
                        float* partials) {
  if (b.head_dim % Avx512::W != 0)
    return attn_avx2_kernels()->decode_item(b, it, f32, i32, partials);
  if (b.k.type != b.v.type || b.staged()) {  // block-typed or mixed planes
    return avx512_decode_item_quant(b, it, f32, i32, partials);
  }
  if (b.softcap > 0.0f) {  // a sliding window is in the item's key range already
    avx512_decode_item_softcap(b, it, f32, i32, partials);
  } else if (b.k.f16) {
    decode_item_t<Avx512, DType::F16, DType::F16, false>(b, it, f32, i32, partials);
  } else {
    decode_item_t<Avx512, DType::F32, DType::F32, false>(b, it, f32, i32, partials);
  }
  return true;
}

size_t avx512_decode_scratch(const AttnBatch& b) {
  return std::max(decode_item_scratch(b.num_kv_heads, b.group, b.head_dim,
                                      attn_decode_tile_keys(b.block_size), Avx512::W),
                  attn_avx2_kernels()->decode_scratch(b));
}

}  // namespace

}  // namespace longbow::cpu

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

namespace longbow::cpu {

namespace {

const AttnKernels* make_avx512() {
  const AttnKernels* avx2 = attn_avx2_kernels();
  if (avx2 == nullptr) return nullptr;
  static AttnKernels k = *avx2;  // decode tile kernels stay AVX2
  k.name = "avx512";
  k.prefill_item = avx512_prefill_item;
  k.prefill_scratch = avx512_prefill_scratch;
  k.decode_item = avx512_decode_item;
  k.decode_scratch = avx512_decode_scratch;
  return &k;
}

}  // namespace

const AttnKernels* attn_avx512_kernels() {
  static const AttnKernels* k = make_avx512();
  return k;
}

}  // namespace longbow::cpu

#else

namespace longbow::cpu {
const AttnKernels* attn_avx512_kernels() { return nullptr; }
}  // namespace longbow::cpu

#endif
