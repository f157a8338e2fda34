// Logit soft-capping (Gemma 2) on a SIMD vector of scores in log2 units, shared by the SIMD decode
// item (attention_decode_simd.h) and the transposed prefill item (attention_tile_simd.h); included
// by the kernel files under their own target flags, so it sits in an anonymous namespace.
//
// Natural-unit score s becomes cap * tanh(s / cap). The SIMD items hold x = s * log2 e, so the
// capped value is c2 * tanh(x / c2) with c2 = cap * log2 e, computed as c2 * (1 - t) / (1 + t) with
// t = e^(-2 s / cap) = 2^(-2 x / cap). V::exp2 returns 0 below 2^-126 and clamps at 2^127, so t is
// finite and the result stays in [-c2, c2] (no inf / inf). Absolute error ~1e-7 * c2: below the
// rounding of the capped score itself.
#pragma once

namespace longbow::cpu {
namespace {

// Per-call constants of softcap_log2 for cap > 0.
template <class V>
struct SoftcapLog2 {
  typename V::reg c2, neg2_over_cap, one;
  explicit SoftcapLog2(float cap)
      : c2(V::set1(cap * 1.44269504088896341f)),
        neg2_over_cap(V::set1(-2.0f / cap)),
        one(V::set1(1.0f)) {}
};

template <class V>
inline __attribute__((always_inline)) typename V::reg softcap_log2(typename V::reg x,
                                                                   const SoftcapLog2<V>& c) {
  const typename V::reg t = V::exp2(V::mul(x, c.neg2_over_cap));
  return V::mul(c.c2, V::div(V::sub(c.one, t), V::add(c.one, t)));
}

}  // namespace
}  // namespace longbow::cpu
