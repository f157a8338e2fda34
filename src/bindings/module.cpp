// longbow._core: the pybind11 module. Conversions and docstrings only; logic lives in the core.
#include <stdexcept>

#include "bindings.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "longbow C++ core: model files, backends, ops and the engine";
  longbow::bindings::bind_core(m);
  longbow::bindings::bind_weights(m);
  longbow::bindings::bind_ops(m);
  longbow::bindings::bind_engine(m);
}
