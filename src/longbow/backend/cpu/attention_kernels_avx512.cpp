// AVX-512 attention kernels: the transposed FlashAttention-2 prefill item (attention_tile_simd.h)
// at 16 lanes with up to 4 row vectors (64 rows) per register block, and the fused decode item
// (attention_decode_simd.h) at 16 lanes; the generic tile kernels stay AVX2 (attention_kernels_avx2.cpp).
//
// The file is compiled with the baseline flags; a target pragma (GCC) or attribute (clang)
// enables AVX-512 for these functions only, and attn_avx512_kernels() returns them only after a
// CPUID + XGETBV check (and when the AVX2 kernels exist, whose decode kernels it reuses).
#include "longbow/backend/cpu/attention_common.h"
#include "longbow/backend/cpu/cpu_features.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")
// GCC 12 reports the _mm512_undefined_ps() pass-through operand of the unpack, shuffle and
// cvtph intrinsics as maybe uninitialized once the decode score tree inlines them (false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include "longbow/backend/cpu/attention_decode_simd.h"
#include "longbow/backend/cpu/attention_tile_simd.h"

namespace longbow::cpu {

namespace {

struct Avx512 {
  using reg = __m512;
  static constexpr int W = 16, MAX_NV = 4;
  // Register blocks (4 keys or 4 head dims) x up to 4 row vectors: 16 accumulators. Larger blocks
  // (6 or 8) measured no faster on Zen 4.
  static constexpr int SCORE_KEYS = 4, VALUE_DIMS = 4;
  static constexpr int DECODE_VALUE_VECS = 4;  // decode P·V: up to 4 rows x 4 head-dim vectors
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static reg set1(float x) { return _mm512_set1_ps(x); }
  static reg zero() { return _mm512_setzero_ps(); }
  static reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static reg div(reg a, reg b) { return _mm512_div_ps(a, b); }
  static reg max(reg a, reg b) { return _mm512_max_ps(a, b); }
  // a < b ? x : y per lane.
  static reg select_lt(reg a, reg b, reg x, reg y) { return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), y, x); }
  static reg load_f16(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static float f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }
  // One level L of the decode score tree (16 keys -> one vector of 16 sums, 30 shuffles and 15
  // adds): x and y hold the partial sums of two adjacent key runs of 2^L keys each; the result
  // holds those of the 2^(L+1) keys with half as many partials per key. Levels: unpack ps,
  // unpack pd, then two 128-bit lane shuffles; after level 3 lane j is the sum of key j.
  template <int L>
  static reg fold_keys(reg x, reg y) {
    if constexpr (L == 0) {
      return _mm512_add_ps(_mm512_unpacklo_ps(x, y), _mm512_unpackhi_ps(x, y));  // per 128: x02 y02 x13 y13
    } else if constexpr (L == 1) {
      const __m512d a = _mm512_castps_pd(x), b = _mm512_castps_pd(y);
      return _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    } else {
      return _mm512_add_ps(_mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(2, 0, 2, 0)),
                           _mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(3, 1, 3, 1)));
    }
  }
  static float hmax(reg v) { return _mm512_reduce_max_ps(v); }
  static float hsum(reg v) { return _mm512_reduce_add_ps(v); }
  // 2^x: x = n + f, |f| <= 1/2, degree-7 Taylor polynomial of e^(f ln 2) (relative error < 1e-8),
  // scaled by 2^n with vscalefps. x < -126 (and -inf) gives exactly 0.
  static reg exp2(reg x) {
    const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-126.0f), _CMP_GE_OQ);
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-127.0f)), _mm512_set1_ps(127.0f));
    const reg n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const reg f = _mm512_sub_ps(x, n);
    reg p = _mm512_set1_ps(1.525273380405984e-05f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.5403530393381608e-04f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-03f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618129107628477e-03f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550410866482158e-02f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402265069591007e-01f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931471805599453e-01f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_maskz_mov_ps(keep, _mm512_scalef_ps(p, n));
  }
};

// The window / soft-cap instantiations run only when asked; both off is the plain causal item.
void avx512_prefill_item(const AttnBatch& b, const AttnItem& it, float* f32) {
  const bool window = b.window > 0, softcap = b.softcap > 0.0f;
  if (!window && !softcap) {
    prefill_item_t<Avx512, false, false>(b, it, f32);
  } else if (!window) {
    prefill_item_t<Avx512, false, true>(b, it, f32);
  } else if (!softcap) {
    prefill_item_t<Avx512, true, false>(b, it, f32);
  } else {
    prefill_item_t<Avx512, true, true>(b, it, f32);
  }
}

size_t avx512_prefill_scratch(const AttnBatch& b, int rows) {
  return prefill_item_scratch(rows, b.head_dim, attn_tile_keys(b.block_size), Avx512::W);
}

// Head dims that are not a multiple of 16 fall back to the AVX2 decode item (8 lanes).
bool avx512_decode_item(const AttnBatch& b, const AttnItem& it, float* f32, int32_t* i32, float* partials) {
  if (b.head_dim % Avx512::W != 0) return attn_avx2_kernels()->decode_item(b, it, f32, i32, partials);
  const bool softcap = b.softcap > 0.0f;  // a sliding window is in the item's key range already
  if (b.f16) {
    softcap ? decode_item_t<Avx512, true, true>(b, it, f32, i32, partials)
            : decode_item_t<Avx512, true, false>(b, it, f32, i32, partials);
  } else {
    softcap ? decode_item_t<Avx512, false, true>(b, it, f32, i32, partials)
            : decode_item_t<Avx512, false, false>(b, it, f32, i32, partials);
  }
  return true;
}

size_t avx512_decode_scratch(const AttnBatch& b) {
  return std::max(decode_item_scratch(b.num_kv_heads, b.group, b.head_dim, attn_decode_tile_keys(b.block_size), Avx512::W),
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
  if (avx2 == nullptr || !cpu_has_avx512(/*vnni=*/false)) return nullptr;
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
