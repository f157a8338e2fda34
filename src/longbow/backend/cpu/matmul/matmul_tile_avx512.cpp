// AVX-512 (F + BW + VL + VNNI) matmul micro-kernels. Quantized weights come as 16-row panels
// (matmul_kernels.h): one zmm holds the same two columns of 16 rows as int16, and one vpdpwssd
// with a broadcast activation pair updates the 16 exact int32 row sums of a block, so the float
// work (conversion, scale, FMA) is paid once per (block, token) for 16 rows instead of once per
// row. Results equal the scalar reference bit for bit, at every mr. Float weights (F32/F16/BF16):
// 16-lane FMA dot products over row-major rows.
//
// The file is compiled with the baseline flags; a target pragma (GCC) or attribute (clang)
// enables AVX-512 for the kernels only; matmul_kernels() uses them only when cpu_isa() has
// avx512_vnni.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

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

template <DType T>
inline float load_w1(const void* w, int64_t i) {
  if constexpr (T == DType::F32)
    return static_cast<const float*>(w)[i];
  else if constexpr (T == DType::F16)
    return h2f(static_cast<const uint16_t*>(w)[i]);
  else
    return bf16_to_f32(static_cast<const uint16_t*>(w)[i]);
}

// Two accumulators per row (32 elements per step), then 16, then a masked tail of < 16.
template <DType T, int MR>
void dot_f_mr(const void* w, const float* x, size_t ldx, int64_t K, float* out, size_t ldo) {
  __m512 a0[MR], a1[MR];
  for (int m = 0; m < MR; ++m) a0[m] = a1[m] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= K; i += 32) {
    const __m512 w0 = load_w16<T>(w, i), w1 = load_w16<T>(w, i + 16);
    for (int m = 0; m < MR; ++m) {
      a0[m] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + m * ldx + i), a0[m]);
      a1[m] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + m * ldx + i + 16), a1[m]);
    }
  }
  if (i + 16 <= K) {
    const __m512 w0 = load_w16<T>(w, i);
    for (int m = 0; m < MR; ++m)
      a0[m] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + m * ldx + i), a0[m]);
    i += 16;
  }
  for (int m = 0; m < MR; ++m) {
    float s = _mm512_reduce_add_ps(_mm512_add_ps(a0[m], a1[m]));
    for (int64_t j = i; j < K; ++j) s += load_w1<T>(w, j) * x[m * ldx + j];
    out[m * ldo] = s;
  }
}

template <DType T>
void dot_f_t(const void* w, const float* x, size_t ldx, int mr, int64_t K, float* out, size_t ldo) {
  if (mr > 8) {
    dot_f_t<T>(w, x, ldx, 8, K, out, ldo);
    return dot_f_t<T>(w, x + 8 * ldx, ldx, mr - 8, K, out + 8 * ldo, ldo);
  }
  switch (mr) {
    case 1: return dot_f_mr<T, 1>(w, x, ldx, K, out, ldo);
    case 2: return dot_f_mr<T, 2>(w, x, ldx, K, out, ldo);
    case 3: return dot_f_mr<T, 3>(w, x, ldx, K, out, ldo);
    case 4: return dot_f_mr<T, 4>(w, x, ldx, K, out, ldo);
    case 5: return dot_f_mr<T, 5>(w, x, ldx, K, out, ldo);
    case 6: return dot_f_mr<T, 6>(w, x, ldx, K, out, ldo);
    case 7: return dot_f_mr<T, 7>(w, x, ldx, K, out, ldo);
    default: return dot_f_mr<T, 8>(w, x, ldx, K, out, ldo);
  }
}

void avx512_dot_f(DType t, const void* w_row, const float* x, size_t ldx, int mr, int64_t K,
                  float* out, size_t ldo) {
  switch (t) {
    case DType::F32: return dot_f_t<DType::F32>(w_row, x, ldx, mr, K, out, ldo);
    case DType::F16: return dot_f_t<DType::F16>(w_row, x, ldx, mr, K, out, ldo);
    case DType::BF16: return dot_f_t<DType::BF16>(w_row, x, ldx, mr, K, out, ldo);
    default:
      throw std::invalid_argument(
          std::string("[cpu.matmul] expected F32, F16 or BF16 weights, found ") + dtype_name(t));
  }
}

const MatmulKernels AVX512 = {"avx512", 8, avx512_quantize_q16a, avx512_dot_q, avx512_dot_f};

}  // namespace

}  // namespace longbow::cpu
#if defined(__clang__)
#pragma clang attribute pop
#else
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
