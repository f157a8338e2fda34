// Metal sample op encoder (kernel: metal/sample.metal, in progress): declined until it lands.
#include <stdexcept>

#include "longbow/backend/metal/metal_backend.h"

namespace longbow::metal {
void MetalBackend::sample(const SampleArgs&) { require_supported(Op::Sample, DType::I32, "sample"); }
}  // namespace longbow::metal
