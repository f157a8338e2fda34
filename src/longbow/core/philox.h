// Philox 4x32-10 counter-based random numbers (Salmon, Moraes, Dror, Shaw: "Parallel random
// numbers: as easy as 1, 2, 3", SC 2011). Header-only so every backend draws the same numbers.
#pragma once

#include <array>
#include <cstdint>

namespace longbow {

constexpr uint32_t PHILOX_M0 = 0xD2511F53u;
constexpr uint32_t PHILOX_M1 = 0xCD9E8D57u;
constexpr uint32_t PHILOX_W0 = 0x9E3779B9u;
constexpr uint32_t PHILOX_W1 = 0xBB67AE85u;

// Ten rounds of Philox on a 4 x u32 counter under a 2 x u32 key.
inline std::array<uint32_t, 4> philox4x32_10(const uint32_t counter[4], const uint32_t key[2]) {
  uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {  // key schedule: bump between rounds
      k0 += PHILOX_W0;
      k1 += PHILOX_W1;
    }
    const uint64_t p0 = static_cast<uint64_t>(PHILOX_M0) * c0;
    const uint64_t p1 = static_cast<uint64_t>(PHILOX_M1) * c2;
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  return {c0, c1, c2, c3};
}

// A uniform float in [0, 1) for (seed, counter): Philox on counter (counter, 0, 0, 0) with key
// (seed_lo, seed_hi); the top 24 bits of the first word, scaled by 2^-24 (exact in f32).
inline float uniform_from_philox(uint32_t seed_lo, uint32_t seed_hi, uint32_t counter) {
  const uint32_t ctr[4] = {counter, 0u, 0u, 0u};
  const uint32_t key[2] = {seed_lo, seed_hi};
  const uint32_t x0 = philox4x32_10(ctr, key)[0];
  return static_cast<float>(x0 >> 8) * (1.0f / 16777216.0f);
}

}  // namespace longbow
