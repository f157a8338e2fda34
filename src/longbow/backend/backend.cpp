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

const char* mlp_path_name(MlpPath p) {
  switch (p) {
    case MlpPath::Auto: return "auto";
    case MlpPath::Custom: return "custom";
    case MlpPath::Vendor: return "vendor";
  }
  return "?";
}

MlpPath mlp_path_from_name(const std::string& name) {
  for (MlpPath p : {MlpPath::Auto, MlpPath::Custom, MlpPath::Vendor}) {
    if (name == mlp_path_name(p)) return p;
  }
  throw std::invalid_argument("[mlp] expected \"auto\", \"custom\" or \"vendor\", found \"" + name +
                              "\"");
}

void Backend::mlp(const MlpArgs& a) {
  const MatmulArgs gate_up[] = {{.out = a.gate,
                                 .x = a.x,
                                 .w = a.w_gate,
                                 .bias = a.b_gate,
                                 .w_dtype = a.gate_dtype,
                                 .M = a.M,
                                 .N = a.F,
                                 .K = a.D},
                                {.out = a.up,
                                 .x = a.x,
                                 .w = a.w_up,
                                 .bias = a.b_up,
                                 .w_dtype = a.up_dtype,
                                 .M = a.M,
                                 .N = a.F,
                                 .K = a.D}};
  matmul_group(gate_up);
  glu({.out = a.gate, .gate = a.gate, .up = a.up, .num_rows = a.M, .dim = a.F, .act = a.act});
  matmul({.out = a.out,
          .x = a.gate,
          .w = a.w_down,
          .bias = a.b_down,
          .w_dtype = a.down_dtype,
          .M = a.M,
          .N = a.D,
          .K = a.F,
          .accumulate = a.accumulate});
}

}  // namespace longbow
