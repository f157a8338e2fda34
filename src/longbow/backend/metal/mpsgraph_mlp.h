// MPSGraph's MLP block for the Metal runtime (metal_cpp_runtime.cpp), implemented in
// mpsgraph_mlp.mm (Objective-C++, compiled only on Apple). Metal objects travel as void*: a
// metal-cpp object is the Objective-C object itself.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "longbow/core/dtype.h"

namespace longbow::metal {

// One block (GpuCommandBuffer::encode_vendor_mlp's VendorMlpCall with native buffers):
// id<MTLBuffer> and the byte offset of each view.
struct MpsGraphMlpCall {
  void *out, *x, *w_gate, *w_up, *w_down;
  size_t out_offset, x_offset, w_gate_offset, w_up_offset, w_down_offset;
  int M, D, F;
  DType dtype;  // F32, F16 or BF16 (all three weights)
  bool accumulate;
};

// Graphs compiled once per (token bucket, dtype, D, F, accumulate) and cached; the tokens of a
// call are copied into a bucket-sized scratch (blits), the graph runs on it, the rows come back.
// Computes in the weights' dtype (f16 / bf16 matmuls, as MLX does for such models; f32 for F32)
// with SiLU and the product in f32.
class MpsGraphMlp {
 public:
  explicit MpsGraphMlp(void* device);  // id<MTLDevice>
  ~MpsGraphMlp();
  MpsGraphMlp(const MpsGraphMlp&) = delete;
  MpsGraphMlp& operator=(const MpsGraphMlp&) = delete;

  // "MPSGraph (macOS 14.5)".
  static std::string name();
  // Why MPSGraph cannot take weights of `dtype` on this OS ("" when it can; BF16 needs macOS 14).
  static std::string unsupported(DType dtype);

  // Encodes the block into `cmd` (id<MTLCommandBuffer>, no encoder open). MPSGraph may commit
  // it and continue in a new command buffer: returns the command buffer to keep encoding into
  // (retained +1 when it differs from `cmd`).
  void* encode(void* cmd, const MpsGraphMlpCall& call);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace longbow::metal
