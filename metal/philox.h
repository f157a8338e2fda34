// Philox 4x32-10 counter-based random numbers (Salmon, Moraes, Dror, Shaw: "Parallel random
// numbers: as easy as 1, 2, 3", SC 2011): the one definition used by the CPU sampler
// (backend/cpu/sample.cpp) and the sample kernel (metal/sample.metal), so every backend draws the
// same numbers. Written in the subset common to MSL and C++, as kargs.h.
#pragma once

#if defined(__METAL_VERSION__)
#include <metal_stdlib>
#define LONGBOW_PHILOX_BEGIN
#define LONGBOW_PHILOX_END
#else
#include <cstdint>
#define LONGBOW_PHILOX_BEGIN namespace longbow {
#define LONGBOW_PHILOX_END }
#endif

// Round multipliers and key-schedule increments (Weyl constants).
#define LONGBOW_PHILOX_M0 0xD2511F53u
#define LONGBOW_PHILOX_M1 0xCD9E8D57u
#define LONGBOW_PHILOX_W0 0x9E3779B9u
#define LONGBOW_PHILOX_W1 0xBB67AE85u

LONGBOW_PHILOX_BEGIN

// Four 32-bit words: a counter in, a random block out.
struct Philox4x32 {
  uint32_t w0, w1, w2, w3;
};

// High 32 bits of the 64-bit product.
inline uint32_t philox_mulhi(uint32_t a, uint32_t b) {
#if defined(__METAL_VERSION__)
  return metal::mulhi(a, b);  // included before `using namespace metal`
#else
  return uint32_t((uint64_t(a) * uint64_t(b)) >> 32);
#endif
}

// Ten rounds of Philox on a 4 x u32 counter under the key (k0, k1).
inline Philox4x32 philox4x32_10(Philox4x32 ctr, uint32_t k0, uint32_t k1) {
  uint32_t c0 = ctr.w0, c1 = ctr.w1, c2 = ctr.w2, c3 = ctr.w3;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {  // key schedule: bump between rounds
      k0 += LONGBOW_PHILOX_W0;
      k1 += LONGBOW_PHILOX_W1;
    }
    const uint32_t hi0 = philox_mulhi(LONGBOW_PHILOX_M0, c0), lo0 = LONGBOW_PHILOX_M0 * c0;
    const uint32_t hi1 = philox_mulhi(LONGBOW_PHILOX_M1, c2), lo1 = LONGBOW_PHILOX_M1 * c2;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  Philox4x32 out = {c0, c1, c2, c3};
  return out;
}

// Streams: Philox counter word 1, so the draws of one request never collide: a request's token
// draws, a draft model's proposals (speculative decoding), the accept tests of sampled drafts.
#define LONGBOW_PHILOX_STREAM_TOKEN 0u
#define LONGBOW_PHILOX_STREAM_DRAFT 1u
#define LONGBOW_PHILOX_STREAM_ACCEPT 2u

// A uniform float in [0, 1) for (seed, counter, stream): Philox on counter (counter, stream, 0, 0)
// with key (seed_lo, seed_hi); the top 24 bits of the first word, scaled by 2^-24 (exact in f32).
inline float uniform_from_philox_stream(uint32_t seed_lo, uint32_t seed_hi, uint32_t counter,
                                        uint32_t stream) {
  Philox4x32 ctr = {counter, stream, 0u, 0u};
  const uint32_t x0 = philox4x32_10(ctr, seed_lo, seed_hi).w0;
  return float(x0 >> 8) * (1.0f / 16777216.0f);
}
inline float uniform_from_philox(uint32_t seed_lo, uint32_t seed_hi, uint32_t counter) {
  return uniform_from_philox_stream(seed_lo, seed_hi, counter, LONGBOW_PHILOX_STREAM_TOKEN);
}

LONGBOW_PHILOX_END
