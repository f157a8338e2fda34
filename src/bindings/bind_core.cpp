#include <pybind11/stl.h>

#include "bindings.h"
#include "longbow/backend/backend.h"
#include "longbow/backend/cpu/vendor_blas.h"
#include "longbow/backend/op_checks.h"
#if defined(LONGBOW_HAS_METAL) || defined(LONGBOW_HAS_METAL_SIM)
#include "longbow/backend/metal/kernel_names.h"
#endif
#if defined(LONGBOW_HAS_METAL_SIM)
#include "longbow/backend/metal/sim_runtime.h"
#endif

namespace py = pybind11;

namespace longbow::bindings {
void bind_core(py::module_& m) {
  m.def("available_backends", &available_backends, "Names of the backends usable in this build.");
  m.def("set_blas_library", &cpu::set_blas_library, py::arg("path"),
        "The CBLAS shared library the CPU's vendor MLP path loads on first use (before any "
        "engine uses it; LONGBOW_BLAS_LIBRARY wins).");
  m.def("vendor_blas_status", &cpu::vendor_blas_status,
        "The vendor BLAS the CPU backend loaded, or why there is none (loads it if needed).");
  m.def(
      "kv_row_bytes",
      [](const std::string& dtype, int head_dim) {
        const DType t = kv_dtype_from_name(dtype, "kv_row_bytes");
        check_kv_dtype(t, head_dim, "kv_row_bytes");
        return kv_row_bytes(t, head_dim);
      },
      py::arg("kv_dtype"), py::arg("head_dim"),
      "Bytes of one (token, kv head) row of head_dim values in a KV cache of kv_dtype.");
#if defined(LONGBOW_HAS_METAL) || defined(LONGBOW_HAS_METAL_SIM)
  m.def("metal_kernel_names", &metal::all_kernel_names,
        "Every kernel host name the Metal host code can request (sorted).");
#endif
#if defined(LONGBOW_HAS_METAL_SIM)
  m.def("sim_kernel_names", &metal::sim_kernel_names,
        "Host names of the kernels compiled into the MSL simulator.");
  m.def(
      "set_sim_thread_order", &metal::set_sim_thread_order, py::arg("order"), py::arg("seed") = 0,
      "Thread order of later metal-sim dispatches: 'inorder', 'reverse' or 'random' (with seed).");
  m.def(
      "sim_thread_order",
      [] { return py::make_tuple(metal::sim_thread_order(), metal::sim_seed()); },
      "(order, seed) of the metal-sim backend (defaults: LONGBOW_SIM_ORDER, LONGBOW_SIM_SEED).");
#endif
}
}  // namespace longbow::bindings
