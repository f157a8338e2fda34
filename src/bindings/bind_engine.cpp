#include "bindings.h"

namespace longbow::bindings {
void bind_engine(pybind11::module_& m) {}
}  // namespace longbow::bindings
