// AVX2 + FMA + F16C matmul micro-kernels: activation quantization to BlockQ16A, integer block dot
// products (vpmaddwd over 8 rows of a 16-row panel at a time, matmul_kernels.h) against
// Q4_0/Q4_1/Q8_0, and F32/F16/BF16 k-major panels (16 rows x 6 tokens of FMA chains), all
// bit-identical to the scalar reference. Each kernel handles several activation rows per weight
// panel so the weights are loaded and unpacked once per tile. Compiled with -mavx2 -mfma -mf16c;
// only called after the run-time CPU check (matmul.cpp).
#include <immintrin.h>

#include <array>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>

#include "longbow/backend/cpu/cpu_ops.h"
#include "longbow/backend/cpu/matmul/matmul_kernels.h"

namespace longbow::cpu {

namespace {

inline float hsum(__m256 v) {
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

void avx2_quantize_q16a(const float* x, BlockQ16A* y, int64_t K) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t b = 0; b < K / QK; ++b, x += QK) {
    __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
    __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                             _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const bool live = amax >= Q16_MIN_AMAX;  // else the whole block quantizes to zero
    const float d = live ? amax / Q16_MAX : 0.f;
    const __m256 id = _mm256_set1_ps(live ? Q16_MAX / amax : 0.f);
    constexpr int R = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, id), R));
    __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, id), R));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, id), R));
    __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, id), R));
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_hadd_epi32(s4, s4);
    s4 = _mm_hadd_epi32(s4, s4);
    // Pack int32 -> int16; the in-lane pack interleaves 128-bit halves, the permute restores order.
    __m256i p01 = _mm256_permute4x64_epi64(_mm256_packs_epi32(i0, i1), 0xD8);
    __m256i p23 = _mm256_permute4x64_epi64(_mm256_packs_epi32(i2, i3), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[b].qs), p01);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[b].qs + 16), p23);
    y[b].d = d;
    y[b].s = d * static_cast<float>(_mm_cvtsi128_si32(s4));
  }
}

inline __m256i bcast_pair(const int16_t* p) {  // (p[0], p[1]) in every 32-bit lane
  int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return _mm256_set1_epi32(v);
}

// isum[m] (+)= w · (x_m pair j) over 8 rows; the first product of a block starts the sum.
template <int MR>
inline void pair_madd(__m256i w, const BlockQ16A* xb, size_t ldx, int j, bool first,
                      __m256i* isum) {
  for (int m = 0; m < MR; ++m) {
    const __m256i p = _mm256_madd_epi16(w, bcast_pair(xb[m * ldx].qs + 2 * j));
    isum[m] = first ? p : _mm256_add_epi32(isum[m], p);
  }
}

// Rows 8 h .. 8 h + 7 of one panel (the 16-byte half h of every 32-byte quant group) against MR
// activation rows, in the operation order of matmul_kernels.h (exact int32 block sums, then one
// conversion, scale multiply and FMA(s) per block and token).
template <DType T, int MR>
void panel_half_mr(const void* panel, int h, const BlockQ16A* xq, size_t ldx, int64_t nb,
                   float* out, size_t ldo) {
  __m256 acc[MR];
  for (int m = 0; m < MR; ++m) acc[m] = _mm256_setzero_ps();
  const __m256i nibble = _mm256_set1_epi16(0x0F);
  using Block = std::conditional_t<T == DType::Q8_0, PanelQ8, PanelQ4>;
  for (int64_t b = 0; b < nb; ++b) {
    if (h ==
        0) {  // weights stream from DRAM: fetch a few blocks ahead (the second half hits cache)
      const char* ahead = reinterpret_cast<const char*>(static_cast<const Block*>(panel) + b +
                                                        PANEL_PREFETCH_BLOCKS);
      for (size_t off = 0; off < sizeof(Block); off += 64) _mm_prefetch(ahead + off, _MM_HINT_T0);
    }
    const BlockQ16A* xb = xq + b;
    __m256i isum[MR];
    const uint16_t* d;
    __m256 mw = _mm256_setzero_ps();
    if constexpr (T == DType::Q8_0) {
      const PanelQ8& pk = static_cast<const PanelQ8*>(panel)[b];
      d = pk.d;
      for (int j = 0; j < QK / 2; ++j) {
        const __m256i w = _mm256_cvtepi8_epi16(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(pk.qs + 32 * j + 16 * h)));
        pair_madd<MR>(w, xb, ldx, j, j == 0, isum);
      }
    } else {
      const PanelQ4& pk = static_cast<const PanelQ4*>(panel)[b];
      d = pk.d;
      for (int t = 0; t < QK / 4; ++t) {
        const __m256i raw = _mm256_cvtepu8_epi16(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(pk.qs + 32 * t + 16 * h)));
        pair_madd<MR>(_mm256_and_si256(raw, nibble), xb, ldx, t, t == 0, isum);
        pair_madd<MR>(_mm256_srli_epi16(raw, 4), xb, ldx, t + QK / 4, false, isum);
      }
      if constexpr (T == DType::Q4_1)
        mw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(pk.m + 8 * h)));
    }
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(d + 8 * h)));
    if constexpr (T == DType::Q4_0) mw = _mm256_mul_ps(dw, _mm256_set1_ps(-8.f));
    for (int m = 0; m < MR; ++m) {
      const BlockQ16A& x = xb[m * ldx];
      acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[m]), _mm256_mul_ps(dw, _mm256_set1_ps(x.d)),
                               acc[m]);
      if constexpr (T != DType::Q8_0) acc[m] = _mm256_fmadd_ps(mw, _mm256_set1_ps(x.s), acc[m]);
    }
  }
  for (int m = 0; m < MR; ++m) _mm256_storeu_ps(out + m * ldo + 8 * h, acc[m]);
}

template <DType T>
void panel_t(const void* panel, const BlockQ16A* xq, size_t ldx, int mr, int64_t nb, float* out,
             size_t ldo) {
  for (; mr > 0; mr -= 4, xq += 4 * ldx, out += 4 * ldo) {
    for (int h = 0; h < 2; ++h) {
      switch (mr) {
        case 1: panel_half_mr<T, 1>(panel, h, xq, ldx, nb, out, ldo); break;
        case 2: panel_half_mr<T, 2>(panel, h, xq, ldx, nb, out, ldo); break;
        case 3: panel_half_mr<T, 3>(panel, h, xq, ldx, nb, out, ldo); break;
        default: panel_half_mr<T, 4>(panel, h, xq, ldx, nb, out, ldo); break;
      }
    }
  }
}

void avx2_dot_q(DType t, const void* panel, const BlockQ16A* xq, size_t ldx, int mr, int64_t nb,
                float* out, size_t ldo) {
  dispatch_panel<panel_t<DType::Q4_0>, panel_t<DType::Q4_1>, panel_t<DType::Q8_0>>(
      t, panel, xq, ldx, mr, nb, out, ldo);
}

// 8 weights starting at element i of a float-type row, as f32.
template <DType T>
inline __m256 load_w8(const void* w, int64_t i) {
  if constexpr (T == DType::F32) {
    return _mm256_loadu_ps(static_cast<const float*>(w) + i);
  } else if constexpr (T == DType::F16) {
    return _mm256_cvtph_ps(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i)));
  } else {
    const __m128i h =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

// One panel (16 rows = 2 ymm) x MR tokens in registers: per k, 2 loads and 2 * MR FMAs with a
// broadcast activation (2 * MR <= 12 accumulators of 16 ymm).
template <DType T, int MR>
void float_tile(const uint8_t* panel, const float* xt, int64_t K, float* out, size_t ldo) {
  __m256 lo[MR], hi[MR];
  for (int m = 0; m < MR; ++m) lo[m] = hi[m] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const __m256 w0 = load_w8<T>(panel, k * PANEL_ROWS), w1 = load_w8<T>(panel, k * PANEL_ROWS + 8);
    for (int m = 0; m < MR; ++m) {
      const __m256 xb = _mm256_broadcast_ss(xt + k * MR + m);
      lo[m] = _mm256_fmadd_ps(w0, xb, lo[m]);
      hi[m] = _mm256_fmadd_ps(w1, xb, hi[m]);
    }
  }
  for (int m = 0; m < MR; ++m) {
    _mm256_storeu_ps(out + m * ldo, lo[m]);
    _mm256_storeu_ps(out + m * ldo + 8, hi[m]);
  }
}

template <DType T, int... MR>
constexpr auto float_tiles(std::integer_sequence<int, MR...>) {
  return std::array{&float_tile<T, MR + 1>...};
}

constexpr int FP_MR = 6;
static_assert(FP_MR <= FP_MAX_MR);

template <DType T>
void float_panel(const uint8_t* panels, size_t panel_stride, int np, const float* xt, int mr,
                 int64_t K, float* out, size_t ldo) {
  static constexpr auto tiles = float_tiles<T>(std::make_integer_sequence<int, FP_MR>{});
  for (int j = 0; j < np; ++j)
    tiles[mr - 1](panels + j * panel_stride, xt, K, out + j * PANEL_ROWS, ldo);
}

const MatmulKernels AVX2 = {"avx2",
                            4,
                            avx2_quantize_q16a,
                            avx2_dot_q,
                            FP_MR,
                            dispatch_float_panel<float_panel<DType::F32>, float_panel<DType::F16>,
                                                 float_panel<DType::BF16>>};

}  // namespace

const MatmulKernels* avx2_matmul_kernels() { return &AVX2; }

}  // namespace longbow::cpu
