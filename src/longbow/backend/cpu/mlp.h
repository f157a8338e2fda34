// The CPU's MLP block (Backend::mlp): our kernels, or the vendor BLAS's sgemm for float weights,
// chosen per shape from measurements made on this machine (mlp_chooser.h).
#pragma once

#include <string>
#include <vector>

#include "longbow/backend/backend.h"
#include "longbow/backend/cpu/cpu_ops.h"

namespace longbow::cpu {

// The vendor path: out = (act(x·Wgᵀ + bg) * (x·Wuᵀ + bu))·Wdᵀ + bd with three sgemm calls on
// row-major f32 copies of the (F32/F16/BF16) weights, made on first use and kept with each
// weight (PackedWeight::f32_rows: 4 bytes per weight element). Throws std::invalid_argument for
// other weight dtypes and std::runtime_error when no vendor BLAS is loaded.
void vendor_mlp(Ctx& c, const MlpArgs& a);

// Why the vendor path cannot run these weights ("" when it can).
std::string vendor_mlp_unsupported(const MlpArgs& a);

}  // namespace longbow::cpu
