// Each bind_*.cpp adds one area of the C++ core to the module; module.cpp calls them all.
#pragma once

#include <pybind11/pybind11.h>

namespace longbow::bindings {
void bind_core(pybind11::module_& m);     // dtypes, backends list (bind_core.cpp)
void bind_weights(pybind11::module_& m);  // ModelFile, GGUF metadata (bind_weights.cpp)
void bind_ops(
    pybind11::module_& m);  // single backend ops on numpy arrays, for tests (bind_ops.cpp)
void bind_engine(pybind11::module_& m);  // Engine, SamplingParams, BlockManager (bind_engine.cpp)
}  // namespace longbow::bindings
