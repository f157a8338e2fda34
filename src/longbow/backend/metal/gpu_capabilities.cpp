#include "longbow/backend/metal/gpu_capabilities.h"

namespace longbow::metal {

std::string gpu_capability_problem(const GpuCapabilities& caps) {
  std::string missing;
  if (!caps.apple7) missing += "the Apple7 GPU family (M1 or later)";
  if (!caps.metal3) missing += std::string(missing.empty() ? "" : " and ") + "Metal 3";
  if (missing.empty()) return "";
  return "[metal] GPU '" + caps.name + "' lacks " + missing +
         ", which longbow's kernels need (32-lane SIMD groups, simdgroup_matrix); use the cpu "
         "backend";
}

std::string simd_width_problem(const std::string& kernel, uint32_t simd_width) {
  if (simd_width == REQUIRED_SIMD_WIDTH) return "";
  return "[metal] kernel " + kernel + " runs with SIMD groups of " + std::to_string(simd_width) +
         " threads on this GPU; longbow's kernels need " + std::to_string(REQUIRED_SIMD_WIDTH) +
         " (use the cpu backend)";
}

}  // namespace longbow::metal
