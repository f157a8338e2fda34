// Simulator-specific controls of the metal-sim backend (thread order of the MSL simulator).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace longbow::metal {

// Thread order used by every later simulated dispatch: "inorder", "reverse" or "random" (with
// seed). Defaults come from LONGBOW_SIM_ORDER / LONGBOW_SIM_SEED; std::invalid_argument otherwise.
void set_sim_thread_order(const std::string& order, uint64_t seed);
// (order, seed) currently in effect.
std::string sim_thread_order();
uint64_t sim_seed();
// Host names of every kernel compiled into the simulator's registry.
std::vector<std::string> sim_kernel_names();

}  // namespace longbow::metal
