// Runtime services called by the shim headers and the generated launchers from inside a fiber.
#pragma once
#include <cstddef>
#include <cstdint>
#include <source_location>
#include "sim.h"

namespace msl_sim {

// Built-in values of one thread, read by generated launchers.
struct ThreadCtx {
  std::uint32_t thread_position_in_grid[3];
  std::uint32_t thread_position_in_threadgroup[3];
  std::uint32_t threadgroup_position_in_grid[3];
  std::uint32_t threads_per_threadgroup[3];
  std::uint32_t threadgroups_per_grid[3];
  std::uint32_t threads_per_grid[3];
  std::uint32_t thread_index_in_threadgroup;
  std::uint32_t thread_index_in_simdgroup;
  std::uint32_t simdgroup_index_in_threadgroup;
  std::uint32_t simdgroups_per_threadgroup;
  void* const* buffers;           // (num_buffers,)
  void* const* threadgroup_args;  // (num_threadgroup_args,)
};

// A synchronisation call site (file:line of the .metal source thanks to #line).
struct Site {
  const char* file = "";
  unsigned line = 0;
  unsigned column = 0;
  const char* what = "";  // e.g. "simd_sum"
  static Site here(const char* what, std::source_location loc) {
    return Site{loc.file_name(), loc.line(), loc.column(), what};
  }
};

// The values every active lane passed to one SIMD-group collective.
struct SimdSnapshot {
  static constexpr std::size_t MAX_VALUE_BYTES = 64;
  std::uint32_t active = 0;  // bit l: lane l took part
  std::uint32_t args[SIMD_WIDTH];
  alignas(16) unsigned char values[SIMD_WIDTH][MAX_VALUE_BYTES];
};

enum class PoisonKind { nan_bytes, cd_bytes };

namespace detail {
void threadgroup_barrier(const Site& site);
// Waits until every live lane of the caller's SIMD group reached this collective at the same site.
// arg_uniform: the lanes' args must be equal (shuffle deltas, broadcast lanes).
const SimdSnapshot& simd_collective(const Site& site, const void* value, std::size_t bytes,
                                    std::uint32_t arg, bool arg_uniform);
std::uint32_t current_lane();
// Memory of an in-body `threadgroup T x[N];` declaration, shared by the threadgroup, poisoned.
void* threadgroup_var(const Site& site, std::size_t bytes, std::size_t align, PoisonKind poison);
[[noreturn]] void fail(const Site& site, const std::string& message);
}  // namespace detail

}  // namespace msl_sim
