// Elementwise ops: glu (SwiGLU, GeGLU), add, softcap, get_rows; the scalar row kernels and the
// choice of the elementwise kernel set (elementwise_kernels.h).
#include <cmath>
#include <cstring>
#include <string>

#include "longbow/backend/cpu/cpu_ops.h"
#include "longbow/backend/cpu/elementwise_kernels.h"
#include "longbow/backend/cpu/simd/cpu_features.h"
#include "longbow/core/dtype.h"

namespace longbow::cpu {

namespace {
constexpr int64_t GRAIN = 16384;  // elements per parallel chunk below which we stay serial

// ---- portable scalar row kernels ----

void scalar_silu_mul(float* out, const float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void scalar_gelu_tanh_mul(float* out, const float* gate, const float* up, int64_t n) {
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = 0.5f * g * (1.0f + std::tanh(k * (g + 0.044715f * g * g * g))) * up[i];
  }
}

void scalar_to_f16(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_f16(x[i]);
}

double scalar_sum_squares(const float* x, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
  return s;
}

void scalar_scale_mul(const float* x, float inv, const float* w, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * inv * w[i];
}

const EltKernels SCALAR = {"scalar",      scalar_silu_mul,    scalar_gelu_tanh_mul,
                           scalar_to_f16, scalar_sum_squares, scalar_scale_mul};

const EltKernels& choose() {
  if (cpu_isa().avx2 && elt_avx2_kernels() != nullptr) return *elt_avx2_kernels();
  return SCALAR;
}
}  // namespace

const EltKernels& elt_kernels() {
  static const EltKernels& k = choose();
  return k;
}

#if !(defined(__x86_64__) || defined(__i386__))
const EltKernels* elt_avx2_kernels() { return nullptr; }
#endif

void op_glu(Ctx& c, const GluArgs& a) {
  const char* where = "cpu.glu";
  require(a.num_rows >= 0 && a.dim >= 0, where, "expected non-negative num_rows and dim");
  const size_t n = static_cast<size_t>(a.num_rows) * a.dim;
  float* out = view_as<float>(a.out, n, where, "out");                 // (num_rows, dim)
  const float* gate = view_as<const float>(a.gate, n, where, "gate");  // (num_rows, dim)
  const float* up = view_as<const float>(a.up, n, where, "up");        // (num_rows, dim)
  const EltKernels& kern = elt_kernels();
  const auto fn = a.act == Activation::Silu ? kern.silu_mul : kern.gelu_tanh_mul;
  auto body = [&](int64_t b, int64_t e, int) { fn(out + b, gate + b, up + b, e - b); };
  if (static_cast<int64_t>(n) < GRAIN) {
    body(0, static_cast<int64_t>(n), 0);
  } else {
    c.pool.parallel_for(static_cast<int64_t>(n), body);
  }
}

void op_add(Ctx& c, const AddArgs& a) {
  const char* where = "cpu.add";
  require(a.n >= 0, where, [&] { return "expected n >= 0, found " + std::to_string(a.n); });
  const size_t n = static_cast<size_t>(a.n);
  float* out = view_as<float>(a.out, n, where, "out");        // (n,)
  const float* x = view_as<const float>(a.a, n, where, "a");  // (n,)
  const float* y = view_as<const float>(a.b, n, where, "b");  // (n,)
  auto body = [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) out[i] = x[i] + y[i];
  };
  if (a.n < GRAIN) {
    body(0, a.n, 0);
  } else {
    c.pool.parallel_for(a.n, body);
  }
}

void op_softcap(Ctx& c, const SoftcapArgs& a) {
  const char* where = "cpu.softcap";
  require(a.n >= 0, where, [&] { return "expected n >= 0, found " + std::to_string(a.n); });
  require(a.cap > 0 && std::isfinite(a.cap), where,
          [&] { return "expected a finite cap > 0, found " + std::to_string(a.cap); });
  const size_t n = static_cast<size_t>(a.n);
  float* out = view_as<float>(a.out, n, where, "out");        // (n,)
  const float* x = view_as<const float>(a.x, n, where, "x");  // (n,)
  const float cap = a.cap;
  auto body = [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) out[i] = cap * std::tanh(x[i] / cap);
  };
  if (a.n < GRAIN) {
    body(0, a.n, 0);
  } else {
    c.pool.parallel_for(a.n, body);
  }
}

void op_get_rows(Ctx& c, const GetRowsArgs& a) {
  const char* where = "cpu.get_rows";
  require(a.num_rows >= 0 && a.dim >= 0 && a.num_src_rows >= 0, where,
          "expected non-negative sizes");
  const size_t dim = a.dim;
  float* out = view_as<float>(a.out, a.num_rows * dim, where, "out");  // (num_rows, dim)
  const float* x =
      view_as<const float>(a.x, a.num_src_rows * dim, where, "x");  // (num_src_rows, dim)
  const int32_t* rows = view_as<const int32_t>(a.rows, a.num_rows, where, "rows");  // (num_rows,)
  for (int i = 0; i < a.num_rows; ++i) {
    require(rows[i] >= 0 && rows[i] < a.num_src_rows, where, [&] {
      return "rows[" + std::to_string(i) + "]: expected 0 <= row < " +
             std::to_string(a.num_src_rows) + ", found " + std::to_string(rows[i]);
    });
    std::memcpy(out + i * dim, x + static_cast<size_t>(rows[i]) * dim, dim * sizeof(float));
  }
}

}  // namespace longbow::cpu
