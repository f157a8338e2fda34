// SIMD matmul micro-kernels (AVX2 and AVX-512 on x86-64, NEON on arm64) against the portable
// scalar ones on weights packed into 16-row panels: activation quantization and panel dot products
// must be bit-identical, a token alone must equal the same token in a tile, and the scalar panel
// kernel must equal a float64 product of the original (unpacked) rows. On x86-64 every set the CPU
// supports is checked. Exit code 0 = pass; prints what it checked. Builds for arm64 with only
// matmul_scalar.cpp, matmul_tile_neon.cpp, matmul_pack.cpp and core/dtype.cpp, so it runs under
// qemu-aarch64 (tests/test_matmul_kernels.py does the cross build: aarch64-linux-gnu-g++ -static,
// then qemu-aarch64 on the binary).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "longbow/backend/cpu/matmul/matmul_kernels.h"
#include "longbow/backend/cpu/simd/cpu_features.h"

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
  if (exp <= 0) return static_cast<uint16_t>(sign);  // below the f16 normal range: signed zero
  const uint32_t mant = (u >> 13) & 0x3FF;
  return static_cast<uint16_t>(sign | (static_cast<uint32_t>(exp) << 10) | mant);
}

std::vector<uint8_t> random_row(DType t, int K, std::mt19937& rng) {
  std::vector<uint8_t> row(dtype_row_bytes(t, K));
  for (auto& b : row) b = static_cast<uint8_t>(rng());
  const size_t bs = t == DType::Q8_0   ? sizeof(BlockQ8_0)
                    : t == DType::Q4_0 ? sizeof(BlockQ4_0)
                                       : sizeof(BlockQ4_1);
  std::uniform_real_distribution<float> u(-0.05f, 0.05f);
  for (size_t b = 0; b < row.size() / bs; ++b) {
    uint16_t h[2] = {f32_to_f16_bits(u(rng) + 0.06f), f32_to_f16_bits(u(rng))};
    std::memcpy(row.data() + b * bs, h, t == DType::Q4_1 ? 4 : 2);
  }
  return row;
}

// Dequantized element k of row n of a row-major quantized weight, in double.
double dequant(DType t, const std::vector<uint8_t>& w, int K, int n, int k) {
  const uint8_t* row = w.data() + static_cast<size_t>(n) * dtype_row_bytes(t, K);
  const int b = k / QK, i = k % QK;
  if (t == DType::Q8_0) {
    const auto& blk = reinterpret_cast<const BlockQ8_0*>(row)[b];
    return static_cast<double>(f16_to_f32(blk.d)) * blk.qs[i];
  }
  const uint8_t* qs = t == DType::Q4_1 ? reinterpret_cast<const BlockQ4_1*>(row)[b].qs
                                       : reinterpret_cast<const BlockQ4_0*>(row)[b].qs;
  const int q = i < QK / 2 ? (qs[i] & 0x0F) : (qs[i - QK / 2] >> 4);
  if (t == DType::Q4_1) {
    const auto& blk = reinterpret_cast<const BlockQ4_1*>(row)[b];
    return static_cast<double>(f16_to_f32(blk.d)) * q + f16_to_f32(blk.m);
  }
  return static_cast<double>(f16_to_f32(reinterpret_cast<const BlockQ4_0*>(row)[b].d)) * (q - 8);
}

// Checks one SIMD kernel set against the scalar one (bit for bit), and the scalar one against a
// float64 product of the original rows with the quantized activations; returns the outputs checked.
int check_set(const MatmulKernels* simd) {
  const MatmulKernels& ref = scalar_matmul_kernels();
  std::mt19937 rng(42);
  std::normal_distribution<float> nd(0.f, 1.f);
  int checked = 0;
  for (int K : {32, 64, 96, 576, 1536}) {
    for (int M : {1, 2, 3, 4, 5, 7, 8, 9, 17}) {
      std::vector<float> x(static_cast<size_t>(M) * K);
      for (auto& v : x) v = nd(rng) * (rng() % 4 == 0 ? 40.f : 1.f);
      std::fill(x.begin(), x.begin() + 32, 0.f);      // an all-zero block
      if (K >= 64) x[40] = 0.5f * 2.f, x[41] = -1.f;  // exact values
      if (K >= 96) {                                  // a block of tiny values (and a zero)
        for (int i = 64; i < 96; ++i) x[i] = (i % 3 - 1) * 1e-36f;
      }
      const size_t nb = K / QK;
      std::vector<BlockQ16A> qa(M * nb), qs(M * nb);
      for (int m = 0; m < M; ++m) {
        simd->quantize_q16a(x.data() + m * K, qa.data() + m * nb, K);
        ref.quantize_q16a(x.data() + m * K, qs.data() + m * nb, K);
      }
      check(std::memcmp(qa.data(), qs.data(), qa.size() * sizeof(BlockQ16A)) == 0,
            "quantize_q16a identical", 0, 0);
      for (DType t : {DType::Q4_0, DType::Q4_1, DType::Q8_0}) {
        const int N = M % 2 ? 21 : 16;  // a padded last panel and an exact one
        std::vector<uint8_t> w;
        for (int n = 0; n < N; ++n) {
          auto row = random_row(t, K, rng);
          w.insert(w.end(), row.begin(), row.end());
        }
        const int64_t panels = (N + PANEL_ROWS - 1) / PANEL_ROWS;
        std::vector<uint8_t> packed(packed_bytes(t, N, K));
        pack_panels(t, w.data(), N, K, 0, panels, packed.data());
        const size_t panel_bytes = nb * panel_block_bytes(t);
        for (int64_t p = 0; p < panels; ++p) {
          const uint8_t* panel = packed.data() + p * panel_bytes;
          std::vector<float> a(static_cast<size_t>(M) * PANEL_ROWS), r(a.size());
          simd->dot_q(t, panel, qs.data(), nb, M, static_cast<int64_t>(nb), a.data(), PANEL_ROWS);
          ref.dot_q(t, panel, qs.data(), nb, M, static_cast<int64_t>(nb), r.data(), PANEL_ROWS);
          for (int m = 0; m < M; ++m) {
            float one[PANEL_ROWS];
            simd->dot_q(t, panel, qs.data() + m * nb, nb, 1, static_cast<int64_t>(nb), one,
                        PANEL_ROWS);
            for (int i = 0; i < PANEL_ROWS; ++i) {
              const float got = a[m * PANEL_ROWS + i], want = r[m * PANEL_ROWS + i];
              check(std::memcmp(&got, &want, sizeof(float)) == 0, dtype_name(t), got, want);
              // Each token alone equals the same token inside the tile (batch composition never
              // matters).
              check(std::memcmp(&one[i], &got, sizeof(float)) == 0, "tile row == single row",
                    one[i], got);
              const int n = static_cast<int>(p * PANEL_ROWS + i);
              if (n >= N) {
                check(want == 0.f, "padding row is zero", want, 0.0);
                continue;
              }
              // The scalar reference computes w_n · x_m for the original row n (float64 check).
              double exact = 0.0, mag = 0.0;
              for (int k = 0; k < K; ++k) {
                const BlockQ16A& xb = qs[m * nb + k / QK];
                const double xv = static_cast<double>(xb.d) * xb.qs[k % QK];
                exact += dequant(t, w, K, n, k) * xv;
                mag += std::fabs(dequant(t, w, K, n, k) * xv);
              }
              check(std::fabs(want - exact) <= 1e-5 * mag + 1e-6, "scalar panel vs float64 rows",
                    want, exact);
              ++checked;
            }
          }
        }
      }
    }
  }
  return checked;
}

// Random float weight rows (N, K) in t (F32, F16 or BF16 bits).
std::vector<uint8_t> random_float_rows(DType t, int N, int K, std::mt19937& rng) {
  std::vector<uint8_t> w(static_cast<size_t>(N) * dtype_row_bytes(t, K));
  std::normal_distribution<float> nd(0.f, 0.5f);
  for (size_t i = 0; i < static_cast<size_t>(N) * K; ++i) {
    const float v = nd(rng);
    if (t == DType::F32) {
      std::memcpy(w.data() + 4 * i, &v, 4);
    } else {
      const uint16_t h = t == DType::F16 ? f32_to_f16_bits(v) : [&] {
        uint32_t u;
        std::memcpy(&u, &v, 4);
        return static_cast<uint16_t>(u >> 16);
      }();
      std::memcpy(w.data() + 2 * i, &h, 2);
    }
  }
  return w;
}

double float_elem(DType t, const std::vector<uint8_t>& w, int K, int n, int k) {
  const size_t i = static_cast<size_t>(n) * K + k;
  if (t == DType::F32) {
    float v;
    std::memcpy(&v, w.data() + 4 * i, 4);
    return v;
  }
  uint16_t h;
  std::memcpy(&h, w.data() + 2 * i, 2);
  return t == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
}

// Float panels: every mr (1..fp_mr) and np (1, 2) equal to the scalar kernel bit for bit, a token
// alone equal to the same token in a tile, and the scalar kernel equal to a float64 product of the
// original rows.
int check_float_set(const MatmulKernels* simd) {
  const MatmulKernels& ref = scalar_matmul_kernels();
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  int checked = 0;
  for (int K : {1, 5, 31, 64, 577}) {
    for (DType t : {DType::F32, DType::F16, DType::BF16}) {
      const int N = K % 2 ? 45 : 32;  // a padded last panel, or two exact ones
      const std::vector<uint8_t> w = random_float_rows(t, N, K, rng);
      const int64_t panels = (N + PANEL_ROWS - 1) / PANEL_ROWS;
      std::vector<uint8_t> packed(packed_bytes(t, N, K));
      pack_panels(t, w.data(), N, K, 0, panels, packed.data());
      const size_t stride = panel_bytes(t, K);
      for (int mr = 1; mr <= simd->fp_mr; ++mr) {
        std::vector<float> x(static_cast<size_t>(mr) * K), xt(x.size());
        for (auto& v : x) v = nd(rng);
        for (int m = 0; m < mr; ++m)
          for (int k = 0; k < K; ++k) xt[static_cast<size_t>(k) * mr + m] = x[m * K + k];
        for (int64_t p = 0; p < panels; p += 2) {
          const int np = static_cast<int>(std::min<int64_t>(2, panels - p));
          const uint8_t* pp = packed.data() + p * stride;
          const size_t ldo = 2 * PANEL_ROWS;
          std::vector<float> a(mr * ldo), r(mr * ldo);
          simd->dot_fp(t, pp, stride, np, xt.data(), mr, K, a.data(), ldo);
          ref.dot_fp(t, pp, stride, np, xt.data(), mr, K, r.data(), ldo);
          for (int m = 0; m < mr; ++m) {
            float one[2 * PANEL_ROWS];
            simd->dot_fp(t, pp, stride, np, x.data() + m * K, 1, K, one, ldo);
            for (int i = 0; i < np * PANEL_ROWS; ++i) {
              const float got = a[m * ldo + i], want = r[m * ldo + i];
              check(std::memcmp(&got, &want, sizeof(float)) == 0, dtype_name(t), got, want);
              check(std::memcmp(&one[i], &got, sizeof(float)) == 0, "float tile row == single row",
                    one[i], got);
              const int n = static_cast<int>(p * PANEL_ROWS + i);
              if (n >= N) {
                check(want == 0.f, "float padding row is zero", want, 0.0);
                continue;
              }
              double exact = 0.0, mag = 0.0;
              for (int k = 0; k < K; ++k) {
                exact += float_elem(t, w, K, n, k) * x[m * K + k];
                mag += std::fabs(float_elem(t, w, K, n, k) * x[m * K + k]);
              }
              check(std::fabs(want - exact) <= 1e-5 * mag + 1e-6, "scalar float panel vs float64",
                    want, exact);
              ++checked;
            }
          }
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
#else
  const MatmulKernels* sets[] = {avx2_matmul_kernels(), avx512_matmul_kernels()};
  if (!longbow::cpu::cpu_isa().avx2) sets[0] = nullptr;
  if (!longbow::cpu::cpu_isa().avx512_vnni) sets[1] = nullptr;
#endif
  int num_sets = 0;
  for (const MatmulKernels* simd : sets) {
    if (simd == nullptr) continue;
    const int before = failures;
    const int checked = check_set(simd) + check_float_set(simd);
    std::printf("%s: %d dot products checked against scalar, %d failures\n", simd->name, checked,
                failures - before);
    ++num_sets;
  }
  if (num_sets == 0) {
    std::printf("SKIP no SIMD matmul kernels on this CPU/build\n");
    return 0;
  }
  return failures == 0 ? 0 : 1;
}
