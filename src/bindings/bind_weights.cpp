#include "bindings.h"

namespace longbow::bindings {
void bind_weights(pybind11::module_& m) {}
}  // namespace longbow::bindings
