// The GPU runtime seam: the few objects the Metal host code needs from a GPU API. Two
// implementations: metal_cpp_runtime.cpp (Apple, metal-cpp) and sim_runtime.cpp (the MSL
// simulator). Everything above this interface (argument structs, grid sizes, buffer binding, one
// command buffer per step) is shared and runs on Linux (DESIGN.md §3).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "longbow/core/dtype.h"

namespace longbow::metal {

// Metal's MTLSize.
struct GpuSize {
  uint32_t x = 1, y = 1, z = 1;
};

// Device memory visible to the host (unified memory: StorageModeShared).
class GpuBuffer {
 public:
  virtual ~GpuBuffer() = default;
  // Size in bytes.
  virtual size_t bytes() const = 0;
  // Host address of byte 0.
  virtual void* contents() const = 0;
};

// A compute pipeline for one kernel, created on first use and cached by the device.
class GpuPipeline {
 public:
  virtual ~GpuPipeline() = default;
  virtual const std::string& name() const = 0;
  // Largest threadgroup this pipeline can be dispatched with.
  virtual uint32_t max_threads_per_threadgroup() const = 0;
};

// Records dispatches into its command buffer. State (pipeline, bindings) carries over from one
// dispatch to the next, as in Metal.
class GpuEncoder {
 public:
  virtual ~GpuEncoder() = default;
  virtual void set_pipeline(const GpuPipeline& pipeline) = 0;
  // Copies `bytes` bytes of an argument struct to [[buffer(index)]] (setBytes; index 0 by
  // convention).
  virtual void set_args(uint32_t index, const void* data, size_t bytes) = 0;
  // Binds `buffer` at byte `offset` to [[buffer(index)]].
  virtual void set_buffer(uint32_t index, const GpuBuffer& buffer, size_t offset) = 0;
  // Sizes [[threadgroup(index)]] memory.
  virtual void set_threadgroup_memory(uint32_t index, size_t bytes) = 0;
  virtual void dispatch(GpuSize threadgroups, GpuSize threads_per_threadgroup) = 0;
};

// The MLP block for a vendor library (MPSGraph): out (M, D) [+]= (silu(x·W_gateᵀ) *
// (x·W_upᵀ))·W_downᵀ with F32/F16/BF16 weights (W_gate, W_up (F, D), W_down (D, F), row-major),
// f32 activations, no biases. Each buffer with the byte offset of its view.
struct VendorMlpCall {
  const GpuBuffer *out, *x, *w_gate, *w_up, *w_down;
  size_t out_offset, x_offset, w_gate_offset, w_up_offset, w_down_offset;
  int M, D, F;
  DType dtype;
  bool accumulate;
};

// One command buffer with one compute encoder; commit once, then wait.
class GpuCommandBuffer {
 public:
  virtual ~GpuCommandBuffer() = default;
  virtual GpuEncoder& encoder() = 0;
  // Encodes the MLP block through the device's vendor library (GpuDevice::vendor_mlp_name): ends
  // the compute encoder, encodes the library's work, opens a new compute encoder (encoder()
  // returns it). Only on a device whose vendor_mlp_unsupported(dtype) is "".
  virtual void encode_vendor_mlp(const VendorMlpCall& call) = 0;
  // Ends encoding and submits the work.
  virtual void commit() = 0;
  // Blocks until the submitted work completed; throws std::runtime_error on a device error.
  virtual void wait() = 0;
};

class GpuDevice {
 public:
  virtual ~GpuDevice() = default;
  virtual std::string name() const = 0;
  // New zero-initialized shared buffer of `bytes` bytes.
  virtual std::unique_ptr<GpuBuffer> new_buffer(size_t bytes) = 0;
  // Wraps host memory without copying when possible (it must outlive the buffer), else copies.
  virtual std::unique_ptr<GpuBuffer> wrap_host(const void* ptr, size_t bytes) = 0;
  // The pipeline of kernel `kernel_name` (created lazily, cached); std::invalid_argument if the
  // library has no such kernel.
  virtual const GpuPipeline& pipeline(const std::string& kernel_name) = 0;
  virtual std::unique_ptr<GpuCommandBuffer> new_command_buffer() = 0;
  // The vendor library for the MLP block ("MPSGraph (macOS 14.5)"), or why there is none.
  virtual std::string vendor_mlp_name() const = 0;
  // Why the vendor library cannot take weights of `dtype` ("" when it can).
  virtual std::string vendor_mlp_unsupported(DType dtype) const = 0;
};

// The simulator device (sim_runtime.cpp); thread order from LONGBOW_SIM_ORDER / LONGBOW_SIM_SEED.
std::unique_ptr<GpuDevice> make_sim_device();
// The Metal device (metal_cpp_runtime.cpp, Apple only); metallib from LONGBOW_METALLIB or beside
// the module. Throws std::runtime_error when there is no Metal device.
std::unique_ptr<GpuDevice> make_metal_device();

}  // namespace longbow::metal
