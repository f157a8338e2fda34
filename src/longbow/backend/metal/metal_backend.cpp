// MetalBackend core: buffers, the per-step command buffer, argument binding and scratch. The op
// encoders live in metal_ops.cpp, metal_attention.cpp and metal_sample.cpp.
#include "longbow/backend/metal/metal_backend.h"
#include "longbow/backend/op_checks.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include "longbow/backend/metal/kernel_names.h"

namespace longbow::metal {

namespace {
// A backend buffer: owns its GPU buffer; host-visible (unified memory).
class MetalBuffer final : public Buffer {
 public:
  explicit MetalBuffer(std::unique_ptr<GpuBuffer> gpu) : gpu_(std::move(gpu)) {}
  size_t bytes() const override { return gpu_->bytes(); }
  void* host_ptr() const override { return gpu_->contents(); }
  const GpuBuffer& gpu() const { return *gpu_; }

 private:
  std::unique_ptr<GpuBuffer> gpu_;
};
}  // namespace

MetalBackend::MetalBackend(std::string name, std::unique_ptr<GpuDevice> device, MlpPath mlp)
    : name_(std::move(name)),
      device_(std::move(device)),
      mlp_chooser_(mlp, name_, device_->vendor_mlp_name()) {
  if (mlp == MlpPath::Vendor && !device_->vendor_mlp_unsupported(DType::F16).empty()) {
    throw std::runtime_error("[" + name_ + "] mlp=\"vendor\" needs a vendor library; " +
                             device_->vendor_mlp_name());
  }
}

MetalBackend::~MetalBackend() {
  try {
    synchronize();  // buffers of pending work are freed after us
  } catch (...) {
    // A failed step was already reported to the caller of synchronize(); nothing to do here.
  }
}

std::unique_ptr<Buffer> MetalBackend::alloc(size_t bytes) {
  return std::make_unique<MetalBuffer>(device_->new_buffer(bytes));
}

std::unique_ptr<Buffer> MetalBackend::wrap_host(const void* ptr, size_t bytes) {
  if (ptr == nullptr && bytes != 0) {
    throw std::invalid_argument("[" + name_ + ".wrap_host] expected a host pointer, found nullptr");
  }
  return std::make_unique<MetalBuffer>(device_->wrap_host(ptr, bytes));
}

void MetalBackend::upload(BufView dst, const void* src, size_t bytes) {
  const Bound b = bind_view(dst, bytes, "upload", "dst");
  synchronize();  // earlier ops may still read or write dst
  if (bytes) std::memcpy(static_cast<char*>(b.buffer->contents()) + b.offset, src, bytes);
}

void MetalBackend::download(void* dst, BufView src, size_t bytes) {
  const Bound b = bind_view(src, bytes, "download", "src");
  synchronize();
  if (bytes) std::memcpy(dst, static_cast<const char*>(b.buffer->contents()) + b.offset, bytes);
}

bool MetalBackend::supports(Op op, DType dtype) const { return kernel_set_supports(op, dtype); }

void MetalBackend::require_supported(Op op, DType dtype, const char* where) const {
  if (!supports(op, dtype)) {
    throw std::invalid_argument("[" + name_ + "." + where + "] the " + name_ +
                                " backend does not support " + op_family_name(op) + " with dtype " +
                                dtype_name(dtype));
  }
}

void MetalBackend::synchronize() {
  if (!cmd_) return;
  std::unique_ptr<GpuCommandBuffer> cmd = std::move(cmd_);
  cmd->commit();
  cmd->wait();
  retired_.clear();
}

Bound MetalBackend::bind_view(const BufView& v, size_t bytes, const char* where,
                              const char* what) const {
  const std::string at = "[" + name_ + "." + where + "] " + what + ": ";
  if (v.buffer == nullptr) throw std::invalid_argument(at + "expected a buffer, found none");
  const auto* mb = dynamic_cast<const MetalBuffer*>(v.buffer);
  if (mb == nullptr)
    throw std::invalid_argument(at + "expected a buffer of the " + name_ +
                                " backend, found another");
  const size_t size = mb->bytes();
  if (v.offset > size || bytes > size - v.offset) {
    throw std::invalid_argument(at + "view needs bytes [" + std::to_string(v.offset) + ", " +
                                std::to_string(v.offset + bytes) + ") but the buffer has " +
                                std::to_string(size) + " bytes");
  }
  return {&mb->gpu(), v.offset};
}

void MetalBackend::encode(const std::string& kernel, const void* args, size_t args_bytes,
                          const std::vector<Bound>& buffers, GpuSize threadgroups,
                          GpuSize threads) {
  if (threadgroups.x == 0 || threadgroups.y == 0 || threadgroups.z == 0)
    return;  // empty grid: nothing to do
  const GpuPipeline& p = device_->pipeline(kernel);
  const uint64_t tpt = static_cast<uint64_t>(threads.x) * threads.y * threads.z;
  if (tpt > p.max_threads_per_threadgroup()) {
    throw std::invalid_argument("[" + name_ + "] " + kernel + ": expected at most " +
                                std::to_string(p.max_threads_per_threadgroup()) +
                                " threads per threadgroup, found " + std::to_string(tpt));
  }
  if (!cmd_) cmd_ = device_->new_command_buffer();
  GpuEncoder& enc = cmd_->encoder();
  enc.set_pipeline(p);
  enc.set_args(0, args, args_bytes);
  for (size_t i = 0; i < buffers.size(); ++i) {
    enc.set_buffer(static_cast<uint32_t>(i + 1), *buffers[i].buffer, buffers[i].offset);
  }
  enc.dispatch(threadgroups, threads);
}

Bound MetalBackend::scratch(size_t slot, size_t bytes) {
  if (scratch_.size() <= slot) scratch_.resize(slot + 1);
  auto& s = scratch_[slot];
  if (!s || s->bytes() < bytes) {
    if (s) retired_.push_back(std::move(s));
    s = device_->new_buffer(std::max<size_t>(bytes + bytes / 4, 256));
  }
  return {s.get(), 0};
}

std::unique_ptr<Backend> make_metal_backend(const std::string& name, MlpPath mlp) {
  if (name == "metal-sim") {
#if defined(LONGBOW_HAS_METAL_SIM)
    return std::make_unique<MetalBackend>(name, make_sim_device(), mlp);
#endif
  } else if (name == "metal") {
#if defined(LONGBOW_HAS_METAL)
    return std::make_unique<MetalBackend>(name, make_metal_device(), mlp);
#endif
  }
  throw std::invalid_argument("[metal] backend '" + name + "' is not built into this module");
}

}  // namespace longbow::metal
