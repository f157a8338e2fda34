// PLACEHOLDER until the CPU backend lands (being written now).
#include "longbow/backend/cpu/cpu_backend.h"

#include <stdexcept>

namespace longbow::cpu {
std::unique_ptr<Backend> make_cpu_backend(const BackendOptions&) {
  throw std::runtime_error("[cpu] backend not built yet");
}
}  // namespace longbow::cpu
