// Matmul out (M, N) = x (M, K) · wᵀ for every weight dtype, plus the portable scalar row kernels
// and the run-time choice between them and the AVX2 ones (matmul_avx2.cpp).
//
// Each thread owns a contiguous range of W rows (decode, M = 1, is parallel over N). Quantized
// weights arrive packed in 16-row panels (CpuBackend::matmul_weight): activations are quantized
// once to BlockQ16A, then each kernel call computes 16 rows x mr tokens with integer block dot
// products (matmul_kernels.h). Float weights: direct SIMD dot products, or on the scalar path a
// tile of W rows dequantized once and reused for all M activation rows. Prefill walks W in cache
// tiles and runs mk.mr (<= MAX_MR) activation rows per weight row or panel.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "longbow/backend/cpu/cpu_features.h"
#include "longbow/backend/cpu/cpu_ops.h"
#include "longbow/backend/cpu/matmul_kernels.h"

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
  if (avx2_kernels() != nullptr && cpu_has_avx2_fma_f16c()) {
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

namespace {

// Applies bias / accumulate to `rows` results r[0..rows) that belong at out[0..rows).
inline void store(float* out, const float* r, int rows, const float* bias, bool accumulate) {
  for (int j = 0; j < rows; ++j) {
    const float v = bias ? r[j] + bias[j] : r[j];
    out[j] = accumulate ? out[j] + v : v;
  }
}

// W rows per cache tile: small enough that the tile stays in L1/L2 while every activation row
// streams past it.
int64_t w_tile_rows(size_t row_bytes) { return std::clamp<int64_t>(16384 / std::max<size_t>(row_bytes, 1), 4, 64); }

}  // namespace

const MatmulKernels& matmul_kernels() {
  static const MatmulKernels& k = [&]() -> const MatmulKernels& {
    const char* env = std::getenv("LONGBOW_CPU_SIMD");
    if (env != nullptr && std::string(env) == "scalar") return scalar_matmul_kernels();
    if (neon_matmul_kernels() != nullptr) return *neon_matmul_kernels();  // arm64: NEON is baseline
    // x86-64: AVX-512 (own CPUID check) unless capped at AVX2, else the row kernels' check (AVX2 + FMA + F16C).
    const bool cap_avx2 = env != nullptr && std::string(env) == "avx2";
    if (!cap_avx2 && avx512_matmul_kernels() != nullptr) return *avx512_matmul_kernels();
    if (std::string(row_kernels().name) == "avx2" && avx2_matmul_kernels() != nullptr) return *avx2_matmul_kernels();
    return scalar_matmul_kernels();
  }();
  return k;
}

void op_matmul(Ctx& c, const MatmulArgs& a) {
  const char* where = "cpu.matmul";
  require(a.M >= 0 && a.N >= 0 && a.K >= 0, where, [&] {
    return "expected non-negative M, N, K, found " + std::to_string(a.M) + ", " + std::to_string(a.N) + ", " +
           std::to_string(a.K);
  });
  if (a.M == 0 || a.N == 0) return;
  const size_t M = a.M, N = a.N, K = a.K;
  float* out = view_as<float>(a.out, M * N, where, "out");                                        // (M, N)
  const float* x = view_as<const float>(a.x, M * K, where, "x");                                  // (M, K)
  const float* bias = a.bias.empty() ? nullptr : view_as<const float>(a.bias, N, where, "bias");  // (N,)
  const MatmulKernels& mk = matmul_kernels();

  if (is_block_quant(a.w_dtype)) {
    const auto* packed = dynamic_cast<const PackedWeight*>(a.w.buffer);
    require(packed != nullptr && a.w.offset == 0, where, [&] {
      return std::string("w: expected a ") + dtype_name(a.w_dtype) +
             " weight made by Backend::matmul_weight (packed 16-row panels), found a plain buffer or view";
    });
    require(packed->dtype() == a.w_dtype && packed->rows() == a.N && packed->cols() == a.K, where, [&] {
      return std::string("w: expected packed (") + std::to_string(a.N) + ", " + std::to_string(a.K) + ") " +
             dtype_name(a.w_dtype) + ", found packed (" + std::to_string(packed->rows()) + ", " +
             std::to_string(packed->cols()) + ") " + dtype_name(packed->dtype());
    });
    require(K % QK == 0, where, [&] { return "expected K a multiple of 32, found " + std::to_string(K); });
    const auto* w = static_cast<const uint8_t*>(view_ptr(a.w, packed_bytes(a.w_dtype, N, K), where, "w"));  // panels
    // Quantize every activation row once, then integer dot products against the weight panels.
    const size_t nb = K / QK;
    c.scratch.act_q.resize(std::max<size_t>(M * nb, 1) * sizeof(BlockQ16A));
    auto* xq = reinterpret_cast<BlockQ16A*>(c.scratch.act_q.data());  // (M, K/32) BlockQ16A
    if (M >= 4) {
      c.pool.parallel_for(a.M, [&](int64_t b, int64_t e, int) {
        for (int64_t m = b; m < e; ++m) mk.quantize_q16a(x + m * K, xq + m * nb, a.K);
      });
    } else {
      for (size_t m = 0; m < M; ++m) mk.quantize_q16a(x + m * K, xq + m * nb, a.K);
    }
    const size_t panel_bytes = nb * panel_block_bytes(a.w_dtype);
    const int64_t panels = static_cast<int64_t>((N + PANEL_ROWS - 1) / PANEL_ROWS);
    // Panels per cache tile: every activation row streams past a tile that stays in L2.
    const int64_t ptile = std::clamp<int64_t>(65536 / std::max<size_t>(panel_bytes, 1), 1, 64);
    // Tokens [t0, t1) x panels [p0, p1): tiles of panels, each streamed past every mr-token group.
    auto run = [&](size_t t0, size_t t1, int64_t p_begin, int64_t p_end) {
      float r[MAX_MR * PANEL_ROWS];  // (mr, 16)
      for (int64_t p0 = p_begin; p0 < p_end; p0 += ptile) {
        const int64_t p1 = std::min<int64_t>(p_end, p0 + ptile);
        for (size_t m0 = t0; m0 < t1; m0 += mk.mr) {
          const int mr = static_cast<int>(std::min<size_t>(mk.mr, t1 - m0));
          for (int64_t p = p0; p < p1; ++p) {
            const size_t n0 = static_cast<size_t>(p) * PANEL_ROWS;
            const int rows = static_cast<int>(std::min<size_t>(PANEL_ROWS, N - n0));
            if (rows == PANEL_ROWS && bias == nullptr && !a.accumulate) {  // straight into out
              mk.dot_q(a.w_dtype, w + p * panel_bytes, xq + m0 * nb, nb, mr, static_cast<int64_t>(nb), out + m0 * N + n0, N);
              continue;
            }
            mk.dot_q(a.w_dtype, w + p * panel_bytes, xq + m0 * nb, nb, mr, static_cast<int64_t>(nb), r, PANEL_ROWS);
            for (int i = 0; i < mr; ++i) {
              store(out + (m0 + i) * N + n0, r + i * PANEL_ROWS, rows, bias ? bias + n0 : nullptr, a.accumulate);
            }
          }
        }
      }
    };
    const int64_t groups = static_cast<int64_t>((M + mk.mr - 1) / mk.mr);  // mr-token groups
    if (groups >= 2 * c.pool.num_threads()) {
      // Prefill (>= 2 mr-groups per thread): threads split the tokens and each streams all the
      // weights (shared in L3): 8-17 % faster than splitting panels (prefill of 48-512 tokens).
      // Fewer tokens (decode, small batches) are memory-bound: each thread streams half the weights.
      c.pool.parallel_for(groups, [&](int64_t g0, int64_t g1, int) {
        run(static_cast<size_t>(g0) * mk.mr, std::min<size_t>(M, static_cast<size_t>(g1) * mk.mr), 0, panels);
      });
    } else {
      c.pool.parallel_for(panels, [&](int64_t p_begin, int64_t p_end, int) { run(0, M, p_begin, p_end); });
    }
    return;
  }

  const size_t row_bytes = dtype_row_bytes(a.w_dtype, a.K);
  const auto* w = static_cast<const uint8_t*>(view_ptr(a.w, N * row_bytes, where, "w"));  // (N, K) w_dtype
  const int64_t tile = w_tile_rows(row_bytes);

  if (mk.dot_f != nullptr) {
    c.pool.parallel_for(a.N, [&](int64_t begin, int64_t end, int) {
      float r[MAX_MR];
      for (int64_t n0 = begin; n0 < end; n0 += tile) {
        const int64_t n1 = std::min<int64_t>(end, n0 + tile);
        for (size_t m0 = 0; m0 < M; m0 += mk.mr) {
          const int mr = static_cast<int>(std::min<size_t>(mk.mr, M - m0));
          for (int64_t n = n0; n < n1; ++n) {
            mk.dot_f(a.w_dtype, w + n * row_bytes, x + m0 * K, K, mr, a.K, r, 1);
            for (int i = 0; i < mr; ++i) store(out + (m0 + i) * N + n, r + i, 1, bias ? bias + n : nullptr, a.accumulate);
          }
        }
      }
    });
    return;
  }

  // Portable path for float weights: dequantize a tile of W rows once, reuse it for every x row.
  const RowKernels& kern = row_kernels();
  const int ftile = tile_rows(a.K);
  const bool direct = a.w_dtype == DType::F32;  // f32 rows are used in place
  if (!direct) c.scratch.ensure(c.pool.num_threads(), static_cast<size_t>(ftile) * K);

  c.pool.parallel_for(a.N, [&](int64_t begin, int64_t end, int thread_idx) {
    float* wt = direct ? nullptr : c.scratch.f32[thread_idx].data();  // (ftile, K)
    for (int64_t n0 = begin; n0 < end; n0 += ftile) {
      const int64_t rows = std::min<int64_t>(ftile, end - n0);
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
