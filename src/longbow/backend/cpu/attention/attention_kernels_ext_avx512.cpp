// Sliding-window and logit soft-cap instantiations of the AVX-512 attention items (the plain ones
// are in attention_kernels_avx512.cpp, which calls these when a feature is on; only when
// cpu_isa() has avx512). Same target region as that file.
#include "longbow/backend/cpu/attention/attention_common.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")
#pragma GCC diagnostic push
// As in attention_kernels_avx512.cpp: the _mm512_undefined pass-through operands of the unpack,
// shuffle, cvtph and reduce intrinsics read as (maybe) uninitialized once inlined (false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include "longbow/backend/cpu/attention/attention_decode_simd.h"
#include "longbow/backend/cpu/attention/attention_simd_avx512.h"
#include "longbow/backend/cpu/attention/attention_tile_simd.h"

namespace longbow::cpu {

void avx512_prefill_item_ext(const AttnBatch& b, const AttnItem& it, float* f32) {
  if (b.window <= 0) {
    prefill_item_t<Avx512, false, true>(b, it, f32);
  } else if (b.softcap > 0.0f) {
    prefill_item_t<Avx512, true, true>(b, it, f32);
  } else {
    prefill_item_t<Avx512, true, false>(b, it, f32);
  }
}

bool avx512_decode_item_quant(const AttnBatch& b, const AttnItem& it, float* f32, int32_t* i32,
                              float* partials) {
  return b.softcap > 0.0f ? decode_item_kv<Avx512, true>(b, it, f32, i32, partials)
                          : decode_item_kv<Avx512, false>(b, it, f32, i32, partials);
}

void avx512_decode_item_softcap(const AttnBatch& b, const AttnItem& it, float* f32, int32_t* i32,
                                float* partials) {
  if (b.k.f16) {
    decode_item_t<Avx512, DType::F16, DType::F16, true>(b, it, f32, i32, partials);
  } else {
    decode_item_t<Avx512, DType::F32, DType::F32, true>(b, it, f32, i32, partials);
  }
}

}  // namespace longbow::cpu

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

#endif
