// RMSNorm (Zhang & Sennrich 2019): sum of squares in double, then one scale per row.
#include <cmath>
#include <string>

#include "longbow/backend/cpu/cpu_ops.h"
#include "longbow/backend/cpu/elementwise_kernels.h"

namespace longbow::cpu {

void op_rms_norm(Ctx& c, const RmsNormArgs& a) {
  const char* where = "cpu.rms_norm";
  require(a.num_rows >= 0 && a.dim > 0, where, [&] {
    return "expected num_rows >= 0 and dim > 0, found " + std::to_string(a.num_rows) + ", " +
           std::to_string(a.dim);
  });
  const size_t n = static_cast<size_t>(a.num_rows) * a.dim, dim = a.dim;
  float* out = view_as<float>(a.out, n, where, "out");                    // (num_rows, dim)
  const float* x = view_as<const float>(a.x, n, where, "x");              // (num_rows, dim)
  const float* w = view_as<const float>(a.weight, dim, where, "weight");  // (dim,)
  const EltKernels& kern = elt_kernels();
  c.pool.parallel_for(a.num_rows, [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; ++r) {
      const float* src = x + r * dim;
      const double ss = kern.sum_squares(src, a.dim);
      const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(dim) + a.eps));
      kern.scale_mul(src, inv, w, out + r * dim, a.dim);
    }
  });
}

}  // namespace longbow::cpu
