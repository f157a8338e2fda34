// Default implementations of the Backend interface (backend.h).
#include <stdexcept>
#include <string>

#include "longbow/backend/backend.h"
#include "longbow/backend/op_checks.h"

namespace longbow {

std::unique_ptr<Buffer> Backend::matmul_weight(const void* ptr, DType dtype, int N, int K) {
  if (N < 0 || K < 0) {
    throw std::invalid_argument("[" + name() +
                                ".matmul_weight] expected non-negative N, K, found " +
                                std::to_string(N) + ", " + std::to_string(K));
  }
  return wrap_host(ptr, static_cast<size_t>(N) * dtype_row_bytes(dtype, K));
}

void Backend::matmul_group(std::span<const MatmulArgs> parts) {
  check_matmul_group(parts, name() + ".matmul_group");
  for (const MatmulArgs& a : parts) matmul(a);
}

}  // namespace longbow
