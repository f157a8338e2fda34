// What a GPU must offer for longbow's Metal kernels, decided as pure functions (the Metal runtime
// asks the device; tests check the decisions on Linux). Every kernel assumes SIMD groups of 32
// lanes (simd_shuffle_xor reductions, lane == 31) and simdgroup_matrix, i.e. an Apple7+ GPU family
// (M1 and later) with Metal 3 (-std=metal3.0). A macOS VM's paravirtual GPU or an Intel/AMD Mac
// lacks them: the backend then refuses with this reason and "auto" falls back to the CPU.
#pragma once

#include <cstdint>
#include <string>

namespace longbow::metal {

// The SIMD-group width every kernel is written for.
constexpr uint32_t REQUIRED_SIMD_WIDTH = 32;

struct GpuCapabilities {
  std::string name;     // the device's name, for the message
  bool apple7 = false;  // supportsFamily(MTLGPUFamilyApple7)
  bool metal3 = false;  // supportsFamily(MTLGPUFamilyMetal3)
};

// Empty when the kernels can run on such a device, else the reason they cannot.
std::string gpu_capability_problem(const GpuCapabilities& caps);

// Empty when a pipeline's SIMD width (threadExecutionWidth) suits the kernels, else the reason.
std::string simd_width_problem(const std::string& kernel, uint32_t simd_width);

}  // namespace longbow::metal
