// Sliding-window and logit soft-cap instantiations of the AVX2 attention items (the plain ones are
// in attention_kernels_avx2.cpp, which calls these when a feature is on). Compiled with -mavx2
// -mfma -mf16c like it.
#include <immintrin.h>

#include <stdexcept>

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

void avx2_decode_item_quant(const AttnBatch& b, const AttnItem& it, float* f32, int32_t* i32,
                            float* partials) {
  const bool cap = b.softcap > 0.0f;
  switch (b.kv_type) {
    case DType::Q8_0:
      return cap ? decode_item_t<Avx2, DType::Q8_0, true>(b, it, f32, i32, partials)
                 : decode_item_t<Avx2, DType::Q8_0, false>(b, it, f32, i32, partials);
    case DType::Q4_0:
      return cap ? decode_item_t<Avx2, DType::Q4_0, true>(b, it, f32, i32, partials)
                 : decode_item_t<Avx2, DType::Q4_0, false>(b, it, f32, i32, partials);
    case DType::Q4_1:
      return cap ? decode_item_t<Avx2, DType::Q4_1, true>(b, it, f32, i32, partials)
                 : decode_item_t<Avx2, DType::Q4_1, false>(b, it, f32, i32, partials);
    default: throw std::logic_error("[cpu.attention] a block-typed KV cache expected");
  }
}

void avx2_decode_item_softcap(const AttnBatch& b, const AttnItem& it, float* f32, int32_t* i32,
                              float* partials) {
  if (b.f16) {
    decode_item_t<Avx2, DType::F16, true>(b, it, f32, i32, partials);
  } else {
    decode_item_t<Avx2, DType::F32, true>(b, it, f32, i32, partials);
  }
}

}  // namespace longbow::cpu
