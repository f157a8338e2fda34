// AVX-512 (F + BW + VL + VNNI) matmul micro-kernels. Quantized weights come as 16-row panels
// (matmul_kernels.h): one zmm holds the same two columns of 16 rows as int16, and one vpdpwssd
// with a broadcast activation pair updates the 16 exact int32 row sums of a block, so the float
// work (conversion, scale, FMA) is paid once per (block, token) for 16 rows instead of once per
// row. Float weights (F32/F16/BF16) come as k-major 16-row panels: 32 rows x 12 tokens of FMA
// chains in registers. Results equal the scalar reference bit for bit, at every mr.
//
// The file is compiled with the baseline flags; a target pragma (GCC) or attribute (clang)
// enables AVX-512 for the kernels only; matmul_kernels() uses them only when cpu_isa() has
// avx512_vnni.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>

#include "longbow/backend/cpu/cpu_ops.h"
#include "longbow/backend/cpu/matmul/matmul_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#if defined(__clang__)
#pragma clang attribute push(                                                      \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c"))), \
    apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")
// GCC 12 reports the _mm512_undefined_*() inside its own intrinsics as maybe-uninitialized once
// they are inlined into the float tiles.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

namespace longbow::cpu {

namespace {

inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

// Rounds like the scalar quantizer (nearest-even, |q| <= 32767) and stores 32 int16 per block.
void avx512_quantize_q16a(const float* x, BlockQ16A* y, int64_t K) {
  for (int64_t b = 0; b < K / QK; ++b, x += QK) {
    const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const bool live = amax >= Q16_MIN_AMAX;  // else the whole block quantizes to zero
    const float d = live ? amax / Q16_MAX : 0.f;
    const __m512 id = _mm512_set1_ps(live ? Q16_MAX / amax : 0.f);
    constexpr int R = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    const __m512i i0 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v0, id), R);
    const __m512i i1 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v1, id), R);
    const int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[b].qs), _mm512_cvtsepi32_epi16(i0));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[b].qs + 16), _mm512_cvtsepi32_epi16(i1));
    y[b].d = d;
    y[b].s = d * static_cast<float>(sum);
  }
}

inline __m512i bcast_pair(const int16_t* p) {  // (p[0], p[1]) in every 32-bit lane
  int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return _mm512_set1_epi32(v);
}

// isum[m] += w · (x_m pair j) over 16 rows.
template <int MR>
inline void pair_dp(__m512i w, const BlockQ16A* xb, size_t ldx, int j, __m512i* isum) {
  for (int m = 0; m < MR; ++m)
    isum[m] = _mm512_dpwssd_epi32(isum[m], w, bcast_pair(xb[m * ldx].qs + 2 * j));
}

// One panel (16 rows) against MR activation rows, in the operation order of matmul_kernels.h:
// per block, exact int32 row sums from vpdpwssd (16 rows per instruction), then per token one
// conversion, one scale multiply and one or two FMAs for all 16 rows.
template <DType T, int MR>
void panel_mr(const void* panel, const BlockQ16A* xq, size_t ldx, int64_t nb, float* out,
              size_t ldo) {
  __m512 acc[MR];
  for (int m = 0; m < MR; ++m) acc[m] = _mm512_setzero_ps();
  const __m512i nibble = _mm512_set1_epi16(0x0F);
  using Block = std::conditional_t<T == DType::Q8_0, PanelQ8, PanelQ4>;
  for (int64_t b = 0; b < nb; ++b) {
    // Weights stream from DRAM once per step: fetch a few blocks ahead (past the panel's end
    // this is the next panel, which the caller runs next).
    const char* ahead =
        reinterpret_cast<const char*>(static_cast<const Block*>(panel) + b + PANEL_PREFETCH_BLOCKS);
    for (size_t off = 0; off < sizeof(Block); off += 64) _mm_prefetch(ahead + off, _MM_HINT_T0);
    const BlockQ16A* xb = xq + b;
    __m512i isum[MR];
    for (int m = 0; m < MR; ++m) isum[m] = _mm512_setzero_si512();
    const uint16_t* d;
    __m512 mw = _mm512_setzero_ps();
    if constexpr (T == DType::Q8_0) {
      const PanelQ8& pk = static_cast<const PanelQ8*>(panel)[b];
      d = pk.d;
#pragma GCC unroll 16
      for (int j = 0; j < QK / 2; ++j) {
        const __m512i w = _mm512_cvtepi8_epi16(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pk.qs + 32 * j)));
        pair_dp<MR>(w, xb, ldx, j, isum);
      }
    } else {
      const PanelQ4& pk = static_cast<const PanelQ4*>(panel)[b];
      d = pk.d;
#pragma GCC unroll 8
      for (int t = 0; t < QK / 4; ++t) {
        const __m512i raw = _mm512_cvtepu8_epi16(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pk.qs + 32 * t)));
        pair_dp<MR>(_mm512_and_si512(raw, nibble), xb, ldx, t, isum);
        pair_dp<MR>(_mm512_srli_epi16(raw, 4), xb, ldx, t + QK / 4, isum);
      }
      if constexpr (T == DType::Q4_1)
        mw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(pk.m)));
    }
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(d)));
    if constexpr (T == DType::Q4_0) mw = _mm512_mul_ps(dw, _mm512_set1_ps(-8.f));
    for (int m = 0; m < MR; ++m) {
      const BlockQ16A& x = xb[m * ldx];
      acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[m]), _mm512_mul_ps(dw, _mm512_set1_ps(x.d)),
                               acc[m]);
      if constexpr (T != DType::Q8_0) acc[m] = _mm512_fmadd_ps(mw, _mm512_set1_ps(x.s), acc[m]);
    }
  }
  for (int m = 0; m < MR; ++m) _mm512_storeu_ps(out + m * ldo, acc[m]);
}

template <DType T>
void panel_t(const void* panel, const BlockQ16A* xq, size_t ldx, int mr, int64_t nb, float* out,
             size_t ldo) {
  for (; mr > 8; mr -= 8, xq += 8 * ldx, out += 8 * ldo)
    panel_mr<T, 8>(panel, xq, ldx, nb, out, ldo);
  switch (mr) {
    case 1: return panel_mr<T, 1>(panel, xq, ldx, nb, out, ldo);
    case 2: return panel_mr<T, 2>(panel, xq, ldx, nb, out, ldo);
    case 3: return panel_mr<T, 3>(panel, xq, ldx, nb, out, ldo);
    case 4: return panel_mr<T, 4>(panel, xq, ldx, nb, out, ldo);
    case 5: return panel_mr<T, 5>(panel, xq, ldx, nb, out, ldo);
    case 6: return panel_mr<T, 6>(panel, xq, ldx, nb, out, ldo);
    case 7: return panel_mr<T, 7>(panel, xq, ldx, nb, out, ldo);
    case 8: return panel_mr<T, 8>(panel, xq, ldx, nb, out, ldo);
    default: return;
  }
}

void avx512_dot_q(DType t, const void* panel, const BlockQ16A* xq, size_t ldx, int mr, int64_t nb,
                  float* out, size_t ldo) {
  dispatch_panel<panel_t<DType::Q4_0>, panel_t<DType::Q4_1>, panel_t<DType::Q8_0>>(
      t, panel, xq, ldx, mr, nb, out, ldo);
}

// 16 weights starting at element i of a float-type row, as f32.
template <DType T>
inline __m512 load_w16(const void* w, int64_t i) {
  if constexpr (T == DType::F32) {
    return _mm512_loadu_ps(static_cast<const float*>(w) + i);
  } else if constexpr (T == DType::F16) {
    return _mm512_cvtph_ps(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i)));
  } else {
    const __m256i h =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

// NP panels (32 rows when NP = 2) x MR tokens in registers: per k, NP loads of 16 rows and
// NP * MR FMAs with a broadcast activation (NP * MR <= 24 accumulators of 32 zmm).
template <DType T, int NP, int MR>
void float_tile(const uint8_t* panels, size_t panel_stride, const float* xt, int64_t K, float* out,
                size_t ldo) {
  __m512 acc[NP][MR];
  for (int j = 0; j < NP; ++j)
    for (int m = 0; m < MR; ++m) acc[j][m] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    __m512 w[NP];
    for (int j = 0; j < NP; ++j) w[j] = load_w16<T>(panels + j * panel_stride, k * PANEL_ROWS);
    for (int m = 0; m < MR; ++m) {
      const __m512 xb = _mm512_set1_ps(xt[k * MR + m]);
      for (int j = 0; j < NP; ++j) acc[j][m] = _mm512_fmadd_ps(w[j], xb, acc[j][m]);
    }
  }
  for (int j = 0; j < NP; ++j)
    for (int m = 0; m < MR; ++m) _mm512_storeu_ps(out + m * ldo + j * PANEL_ROWS, acc[j][m]);
}

template <DType T, int NP, int... MR>
constexpr auto float_tiles(std::integer_sequence<int, MR...>) {
  return std::array{&float_tile<T, NP, MR + 1>...};
}

constexpr int FP_MR = 12;
static_assert(FP_MR <= FP_MAX_MR);

template <DType T>
void float_panel(const uint8_t* panels, size_t panel_stride, int np, const float* xt, int mr,
                 int64_t K, float* out, size_t ldo) {
  static constexpr auto one = float_tiles<T, 1>(std::make_integer_sequence<int, FP_MR>{});
  static constexpr auto two = float_tiles<T, 2>(std::make_integer_sequence<int, FP_MR>{});
  (np == 2 ? two : one)[mr - 1](panels, panel_stride, xt, K, out, ldo);
}

const MatmulKernels AVX512 = {"avx512",
                              8,
                              avx512_quantize_q16a,
                              avx512_dot_q,
                              FP_MR,
                              dispatch_float_panel<float_panel<DType::F32>, float_panel<DType::F16>,
                                                   float_panel<DType::BF16>>};

}  // namespace

}  // namespace longbow::cpu
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

namespace longbow::cpu {

const MatmulKernels* avx512_matmul_kernels() { return &AVX512; }

}  // namespace longbow::cpu

#else

namespace longbow::cpu {
const MatmulKernels* avx512_matmul_kernels() { return nullptr; }
}  // namespace longbow::cpu

#endif
