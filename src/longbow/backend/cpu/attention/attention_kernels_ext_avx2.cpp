// Sliding-window and logit soft-cap instantiations of the AVX2 attention items (the plain ones are
// in attention_kernels_avx2.cpp, which calls these when a feature is on). Compiled with -mavx2
// -mfma -mf16c like it.
#include <immintrin.h>

#include "longbow/backend/cpu/attention/attention_common.h"
#include "longbow/backend/cpu/attention/attention_decode_simd.h"
#include "longbow/backend/cpu/attention/attention_simd_avx2.h"
#include "longbow/backend/cpu/attention/attention_tile_simd.h"

namespace longbow::cpu {

void avx2_prefill_item_ext(const AttnBatch& b, const AttnItem& it, float* f32) {
  if (b.window <= 0) {
    prefill_item_t<Avx2, false, true>(b, it, f32);
  } else if (b.softcap > 0.0f) {
    prefill_item_t<Avx2, true, true>(b, it, f32);
  } else {
    prefill_item_t<Avx2, true, false>(b, it, f32);
  }
}

bool avx2_decode_item_quant(const AttnBatch& b, const AttnItem& it, float* f32, int32_t* i32,
                            float* partials) {
  return b.softcap > 0.0f ? decode_item_kv<Avx2, true>(b, it, f32, i32, partials)
                          : decode_item_kv<Avx2, false>(b, it, f32, i32, partials);
}

void avx2_decode_item_softcap(const AttnBatch& b, const AttnItem& it, float* f32, int32_t* i32,
                              float* partials) {
  if (b.k.f16) {
    decode_item_t<Avx2, DType::F16, DType::F16, true>(b, it, f32, i32, partials);
  } else {
    decode_item_t<Avx2, DType::F32, DType::F32, true>(b, it, f32, i32, partials);
  }
}

}  // namespace longbow::cpu
