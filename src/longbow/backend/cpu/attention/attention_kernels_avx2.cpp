// AVX2 + FMA + F16C tile kernels of the attention tile loop (attention_common.h): Q·Kᵀ over a
// tile of keys, P·V accumulation and a vectorized exp for the online softmax. K and V rows are
// read straight from the paged cache (f16 converted in registers), 4 query rows share each load.
// Compiled with -mavx2 -mfma -mf16c; chosen only when cpu_isa() has AVX2 (attention_common.cpp).
// The sliding-window / soft-cap instantiations of the items are in attention_kernels_ext_avx2.cpp.
#include <immintrin.h>

#include <cmath>

#include "longbow/backend/cpu/attention/attention_common.h"
#include "longbow/backend/cpu/attention/attention_decode_simd.h"
#include "longbow/backend/cpu/attention/attention_simd_avx2.h"
#include "longbow/backend/cpu/attention/attention_tile_simd.h"

namespace longbow::cpu {

namespace {

template <bool F16>
inline __m256 load8(const void* base, size_t i) {
  if constexpr (F16) {
    return _mm256_cvtph_ps(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(base) + i)));
  } else {
    return _mm256_loadu_ps(static_cast<const float*>(base) + i);
  }
}

// Horizontal sums of four vectors -> (sum a, sum b, sum c, sum d).
inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
  __m256 ab = _mm256_hadd_ps(a, b);  // a01 a23 b01 b23 | a45 a67 b45 b67
  __m256 cd = _mm256_hadd_ps(c, d);
  __m256 abcd = _mm256_hadd_ps(ab, cd);  // a0123 b0123 c0123 d0123 | a4567 ...
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// Scores for NR (1..4) query rows against nk keys; head_dim is a multiple of 8.
template <int NR, bool F16>
void scores_rows(const float* q, int head_dim, const void* k, size_t k_stride, int nk, float* s,
                 int s_stride) {
  for (int j = 0; j < nk; ++j) {
    const size_t kb = static_cast<size_t>(j) * k_stride;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    for (int d = 0; d < head_dim; d += 8) {
      const __m256 kv = load8<F16>(k, kb + d);
      for (int r = 0; r < NR; ++r)
        acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(q + r * head_dim + d), kv, acc[r]);
    }
    if constexpr (NR == 4) {
      alignas(16) float t[4];
      _mm_store_ps(t, hsum4(acc[0], acc[1], acc[2], acc[3]));
      for (int r = 0; r < 4; ++r) s[r * s_stride + j] = t[r];
    } else {
      for (int r = 0; r < NR; ++r) s[r * s_stride + j] = hsum(acc[r]);
    }
  }
}

template <bool F16>
void scores_impl(const float* q, int rows, int head_dim, const void* k, size_t k_stride, int nk,
                 float* s, int s_stride) {
  int r = 0;
  for (; r + 4 <= rows; r += 4) {
    scores_rows<4, F16>(q + static_cast<size_t>(r) * head_dim, head_dim, k, k_stride, nk,
                        s + static_cast<size_t>(r) * s_stride, s_stride);
  }
  const float* qr = q + static_cast<size_t>(r) * head_dim;
  float* sr = s + static_cast<size_t>(r) * s_stride;
  switch (rows - r) {
    case 3: scores_rows<3, F16>(qr, head_dim, k, k_stride, nk, sr, s_stride); break;
    case 2: scores_rows<2, F16>(qr, head_dim, k, k_stride, nk, sr, s_stride); break;
    case 1: scores_rows<1, F16>(qr, head_dim, k, k_stride, nk, sr, s_stride); break;
    default: break;
  }
}

void avx2_scores(const float* q, int rows, int head_dim, const void* k, size_t k_stride, int nk,
                 bool f16, float* s, int s_stride) {
  if (head_dim % 8 != 0) {
    attn_scalar_kernels().scores(q, rows, head_dim, k, k_stride, nk, f16, s, s_stride);
  } else if (f16) {
    scores_impl<true>(q, rows, head_dim, k, k_stride, nk, s, s_stride);
  } else {
    scores_impl<false>(q, rows, head_dim, k, k_stride, nk, s, s_stride);
  }
}

// acc rows (NR, head_dim) += p rows · V for one 8-wide column chunk at a time, kept in registers.
template <int NR, bool F16>
void values_rows(const float* p, int p_stride, int head_dim, const void* v, size_t v_stride, int nk,
                 float* acc) {
  for (int d = 0; d < head_dim; d += 8) {
    __m256 o[4];
    for (int r = 0; r < NR; ++r) o[r] = _mm256_loadu_ps(acc + r * head_dim + d);
    for (int j = 0; j < nk; ++j) {
      const __m256 vv = load8<F16>(v, static_cast<size_t>(j) * v_stride + d);
      for (int r = 0; r < NR; ++r)
        o[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(p + r * p_stride + j), vv, o[r]);
    }
    for (int r = 0; r < NR; ++r) _mm256_storeu_ps(acc + r * head_dim + d, o[r]);
  }
}

template <bool F16>
void values_impl(const float* p, int p_stride, int rows, int head_dim, const void* v,
                 size_t v_stride, int nk, float* acc) {
  int r = 0;
  for (; r + 4 <= rows; r += 4) {
    values_rows<4, F16>(p + static_cast<size_t>(r) * p_stride, p_stride, head_dim, v, v_stride, nk,
                        acc + static_cast<size_t>(r) * head_dim);
  }
  const float* pr = p + static_cast<size_t>(r) * p_stride;
  float* ar = acc + static_cast<size_t>(r) * head_dim;
  switch (rows - r) {
    case 3: values_rows<3, F16>(pr, p_stride, head_dim, v, v_stride, nk, ar); break;
    case 2: values_rows<2, F16>(pr, p_stride, head_dim, v, v_stride, nk, ar); break;
    case 1: values_rows<1, F16>(pr, p_stride, head_dim, v, v_stride, nk, ar); break;
    default: break;
  }
}

void avx2_values(const float* p, int p_stride, int rows, int head_dim, const void* v,
                 size_t v_stride, int nk, bool f16, float* acc) {
  if (head_dim % 8 != 0) {
    attn_scalar_kernels().values(p, p_stride, rows, head_dim, v, v_stride, nk, f16, acc);
  } else if (f16) {
    values_impl<true>(p, p_stride, rows, head_dim, v, v_stride, nk, acc);
  } else {
    values_impl<false>(p, p_stride, rows, head_dim, v, v_stride, nk, acc);
  }
}

float avx2_exp_sum(float* x, int n, float m) {
  const __m256 mv = _mm256_set1_ps(m);
  __m256 sum = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
    _mm256_storeu_ps(x + i, e);
    sum = _mm256_add_ps(sum, e);
  }
  if (i < n) {  // tail through a padded lane buffer so every element uses the same exp
    alignas(32) float t[8];
    for (int l = 0; l < 8; ++l) t[l] = i + l < n ? x[i + l] - m : -INFINITY;
    const __m256 e = exp8(_mm256_load_ps(t));
    _mm256_store_ps(t, e);
    sum = _mm256_add_ps(sum, e);
    for (int l = 0; i + l < n; ++l) x[i + l] = t[l];
  }
  return hsum(sum);
}

float avx2_row_max(const float* x, int n) {
  int i = 0;
  float m = x[0];
  if (n >= 8) {
    __m256 mv = _mm256_loadu_ps(x);
    for (i = 8; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(mv), _mm256_extractf128_ps(mv, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    m = _mm_cvtss_f32(h);
  }
  for (; i < n; ++i) m = m > x[i] ? m : x[i];
  return m;
}

// The window / soft-cap instantiations run only when asked; both off is the plain causal item.
void avx2_prefill_item(const AttnBatch& b, const AttnItem& it, float* f32) {
  if (b.window > 0 || b.softcap > 0.0f) {
    avx2_prefill_item_ext(b, it, f32);
  } else {
    prefill_item_t<Avx2, false, false>(b, it, f32);
  }
}

size_t avx2_prefill_scratch(const AttnBatch& b, int rows) {
  return prefill_item_scratch(rows, b.head_dim, attn_tile_keys(b.block_size), Avx2::W);
}

bool avx2_decode_item(const AttnBatch& b, const AttnItem& it, float* f32, int32_t* i32,
                      float* partials) {
  if (b.head_dim % Avx2::W != 0) return false;
  if (b.k.type != b.v.type || b.staged()) {  // block-typed or mixed planes
    return avx2_decode_item_quant(b, it, f32, i32, partials);
  }
  if (b.softcap > 0.0f) {  // a sliding window is in the item's key range already
    avx2_decode_item_softcap(b, it, f32, i32, partials);
  } else if (b.k.f16) {
    decode_item_t<Avx2, DType::F16, DType::F16, false>(b, it, f32, i32, partials);
  } else {
    decode_item_t<Avx2, DType::F32, DType::F32, false>(b, it, f32, i32, partials);
  }
  return true;
}

size_t avx2_decode_scratch(const AttnBatch& b) {
  return decode_item_scratch(b.num_kv_heads, b.group, b.head_dim,
                             attn_decode_tile_keys(b.block_size), Avx2::W);
}

const AttnKernels AVX2 = {"avx2",
                          avx2_scores,
                          avx2_values,
                          avx2_exp_sum,
                          avx2_row_max,
                          avx2_prefill_item,
                          avx2_prefill_scratch,
                          avx2_decode_item,
                          avx2_decode_scratch};

}  // namespace

const AttnKernels* attn_avx2_kernels() { return &AVX2; }

}  // namespace longbow::cpu
