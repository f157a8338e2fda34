// AVX-512 (F + BW + VL) matmul micro-kernels: the AVX2 tile kernels (matmul_tile_avx2.cpp) at
// twice the width. A whole 32-value block is one zmm: 32 int16 weights (widened from Q4/Q8) times
// the 32 int16 activations of a BlockQ16A in one vpmaddwd, so each (weight block, token) pair costs
// vpmaddwd, an int->float conversion, a multiply by the broadcast activation scale and an FMA.
// Same activation format (BlockQ16A) and the same accumulation order at every mr, so a token's
// result does not depend on the batch. Float weights (F32/F16/BF16): 16-lane FMA dot products.
//
// The file is compiled with the baseline flags; a target pragma (GCC) or attribute (clang)
// enables AVX-512 for the kernels only, and avx512_matmul_kernels() returns them only after a
// CPUID + XGETBV check.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "longbow/backend/cpu/cpu_ops.h"
#include "longbow/backend/cpu/matmul_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")
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
    const float d = amax / Q16_MAX;
    const __m512 id = _mm512_set1_ps(amax > 0.f ? Q16_MAX / amax : 0.f);
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

// 32 Q4 nibbles (elements 0..15 in the low nibbles, 16..31 in the high ones) -> 32 int16: the 16
// bytes widened twice, the upper copy shifted right by 4, both masked.
inline __m512i unpack_q4(const uint8_t* qs) {
  const __m256i q2 = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
  const __m512i shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
  return _mm512_and_si512(_mm512_srlv_epi16(_mm512_cvtepu8_epi16(q2), shift), _mm512_set1_epi16(0x0F));
}

// acc[m] += (w · x_m as int32 lanes) * d_m * dw for the MR activation rows of one block.
// (p * d_m) * dw rather than p * (dw * d_m): d_m is a broadcast memory operand and dw one register
// per block, so a pair costs no scalar multiply and no shuffle (the multiply ports are the limit).
template <int MR>
inline void block_fma(__m512i w, float dw, const BlockQ16A* xb, size_t ldx, __m512* acc) {
  const __m512 dwv = _mm512_set1_ps(dw);
  for (int m = 0; m < MR; ++m) {
    const BlockQ16A* x = xb + m * ldx;
    const __m512i p = _mm512_madd_epi16(w, _mm512_loadu_si512(x->qs));
    acc[m] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(p), _mm512_set1_ps(x->d)), dwv, acc[m]);
  }
}

// Weight block b of a Q4_0/Q4_1/Q8_0 row as 32 int16, its scale and its correction factor
// (Q4_1: + m * s; Q4_0: - 8 * d * s, the sign applied at the end; Q8_0: none).
template <DType T>
inline __m512i weight_block(const void* w_row, int64_t b, float* dw, float* cw) {
  if constexpr (T == DType::Q4_1) {
    const auto& blk = static_cast<const BlockQ4_1*>(w_row)[b];
    uint32_t dm_bits;  // d and m, adjacent f16 values: one conversion for both
    std::memcpy(&dm_bits, &blk.d, sizeof(dm_bits));
    const __m128 dm = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(dm_bits)));
    *dw = _mm_cvtss_f32(dm), *cw = _mm_cvtss_f32(_mm_movehdup_ps(dm));
    return unpack_q4(blk.qs);
  } else if constexpr (T == DType::Q4_0) {
    const auto& blk = static_cast<const BlockQ4_0*>(w_row)[b];
    *dw = *cw = h2f(blk.d);
    return unpack_q4(blk.qs);
  } else {
    const auto& blk = static_cast<const BlockQ8_0*>(w_row)[b];
    *dw = h2f(blk.d), *cw = 0.f;
    return _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs)));
  }
}

template <DType T>
inline float finish(float acc, float corr) {
  return T == DType::Q4_1 ? acc + corr : T == DType::Q4_0 ? acc - 8.f * corr : acc;
}

// Two accumulator chains per row (even and odd blocks, summed at the end) so that a single row
// (decode) is not bound by the FMA latency of one chain; the same for every mr, so a row gets the
// same bits alone or in a tile.
template <DType T, int MR>
void dot_q_mr(const void* w_row, const BlockQ16A* xq, size_t ldx, int64_t nb, float* out, size_t ldo) {
  __m512 acc[2][MR];
  float corr[2][MR];
  for (int c = 0; c < 2; ++c) {
    for (int m = 0; m < MR; ++m) {
      acc[c][m] = _mm512_setzero_ps();
      corr[c][m] = 0.f;
    }
  }
  // One block into chain C (a compile-time index, so the accumulators stay in registers).
  auto step = [&](auto chain, int64_t b) {
    constexpr int C = decltype(chain)::value;
    float dw, cw;
    const __m512i w = weight_block<T>(w_row, b, &dw, &cw);
    block_fma<MR>(w, dw, xq + b, ldx, acc[C]);
    if constexpr (T != DType::Q8_0) {
      for (int m = 0; m < MR; ++m) corr[C][m] = std::fma(cw, xq[m * ldx + b].s, corr[C][m]);
    }
  };
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    step(std::integral_constant<int, 0>{}, b);
    step(std::integral_constant<int, 1>{}, b + 1);
  }
  if (b < nb) step(std::integral_constant<int, 0>{}, b);
  for (int m = 0; m < MR; ++m) {
    out[m * ldo] = finish<T>(_mm512_reduce_add_ps(_mm512_add_ps(acc[0][m], acc[1][m])), corr[0][m] + corr[1][m]);
  }
}

template <DType T>
void dot_q_t(const void* w_row, const BlockQ16A* xq, size_t ldx, int mr, int64_t nb, float* out, size_t ldo) {
  switch (mr) {
    case 1: return dot_q_mr<T, 1>(w_row, xq, ldx, nb, out, ldo);
    case 2: return dot_q_mr<T, 2>(w_row, xq, ldx, nb, out, ldo);
    case 3: return dot_q_mr<T, 3>(w_row, xq, ldx, nb, out, ldo);
    case 4: return dot_q_mr<T, 4>(w_row, xq, ldx, nb, out, ldo);
    case 5: return dot_q_mr<T, 5>(w_row, xq, ldx, nb, out, ldo);
    case 6: return dot_q_mr<T, 6>(w_row, xq, ldx, nb, out, ldo);
    case 7: return dot_q_mr<T, 7>(w_row, xq, ldx, nb, out, ldo);
    default: return dot_q_mr<T, 8>(w_row, xq, ldx, nb, out, ldo);
  }
}

void avx512_dot_q(DType t, const void* w_row, const BlockQ16A* xq, size_t ldx, int mr, int64_t K, float* out,
                  size_t ldo) {
  if (mr > 8) {
    avx512_dot_q(t, w_row, xq, ldx, 8, K, out, ldo);
    return avx512_dot_q(t, w_row, xq + 8 * ldx, ldx, mr - 8, K, out + 8 * ldo, ldo);
  }
  const int64_t nb = K / QK;
  switch (t) {
    case DType::Q4_0: return dot_q_t<DType::Q4_0>(w_row, xq, ldx, mr, nb, out, ldo);
    case DType::Q4_1: return dot_q_t<DType::Q4_1>(w_row, xq, ldx, mr, nb, out, ldo);
    case DType::Q8_0: return dot_q_t<DType::Q8_0>(w_row, xq, ldx, mr, nb, out, ldo);
    default:
      throw std::invalid_argument(std::string("[cpu.matmul] expected Q4_0, Q4_1 or Q8_0 weights, found ") +
                                  dtype_name(t));
  }
}

// 16 weights starting at element i of a float-type row, as f32.
template <DType T>
inline __m512 load_w16(const void* w, int64_t i) {
  if constexpr (T == DType::F32) {
    return _mm512_loadu_ps(static_cast<const float*>(w) + i);
  } else if constexpr (T == DType::F16) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i)));
  } else {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

template <DType T>
inline float load_w1(const void* w, int64_t i) {
  if constexpr (T == DType::F32) return static_cast<const float*>(w)[i];
  else if constexpr (T == DType::F16) return h2f(static_cast<const uint16_t*>(w)[i]);
  else return bf16_to_f32(static_cast<const uint16_t*>(w)[i]);
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
    for (int m = 0; m < MR; ++m) a0[m] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + m * ldx + i), a0[m]);
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

void avx512_dot_f(DType t, const void* w_row, const float* x, size_t ldx, int mr, int64_t K, float* out,
                  size_t ldo) {
  switch (t) {
    case DType::F32: return dot_f_t<DType::F32>(w_row, x, ldx, mr, K, out, ldo);
    case DType::F16: return dot_f_t<DType::F16>(w_row, x, ldx, mr, K, out, ldo);
    case DType::BF16: return dot_f_t<DType::BF16>(w_row, x, ldx, mr, K, out, ldo);
    default:
      throw std::invalid_argument(std::string("[cpu.matmul] expected F32, F16 or BF16 weights, found ") +
                                  dtype_name(t));
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

namespace {

// AVX-512 F/BW/VL plus FMA/F16C, and an OS that saves the opmask and ZMM state (XCR0 bits 1, 2, 5-7).
bool cpu_has_avx512bw() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  const bool fma = (ecx >> 12) & 1u, osxsave = (ecx >> 27) & 1u, f16c = (ecx >> 29) & 1u;
  if (!(fma && osxsave && f16c)) return false;
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & 0xE6u) != 0xE6u) return false;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  const bool avx2 = (ebx >> 5) & 1u, f = (ebx >> 16) & 1u, bw = (ebx >> 30) & 1u, vl = (ebx >> 31) & 1u;
  return avx2 && f && bw && vl;
}

}  // namespace

const MatmulKernels* avx512_matmul_kernels() {
  static const MatmulKernels* k = cpu_has_avx512bw() ? &AVX512 : nullptr;
  return k;
}

}  // namespace longbow::cpu

#else

namespace longbow::cpu {
const MatmulKernels* avx512_matmul_kernels() { return nullptr; }
}  // namespace longbow::cpu

#endif
