// Elementwise ops: silu_mul (SwiGLU), add, get_rows.
#include <cmath>
#include <cstring>
#include <string>

#include "longbow/backend/cpu/cpu_ops.h"

namespace longbow::cpu {

namespace {
constexpr int64_t GRAIN = 16384;  // elements per parallel chunk below which we stay serial
}

void op_silu_mul(Ctx& c, const SiluMulArgs& a) {
  const char* where = "cpu.silu_mul";
  require(a.num_rows >= 0 && a.dim >= 0, where, "expected non-negative num_rows and dim");
  const size_t n = static_cast<size_t>(a.num_rows) * a.dim;
  float* out = view_as<float>(a.out, n, where, "out");              // (num_rows, dim)
  const float* gate = view_as<const float>(a.gate, n, where, "gate");  // (num_rows, dim)
  const float* up = view_as<const float>(a.up, n, where, "up");        // (num_rows, dim)
  auto body = [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) {
      const float g = gate[i];
      out[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
  };
  if (static_cast<int64_t>(n) < GRAIN) {
    body(0, static_cast<int64_t>(n), 0);
  } else {
    c.pool.parallel_for(static_cast<int64_t>(n), body);
  }
}

void op_add(Ctx& c, const AddArgs& a) {
  const char* where = "cpu.add";
  require(a.n >= 0, where, "expected n >= 0, found " + std::to_string(a.n));
  const size_t n = static_cast<size_t>(a.n);
  float* out = view_as<float>(a.out, n, where, "out");      // (n,)
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

void op_get_rows(Ctx& c, const GetRowsArgs& a) {
  const char* where = "cpu.get_rows";
  require(a.num_rows >= 0 && a.dim >= 0 && a.num_src_rows >= 0, where, "expected non-negative sizes");
  const size_t dim = a.dim;
  float* out = view_as<float>(a.out, a.num_rows * dim, where, "out");             // (num_rows, dim)
  const float* x = view_as<const float>(a.x, a.num_src_rows * dim, where, "x");   // (num_src_rows, dim)
  const int32_t* rows = view_as<const int32_t>(a.rows, a.num_rows, where, "rows");  // (num_rows,)
  for (int i = 0; i < a.num_rows; ++i) {
    require(rows[i] >= 0 && rows[i] < a.num_src_rows, where,
            "rows[" + std::to_string(i) + "]: expected 0 <= row < " + std::to_string(a.num_src_rows) + ", found " +
                std::to_string(rows[i]));
    std::memcpy(out + i * dim, x + static_cast<size_t>(rows[i]) * dim, dim * sizeof(float));
  }
}

}  // namespace longbow::cpu
