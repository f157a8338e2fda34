// The CPU's MLP block (Backend::mlp): our kernels, or the vendor BLAS's sgemm for float weights,
// chosen per shape from measurements made on this machine (MlpChooser).
#pragma once

#include <string>
#include <vector>

#include "longbow/backend/backend.h"
#include "longbow/backend/cpu/cpu_ops.h"

namespace longbow::cpu {

// Token-count buckets the chooser measures: M maps to the smallest bucket >= M (M > 512: 512).
constexpr int MLP_BUCKETS[] = {1, 8, 64, 512};
int mlp_bucket(int M);

constexpr double MLP_VENDOR_MARGIN = 0.9;  // the vendor must take < 90 % of our time
// One measured shape: the first call of a (weight dtype, D, F, bucket) runs both paths and keeps
// the pick; later calls reuse it.
struct MlpMeasurement {
  DType dtype;
  int D, F, bucket, M;          // M: the token count it was measured at
  double custom_us, vendor_us;  // the best of 6 runs each
  // Ours unless the vendor is clearly faster: ours is batch-invariant and reproducible bit for
  // bit, and a near tie would flip between runs.
  bool vendor() const { return vendor_us < MLP_VENDOR_MARGIN * custom_us; }
};

// The vendor path: out = (act(x·Wgᵀ + bg) * (x·Wuᵀ + bu))·Wdᵀ + bd with three sgemm calls on
// row-major f32 copies of the (F32/F16/BF16) weights, made on first use and kept with each
// weight (PackedWeight::f32_rows: 4 bytes per weight element). Throws std::invalid_argument for
// other weight dtypes and std::runtime_error when no vendor BLAS is loaded.
void vendor_mlp(Ctx& c, const MlpArgs& a);

// Why the vendor path cannot run these weights ("" when it can).
std::string vendor_mlp_unsupported(const MlpArgs& a);

}  // namespace longbow::cpu
