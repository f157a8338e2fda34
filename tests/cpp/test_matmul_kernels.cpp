// SIMD matmul micro-kernels (AVX2 on x86-64, NEON on arm64) against the portable scalar ones:
// activation quantization must be identical, block dot products equal within float reassociation
// (NEON: bit-identical). On x86-64 every set the CPU supports is checked (AVX2, AVX-512). Exit code 0 = pass; prints what it checked. Builds for arm64 with only
// matmul_scalar.cpp, matmul_tile_neon.cpp and core/dtype.cpp, so it runs under qemu-aarch64
// (tests/test_matmul_kernels.py does the cross build: aarch64-linux-gnu-g++ -static, then
// qemu-aarch64 on the binary).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "longbow/backend/cpu/cpu_features.h"
#include "longbow/backend/cpu/matmul_kernels.h"

using namespace longbow;
using namespace longbow::cpu;

namespace {

int failures = 0;

void check(bool ok, const char* what, double got, double want) {
  if (!ok) {
    ++failures;
    if (failures < 20) std::printf("FAIL %s: got %.9g expected %.9g\n", what, got, want);
  }
}

uint16_t f32_to_f16_bits(float f) {  // small positive/negative normals only (test scales)
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t sign = (u >> 16) & 0x8000;
  const int exp = static_cast<int>((u >> 23) & 0xFF) - 127 + 15;
  const uint32_t mant = (u >> 13) & 0x3FF;
  return static_cast<uint16_t>(sign | (static_cast<uint32_t>(exp) << 10) | mant);
}

std::vector<uint8_t> random_row(DType t, int K, std::mt19937& rng) {
  std::vector<uint8_t> row(dtype_row_bytes(t, K));
  for (auto& b : row) b = static_cast<uint8_t>(rng());
  const size_t bs = t == DType::Q8_0 ? sizeof(BlockQ8_0) : t == DType::Q4_0 ? sizeof(BlockQ4_0) : sizeof(BlockQ4_1);
  std::uniform_real_distribution<float> u(-0.05f, 0.05f);
  for (size_t b = 0; b < row.size() / bs; ++b) {
    uint16_t h[2] = {f32_to_f16_bits(u(rng) + 0.06f), f32_to_f16_bits(u(rng))};
    std::memcpy(row.data() + b * bs, h, t == DType::Q4_1 ? 4 : 2);
  }
  return row;
}

// Checks one SIMD kernel set against the scalar one; returns the number of dot products checked.
int check_set(const MatmulKernels* simd, bool bit_exact) {
  const MatmulKernels& ref = scalar_matmul_kernels();
  std::mt19937 rng(42);
  std::normal_distribution<float> nd(0.f, 1.f);
  int checked = 0;
  for (int K : {32, 64, 96, 576, 1536}) {
    for (int M : {1, 2, 3, 4, 5, 7, 8, 9}) {
      std::vector<float> x(static_cast<size_t>(M) * K);
      for (auto& v : x) v = nd(rng) * (rng() % 4 == 0 ? 40.f : 1.f);
      std::fill(x.begin(), x.begin() + 32, 0.f);                   // an all-zero block
      if (K >= 64) x[40] = 0.5f * 2.f, x[41] = -1.f;            // exact values
      const size_t nb = K / QK;
      std::vector<BlockQ16A> qa(M * nb), qs(M * nb);
      for (int m = 0; m < M; ++m) {
        simd->quantize_q16a(x.data() + m * K, qa.data() + m * nb, K);
        ref.quantize_q16a(x.data() + m * K, qs.data() + m * nb, K);
      }
      check(std::memcmp(qa.data(), qs.data(), qa.size() * sizeof(BlockQ16A)) == 0, "quantize_q16a identical", 0, 0);
      for (DType t : {DType::Q4_0, DType::Q4_1, DType::Q8_0}) {
        auto row = random_row(t, K, rng);
        float a[MAX_MR + 1], s[MAX_MR + 1];
        simd->dot_q(t, row.data(), qs.data(), nb, M, K, a, 1);  // M = 9 > MAX_MR: split by the kernel
        ref.dot_q(t, row.data(), qs.data(), nb, M, K, s, 1);
        for (int m = 0; m < M; ++m) {
          const double tol = bit_exact ? 0.0 : 1e-5 * (1.0 + std::fabs(s[m])) + 1e-6 * K;
          check(std::fabs(a[m] - s[m]) <= tol, dtype_name(t), a[m], s[m]);
          ++checked;
          // Each row alone equals the same row inside the tile (batch composition never matters).
          float one;
          simd->dot_q(t, row.data(), qs.data() + m * nb, nb, 1, K, &one, 1);
          check(one == a[m], "tile row == single row", one, a[m]);
        }
      }
    }
  }
  return checked;
}

}  // namespace

int main() {
#if defined(__aarch64__)
  const MatmulKernels* sets[] = {neon_matmul_kernels()};
  const bool bit_exact = true;
#else
  const MatmulKernels* sets[] = {avx2_matmul_kernels(), avx512_matmul_kernels()};
  const bool bit_exact = false;
#if defined(__x86_64__)
  if (!longbow::cpu::cpu_has_avx2_fma_f16c()) sets[0] = nullptr;
#endif
#endif
  int num_sets = 0;
  for (const MatmulKernels* simd : sets) {
    if (simd == nullptr) continue;
    const int before = failures;
    const int checked = check_set(simd, bit_exact);
    std::printf("%s: %d dot products checked against scalar, %d failures\n", simd->name, checked, failures - before);
    ++num_sets;
  }
  if (num_sets == 0) {
    std::printf("SKIP no SIMD matmul kernels on this CPU/build\n");
    return 0;
  }
  return failures == 0 ? 0 : 1;
}
