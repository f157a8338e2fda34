// The AVX-512 exponential, written once for the AVX-512 kernel families: exp2_16 (2^x, the
// base-2 online softmax of the attention items; no AVX-512 kernel needs e^x). Include only inside
// an AVX-512 target region; the contents sit in an anonymous namespace (no ODR merge with a copy
// compiled for other flags).
#pragma once

#include <immintrin.h>

namespace longbow::cpu {
namespace {

// 2^x: x = n + f, |f| <= 1/2, degree-7 Taylor polynomial of e^(f ln 2) (relative error < 1e-8),
// scaled by 2^n with vscalefps. x < -126 (and -inf) gives exactly 0.
inline __m512 exp2_16(__m512 x) {
  const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-126.0f), _CMP_GE_OQ);
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-127.0f)), _mm512_set1_ps(127.0f));
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(x, n);
  __m512 p = _mm512_set1_ps(1.525273380405984e-05f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.5403530393381608e-04f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-03f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618129107628477e-03f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550410866482158e-02f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402265069591007e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931471805599453e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_maskz_mov_ps(keep, _mm512_scalef_ps(p, n));
}

}  // namespace
}  // namespace longbow::cpu
