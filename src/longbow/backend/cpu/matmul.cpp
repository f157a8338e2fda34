// Matmul out (M, N) = x (M, K) · wᵀ for every weight dtype, plus the portable scalar row kernels
// and the run-time choice between them and the AVX2 ones (matmul_avx2.cpp).
//
// Each thread owns a contiguous range of W rows. It dequantizes a tile of W rows once into its
// scratch and reuses the tile for all M activation rows, so decode (M = 1) is parallel over N and
// prefill pays the dequantization once per tile, not once per token.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "longbow/backend/cpu/cpu_ops.h"

namespace longbow::cpu {

namespace {

void scalar_dequant_row(DType t, const void* src, float* dst, int64_t n) {
  switch (t) {
    case DType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::F16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    case DType::BF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::Q8_0: {
      const auto* b = static_cast<const BlockQ8_0*>(src);
      for (int64_t i = 0; i < n / QK; ++i, dst += QK) {
        const float d = f16_to_f32(b[i].d);
        for (int j = 0; j < QK; ++j) dst[j] = d * static_cast<float>(b[i].qs[j]);
      }
      return;
    }
    case DType::Q4_0: {
      const auto* b = static_cast<const BlockQ4_0*>(src);
      for (int64_t i = 0; i < n / QK; ++i, dst += QK) {
        const float d = f16_to_f32(b[i].d);
        for (int j = 0; j < QK / 2; ++j) {
          dst[j] = d * static_cast<float>((b[i].qs[j] & 0x0F) - 8);
          dst[j + QK / 2] = d * static_cast<float>((b[i].qs[j] >> 4) - 8);
        }
      }
      return;
    }
    case DType::Q4_1: {
      const auto* b = static_cast<const BlockQ4_1*>(src);
      for (int64_t i = 0; i < n / QK; ++i, dst += QK) {
        const float d = f16_to_f32(b[i].d);
        const float m = f16_to_f32(b[i].m);
        for (int j = 0; j < QK / 2; ++j) {
          dst[j] = d * static_cast<float>(b[i].qs[j] & 0x0F) + m;
          dst[j + QK / 2] = d * static_cast<float>(b[i].qs[j] >> 4) + m;
        }
      }
      return;
    }
    default:
      throw std::invalid_argument(std::string("[cpu.dequant] expected a weight dtype, found ") + dtype_name(t));
  }
}

float scalar_dot(const float* a, const float* b, int64_t n) {
  // Four partial sums: the same association order as a 4-lane SIMD loop, and vectorizable.
  float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

void scalar_axpy(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

const RowKernels SCALAR = {"scalar", scalar_dequant_row, scalar_dot, scalar_axpy};

const RowKernels& choose_kernels() {
  const char* env = std::getenv("LONGBOW_CPU_SIMD");
  if (env != nullptr && std::string(env) == "scalar") return SCALAR;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (avx2_kernels() != nullptr && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c")) {
    return *avx2_kernels();
  }
#endif
  return SCALAR;
}

// Rows of W dequantized per tile: at most ~256 KiB of f32 scratch per thread.
int tile_rows(int K) { return std::clamp(65536 / std::max(K, 1), 1, 16); }

}  // namespace

const RowKernels& scalar_kernels() { return SCALAR; }

const RowKernels& row_kernels() {
  static const RowKernels& k = choose_kernels();
  return k;
}

#if !(defined(__x86_64__) || defined(__i386__))
const RowKernels* avx2_kernels() { return nullptr; }
#endif

void op_matmul(Ctx& c, const MatmulArgs& a) {
  const char* where = "cpu.matmul";
  require(a.M >= 0 && a.N >= 0 && a.K >= 0, where,
          "expected non-negative M, N, K, found " + std::to_string(a.M) + ", " + std::to_string(a.N) + ", " +
              std::to_string(a.K));
  if (a.M == 0 || a.N == 0) return;
  const size_t row_bytes = dtype_row_bytes(a.w_dtype, a.K);
  const size_t M = a.M, N = a.N, K = a.K;
  float* out = view_as<float>(a.out, M * N, where, "out");                                    // (M, N)
  const float* x = view_as<const float>(a.x, M * K, where, "x");                              // (M, K)
  const auto* w = static_cast<const uint8_t*>(view_ptr(a.w, N * row_bytes, where, "w"));     // (N, K) w_dtype
  const float* bias = a.bias.empty() ? nullptr : view_as<const float>(a.bias, N, where, "bias");  // (N,)

  const RowKernels& kern = row_kernels();
  const int tile = tile_rows(a.K);
  const bool direct = a.w_dtype == DType::F32;  // f32 rows are used in place
  if (!direct) c.scratch.ensure(c.pool.num_threads(), static_cast<size_t>(tile) * K);

  c.pool.parallel_for(a.N, [&](int64_t begin, int64_t end, int thread_idx) {
    float* wt = direct ? nullptr : c.scratch.f32[thread_idx].data();  // (tile, K)
    for (int64_t n0 = begin; n0 < end; n0 += tile) {
      const int64_t rows = std::min<int64_t>(tile, end - n0);
      const float* tile_ptr;
      if (direct) {
        tile_ptr = reinterpret_cast<const float*>(w + n0 * row_bytes);
      } else {
        for (int64_t j = 0; j < rows; ++j) kern.dequant_row(a.w_dtype, w + (n0 + j) * row_bytes, wt + j * K, a.K);
        tile_ptr = wt;
      }
      for (size_t m = 0; m < M; ++m) {
        const float* xm = x + m * K;
        float* om = out + m * N + n0;
        for (int64_t j = 0; j < rows; ++j) {
          float acc = kern.dot(xm, tile_ptr + j * K, a.K);
          if (bias) acc += bias[n0 + j];
          om[j] = a.accumulate ? om[j] + acc : acc;
        }
      }
    }
  });
}

}  // namespace longbow::cpu
