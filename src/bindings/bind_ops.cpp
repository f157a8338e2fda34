#include "bindings.h"

namespace longbow::bindings {
void bind_ops(pybind11::module_& m) {}
}  // namespace longbow::bindings
