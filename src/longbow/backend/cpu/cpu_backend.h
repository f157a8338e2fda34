// The CPU backend: the numerical reference and a fast portable backend (threads + SIMD).
#pragma once

#include <memory>

#include "longbow/backend/backend.h"

namespace longbow::cpu {

std::unique_ptr<Backend> make_cpu_backend(const BackendOptions& options);

}  // namespace longbow::cpu
