// Matmul out (M, N) = x (M, K) · wᵀ for every weight dtype, plus the portable scalar row kernels
// and the run-time choice between them and the AVX2 ones (matmul_avx2.cpp).
//
// Every weight arrives packed in 16-row panels (CpuBackend::matmul_weight, matmul_kernels.h).
// Quantized weights: activations are quantized once to BlockQ16A, then each kernel call computes
// 16 rows x mr tokens with integer block dot products. Float weights: activations are transposed
// once per group of mr tokens, then each call computes 32 rows x mr tokens of FMA chains. Prefill
// splits the tokens over the threads and walks the weights in cache tiles; decode and small
// batches split the panels.
#include <algorithm>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "longbow/backend/cpu/cpu_ops.h"
#include "longbow/backend/cpu/matmul/matmul_kernels.h"
#include "longbow/backend/cpu/simd/cpu_features.h"
#include "longbow/backend/op_checks.h"

namespace longbow::cpu {

namespace {

void scalar_dequant_row(DType t, const void* src, float* dst, int64_t n) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float)); return;
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
      throw std::invalid_argument(std::string("[cpu.dequant] expected a weight dtype, found ") +
                                  dtype_name(t));
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
  if (cpu_isa().avx2 && avx2_kernels() != nullptr) return *avx2_kernels();
  return SCALAR;
}

}  // namespace

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

}  // namespace

const MatmulKernels& matmul_kernels() {
  static const MatmulKernels& k = []() -> const MatmulKernels& {
    const CpuIsa& isa = cpu_isa();
    if (isa.neon && neon_matmul_kernels() != nullptr) return *neon_matmul_kernels();
    if (isa.avx512_vnni && avx512_matmul_kernels() != nullptr) return *avx512_matmul_kernels();
    if (isa.avx2 && avx2_matmul_kernels() != nullptr) return *avx2_matmul_kernels();
    return scalar_matmul_kernels();
  }();
  return k;
}

namespace {

// One part of a (group) matmul, its views bound and checked; the weight is packed in 16-row panels
// (quantized blocks or k-major float elements, matmul_kernels.h).
struct PackedPart {
  DType dtype;
  size_t N;
  float* out;         // (M, N)
  const float* bias;  // (N,) or nullptr
  bool accumulate;
  const uint8_t* w;    // packed panels
  size_t panel_bytes;  // one panel
  int64_t panels;      // ceil(N / 16)
};

PackedPart bind_part(const MatmulArgs& a, const char* where) {
  const size_t M = a.M, N = a.N, K = a.K;
  const auto* packed = dynamic_cast<const PackedWeight*>(a.w.buffer);
  require(packed != nullptr && a.w.offset == 0, where, [&] {
    return std::string("w: expected a ") + dtype_name(a.w_dtype) +
           " weight made by Backend::matmul_weight (packed 16-row panels), found a plain buffer or "
           "view";
  });
  require(packed->dtype() == a.w_dtype && packed->rows() == a.N && packed->cols() == a.K, where,
          [&] {
            return std::string("w: expected packed (") + std::to_string(a.N) + ", " +
                   std::to_string(a.K) + ") " + dtype_name(a.w_dtype) + ", found packed (" +
                   std::to_string(packed->rows()) + ", " + std::to_string(packed->cols()) + ") " +
                   dtype_name(packed->dtype());
          });
  require(!is_block_quant(a.w_dtype) || K % QK == 0, where,
          [&] { return "expected K a multiple of 32, found " + std::to_string(K); });
  PackedPart p;
  p.dtype = a.w_dtype;
  p.N = N;
  p.out = view_as<float>(a.out, M * N, where, "out");
  p.bias = a.bias.empty() ? nullptr : view_as<const float>(a.bias, N, where, "bias");
  p.accumulate = a.accumulate;
  p.w = static_cast<const uint8_t*>(view_ptr(a.w, packed_bytes(a.w_dtype, N, K), where, "w"));
  p.panel_bytes = panel_bytes(a.w_dtype, static_cast<int64_t>(K));
  p.panels = static_cast<int64_t>((N + PANEL_ROWS - 1) / PANEL_ROWS);
  return p;
}

// Quantized weights: every activation row is quantized once (shared by all parts), then integer
// dot products against the weight panels. Threads split the tokens (prefill) or the panels of
// all parts taken together (decode, small batches), so a group is one dispatch.
void matmul_quantized(Ctx& c, std::span<const PackedPart> parts, const float* x, size_t M,
                      size_t K) {
  const MatmulKernels& mk = matmul_kernels();
  const size_t nb = K / QK;
  c.scratch.act_q.resize(std::max<size_t>(M * nb, 1) * sizeof(BlockQ16A));
  auto* xq = reinterpret_cast<BlockQ16A*>(c.scratch.act_q.data());  // (M, K/32) BlockQ16A
  if (M >= 4) {
    c.pool.parallel_for(static_cast<int64_t>(M), [&](int64_t b, int64_t e, int) {
      for (int64_t m = b; m < e; ++m)
        mk.quantize_q16a(x + m * K, xq + m * nb, static_cast<int64_t>(K));
    });
  } else {
    for (size_t m = 0; m < M; ++m)
      mk.quantize_q16a(x + m * K, xq + m * nb, static_cast<int64_t>(K));
  }
  // Tokens [t0, t1) x panels [p_begin, p_end) of one part: tiles of panels, each streamed past
  // every mr-token group.
  auto run = [&](const PackedPart& p, size_t t0, size_t t1, int64_t p_begin, int64_t p_end) {
    // Panels per cache tile: every activation row streams past a tile that stays in L2.
    const int64_t ptile = std::clamp<int64_t>(65536 / std::max<size_t>(p.panel_bytes, 1), 1, 64);
    float r[MAX_MR * PANEL_ROWS];  // (mr, 16)
    for (int64_t p0 = p_begin; p0 < p_end; p0 += ptile) {
      const int64_t p1 = std::min<int64_t>(p_end, p0 + ptile);
      for (size_t m0 = t0; m0 < t1; m0 += mk.mr) {
        const int mr = static_cast<int>(std::min<size_t>(mk.mr, t1 - m0));
        for (int64_t q = p0; q < p1; ++q) {
          const size_t n0 = static_cast<size_t>(q) * PANEL_ROWS;
          const int rows = static_cast<int>(std::min<size_t>(PANEL_ROWS, p.N - n0));
          const uint8_t* panel = p.w + q * p.panel_bytes;
          if (rows == PANEL_ROWS && p.bias == nullptr && !p.accumulate) {  // straight into out
            mk.dot_q(p.dtype, panel, xq + m0 * nb, nb, mr, static_cast<int64_t>(nb),
                     p.out + m0 * p.N + n0, p.N);
            continue;
          }
          mk.dot_q(p.dtype, panel, xq + m0 * nb, nb, mr, static_cast<int64_t>(nb), r, PANEL_ROWS);
          for (int i = 0; i < mr; ++i) {
            store(p.out + (m0 + i) * p.N + n0, r + i * PANEL_ROWS, rows,
                  p.bias ? p.bias + n0 : nullptr, p.accumulate);
          }
        }
      }
    }
  };
  const int64_t groups = static_cast<int64_t>((M + mk.mr - 1) / mk.mr);  // mr-token groups
  if (groups >= 2 * c.pool.num_threads()) {
    // Prefill (>= 2 mr-groups per thread): threads split the tokens and each streams all the
    // weights (shared in L3): 8-17 % faster than splitting panels (prefill of 48-512 tokens).
    c.pool.parallel_for(groups, [&](int64_t g0, int64_t g1, int) {
      const size_t t0 = static_cast<size_t>(g0) * mk.mr,
                   t1 = std::min<size_t>(M, static_cast<size_t>(g1) * mk.mr);
      for (const PackedPart& p : parts) run(p, t0, t1, 0, p.panels);
    });
    return;
  }
  // Fewer tokens (decode, small batches) are memory-bound: each thread streams its share of the
  // panels of all parts, taken as one sequence.
  int64_t total = 0;
  for (const PackedPart& p : parts) total += p.panels;
  c.pool.parallel_for(total, [&](int64_t g0, int64_t g1, int) {
    int64_t first = 0;  // global index of the current part's panel 0
    for (const PackedPart& p : parts) {
      const int64_t b = std::max<int64_t>(g0 - first, 0),
                    e = std::min<int64_t>(g1 - first, p.panels);
      if (b < e) run(p, 0, M, b, e);
      first += p.panels;
    }
  });
}

// Float weights (F32/F16/BF16 panels): activations transposed once per group of mr tokens
// (xt, shared by all parts), then FMA-chain tiles of 2 panels x mr tokens. Threads split the
// token groups (prefill) or the panels of all parts taken together (decode, small batches).
void matmul_float(Ctx& c, std::span<const PackedPart> parts, const float* x, size_t M, size_t K) {
  const MatmulKernels& mk = matmul_kernels();
  const size_t mr_max = static_cast<size_t>(mk.fp_mr);
  const int64_t groups = static_cast<int64_t>((M + mr_max - 1) / mr_max);
  // xt: group g (tokens [g mr_max, +mr)) at g * mr_max * K, as (K, mr); M = 1 needs no transpose.
  const float* xt = x;
  if (M > 1) {
    c.scratch.act_f.resize(M * K);
    float* t = c.scratch.act_f.data();
    auto transpose = [&](int64_t g0, int64_t g1, int) {
      for (int64_t g = g0; g < g1; ++g) {
        const size_t m0 = static_cast<size_t>(g) * mr_max, mr = std::min(mr_max, M - m0);
        float* dst = t + m0 * K;
        for (size_t m = 0; m < mr; ++m)
          for (size_t k = 0; k < K; ++k) dst[k * mr + m] = x[(m0 + m) * K + k];
      }
    };
    if (groups >= 4) {
      c.pool.parallel_for(groups, transpose);
    } else {
      transpose(0, groups, 0);
    }
    xt = t;
  }
  // Token groups [g0, g1) x panels [p_begin, p_end) of one part: tiles of panels that stay in L2,
  // each streamed past every token group, two panels per kernel call.
  auto run = [&](const PackedPart& p, int64_t g0, int64_t g1, int64_t p_begin, int64_t p_end) {
    const int64_t ptile = std::clamp<int64_t>(262144 / std::max<size_t>(p.panel_bytes, 1), 2, 64);
    float r[FP_MAX_MR * 2 * PANEL_ROWS];  // (mr, 32)
    for (int64_t p0 = p_begin; p0 < p_end; p0 += ptile) {
      const int64_t p1 = std::min<int64_t>(p_end, p0 + ptile);
      for (int64_t g = g0; g < g1; ++g) {
        const size_t m0 = static_cast<size_t>(g) * mr_max;
        const int mr = static_cast<int>(std::min(mr_max, M - m0));
        for (int64_t q = p0; q < p1; q += 2) {
          const int np = static_cast<int>(std::min<int64_t>(2, p1 - q));
          const size_t n0 = static_cast<size_t>(q) * PANEL_ROWS;
          const int rows = static_cast<int>(std::min<size_t>(np * PANEL_ROWS, p.N - n0));
          const uint8_t* panels = p.w + q * p.panel_bytes;
          if (rows == np * PANEL_ROWS && p.bias == nullptr && !p.accumulate) {
            mk.dot_fp(p.dtype, panels, p.panel_bytes, np, xt + m0 * K, mr, static_cast<int64_t>(K),
                      p.out + m0 * p.N + n0, p.N);
            continue;
          }
          mk.dot_fp(p.dtype, panels, p.panel_bytes, np, xt + m0 * K, mr, static_cast<int64_t>(K), r,
                    2 * PANEL_ROWS);
          for (int i = 0; i < mr; ++i) {
            store(p.out + (m0 + i) * p.N + n0, r + i * 2 * PANEL_ROWS, rows,
                  p.bias ? p.bias + n0 : nullptr, p.accumulate);
          }
        }
      }
    }
  };
  if (groups >= 2 * c.pool.num_threads()) {
    c.pool.parallel_for(groups, [&](int64_t g0, int64_t g1, int) {
      for (const PackedPart& p : parts) run(p, g0, g1, 0, p.panels);
    });
    return;
  }
  // Panel pairs of all parts as one sequence, so a thread's share never splits a pair.
  int64_t total = 0;
  for (const PackedPart& p : parts) total += (p.panels + 1) / 2;
  c.pool.parallel_for(total, [&](int64_t u0, int64_t u1, int) {
    int64_t first = 0;  // global index of the current part's pair 0
    for (const PackedPart& p : parts) {
      const int64_t pairs = (p.panels + 1) / 2;
      const int64_t b = std::max<int64_t>(u0 - first, 0), e = std::min<int64_t>(u1 - first, pairs);
      if (b < e) run(p, 0, groups, 2 * b, std::min(2 * e, p.panels));
      first += pairs;
    }
  });
}

// Whether every part has a quantized weight (true) or every part a float one (false); mixed
// groups run part by part.
bool same_family(std::span<const MatmulArgs> parts) {
  for (const MatmulArgs& a : parts) {
    if (is_block_quant(a.w_dtype) != is_block_quant(parts[0].w_dtype)) return false;
  }
  return true;
}

void matmul_packed(Ctx& c, std::span<const PackedPart> parts, const float* x, size_t M, size_t K) {
  if (parts.empty()) return;
  if (is_block_quant(parts[0].dtype)) return matmul_quantized(c, parts, x, M, K);
  matmul_float(c, parts, x, M, K);
}

}  // namespace

void op_matmul_group(Ctx& c, std::span<const MatmulArgs> parts) {
  const char* where = "cpu.matmul_group";
  check_matmul_group(parts, where);
  if (parts.empty()) return;
  if (!same_family(parts) || parts.size() == 1) {
    for (const MatmulArgs& a : parts) op_matmul(c, a);
    return;
  }
  const MatmulArgs& a0 = parts[0];
  require(a0.M >= 0 && a0.K >= 0, where, [&] {
    return "expected non-negative M, K, found " + std::to_string(a0.M) + ", " +
           std::to_string(a0.K);
  });
  if (a0.M == 0) return;
  // Bound parts: on the stack for the model's groups (q/k/v, gate/up), so a step allocates nothing.
  constexpr size_t STACK_PARTS = 4;
  PackedPart on_stack[STACK_PARTS];
  std::vector<PackedPart> on_heap(parts.size() > STACK_PARTS ? parts.size() : 0);
  PackedPart* bound = on_heap.empty() ? on_stack : on_heap.data();
  size_t num_bound = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    require(parts[i].N >= 0, where,
            [&] { return "part " + std::to_string(i) + ": expected N >= 0"; });
    if (parts[i].N > 0) bound[num_bound++] = bind_part(parts[i], where);
  }
  const float* x =
      view_as<const float>(a0.x, static_cast<size_t>(a0.M) * a0.K, where, "x");  // (M, K)
  matmul_packed(c, {bound, num_bound}, x, a0.M, a0.K);
}

void op_matmul(Ctx& c, const MatmulArgs& a) {
  const char* where = "cpu.matmul";
  require(a.M >= 0 && a.N >= 0 && a.K >= 0, where, [&] {
    return "expected non-negative M, N, K, found " + std::to_string(a.M) + ", " +
           std::to_string(a.N) + ", " + std::to_string(a.K);
  });
  if (a.M == 0 || a.N == 0) return;
  const float* x = view_as<const float>(a.x, static_cast<size_t>(a.M) * a.K, where, "x");  // (M, K)
  const PackedPart part = bind_part(a, where);
  matmul_packed(c, {&part, 1}, x, a.M, a.K);
}

}  // namespace longbow::cpu
