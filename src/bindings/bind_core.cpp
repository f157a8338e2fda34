#include <pybind11/stl.h>

#include "bindings.h"
#include "longbow/backend/backend.h"

namespace py = pybind11;

namespace longbow::bindings {
void bind_core(py::module_& m) {
  m.def("available_backends", &available_backends, "Names of the backends usable in this build.");
}
}  // namespace longbow::bindings
