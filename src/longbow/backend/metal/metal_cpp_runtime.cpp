// The GPU runtime seam on Metal through metal-cpp (Apple only; compiled when LONGBOW_METAL is on).
// Thin and mechanical on purpose: everything else of the Metal backend runs on Linux through
// sim_runtime.cpp. Kernels come from longbow.metallib (metallib_path below); pipelines are created
// on first use and cached by name.
// Object lifetimes: every call that creates autoreleased objects drains its own pool before it
// returns (ScopedPool), so nothing depends on the calling thread's pool stack, and any thread may
// begin or finish a step (AsyncEngine steps on a background thread). Objects kept beyond the call
// (the command buffer, its encoder) are retained and released by their owner.
// A device the kernels cannot run on (gpu_capabilities.h) is refused when opened.
#define NS_PRIVATE_IMPLEMENTATION
#define MTL_PRIVATE_IMPLEMENTATION
#include <Foundation/Foundation.hpp>
#include <Metal/Metal.hpp>

#include <dlfcn.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "longbow/backend/metal/gpu_capabilities.h"
#include "longbow/backend/metal/gpu_runtime.h"
#include "longbow/backend/metal/mpsgraph_mlp.h"

namespace longbow::metal {

namespace {

// An autorelease pool for the duration of one call.
class ScopedPool {
 public:
  ScopedPool() : pool_(NS::AutoreleasePool::alloc()->init()) {}
  ~ScopedPool() { pool_->release(); }
  ScopedPool(const ScopedPool&) = delete;
  ScopedPool& operator=(const ScopedPool&) = delete;

 private:
  NS::AutoreleasePool* pool_;
};

std::string ns_error_text(NS::Error* error) {
  if (error == nullptr || error->localizedDescription() == nullptr) return "unknown error";
  return error->localizedDescription()->utf8String();
}

// Path of longbow.metallib: $LONGBOW_METALLIB; else beside the binary holding this code (_core in
// the Python package); else where `cmake --install` put it for native apps linking the static
// library (LONGBOW_INSTALLED_METALLIB, set by cmake/metal.cmake).
std::string metallib_path() {
  if (const char* env = std::getenv("LONGBOW_METALLIB"); env != nullptr && *env != '\0') return env;
  std::string tried;
  Dl_info info{};
  if (dladdr(reinterpret_cast<const void*>(&metallib_path), &info) != 0 &&
      info.dli_fname != nullptr) {
    std::string dir(info.dli_fname);
    const size_t slash = dir.find_last_of('/');
    dir = slash == std::string::npos ? "." : dir.substr(0, slash);
    const std::string beside = dir + "/longbow.metallib";
    if (access(beside.c_str(), R_OK) == 0) return beside;
    tried = beside;
  }
#if defined(LONGBOW_INSTALLED_METALLIB)
  if (access(LONGBOW_INSTALLED_METALLIB, R_OK) == 0) return LONGBOW_INSTALLED_METALLIB;
  tried += std::string(tried.empty() ? "" : ", ") + LONGBOW_INSTALLED_METALLIB;
#endif
  throw std::runtime_error("[metal] no longbow.metallib (looked at " +
                           (tried.empty() ? std::string("nothing") : tried) +
                           "); set LONGBOW_METALLIB to its path");
}

// A shared MTL::Buffer; `offset` is where byte 0 of this buffer lies inside it (wrapped host
// memory is mapped from its page start).
class MtlBuffer final : public GpuBuffer {
 public:
  MtlBuffer(MTL::Buffer* buffer, size_t offset, size_t bytes)
      : buffer_(buffer), offset_(offset), bytes_(bytes) {}
  ~MtlBuffer() override { buffer_->release(); }
  size_t bytes() const override { return bytes_; }
  void* contents() const override { return static_cast<char*>(buffer_->contents()) + offset_; }
  MTL::Buffer* mtl() const { return buffer_; }
  size_t offset() const { return offset_; }

 private:
  MTL::Buffer* buffer_;
  size_t offset_, bytes_;
};

class MtlPipeline final : public GpuPipeline {
 public:
  MtlPipeline(std::string name, MTL::ComputePipelineState* state)
      : name_(std::move(name)), state_(state) {}
  ~MtlPipeline() override { state_->release(); }
  const std::string& name() const override { return name_; }
  uint32_t max_threads_per_threadgroup() const override {
    return static_cast<uint32_t>(state_->maxTotalThreadsPerThreadgroup());
  }
  MTL::ComputePipelineState* state() const { return state_; }

 private:
  std::string name_;
  MTL::ComputePipelineState* state_;
};

class MtlEncoder final : public GpuEncoder {
 public:
  explicit MtlEncoder(MTL::ComputeCommandEncoder* enc) : enc_(enc->retain()) {}
  ~MtlEncoder() override { enc_->release(); }
  MtlEncoder(const MtlEncoder&) = delete;
  MtlEncoder& operator=(const MtlEncoder&) = delete;
  void set_pipeline(const GpuPipeline& p) override {
    enc_->setComputePipelineState(static_cast<const MtlPipeline&>(p).state());
  }
  void set_args(uint32_t index, const void* data, size_t bytes) override {
    enc_->setBytes(data, bytes, index);
  }
  void set_buffer(uint32_t index, const GpuBuffer& buffer, size_t offset) override {
    const auto& b = static_cast<const MtlBuffer&>(buffer);
    enc_->setBuffer(b.mtl(), b.offset() + offset, index);
  }
  void set_threadgroup_memory(uint32_t index, size_t bytes) override {
    enc_->setThreadgroupMemoryLength((bytes + 15) / 16 * 16, index);  // Metal wants multiples of 16
  }
  void dispatch(GpuSize tgs, GpuSize threads) override {
    enc_->dispatchThreadgroups(MTL::Size(tgs.x, tgs.y, tgs.z),
                               MTL::Size(threads.x, threads.y, threads.z));
  }
  void end() { enc_->endEncoding(); }

 private:
  MTL::ComputeCommandEncoder* enc_;  // retained
};

class MtlCommandBuffer final : public GpuCommandBuffer {
 public:
  // mps: the device's MPSGraph MLP (created on first use).
  MtlCommandBuffer(MTL::CommandQueue* queue, std::function<MpsGraphMlp&()> mps)
      : mps_(std::move(mps)) {
    ScopedPool pool;  // the command buffer and its encoder are autoreleased: retained here
    cmd_ = queue->commandBuffer();
    if (cmd_ == nullptr) throw std::runtime_error("[metal] commandBuffer: the queue returned none");
    cmd_->retain();
    try {
      open_encoder();
    } catch (...) {
      cmd_->release();
      throw;
    }
  }
  ~MtlCommandBuffer() override {
    encoder_.reset();
    cmd_->release();
  }
  MtlCommandBuffer(const MtlCommandBuffer&) = delete;
  MtlCommandBuffer& operator=(const MtlCommandBuffer&) = delete;
  GpuEncoder& encoder() override { return *encoder_; }
  void encode_vendor_mlp(const VendorMlpCall& c) override {
    ScopedPool pool;
    encoder_->end();
    encoder_.reset();
    auto mtl = [](const GpuBuffer* b) { return static_cast<const MtlBuffer*>(b); };
    const MpsGraphMlpCall call{mtl(c.out)->mtl(),
                               mtl(c.x)->mtl(),
                               mtl(c.w_gate)->mtl(),
                               mtl(c.w_up)->mtl(),
                               mtl(c.w_down)->mtl(),
                               mtl(c.out)->offset() + c.out_offset,
                               mtl(c.x)->offset() + c.x_offset,
                               mtl(c.w_gate)->offset() + c.w_gate_offset,
                               mtl(c.w_up)->offset() + c.w_up_offset,
                               mtl(c.w_down)->offset() + c.w_down_offset,
                               c.M,
                               c.D,
                               c.F,
                               c.dtype,
                               c.accumulate};
    void* next = mps_().encode(cmd_, call);
    if (next != cmd_) {  // MPSGraph committed ours and continued in `next` (retained for us)
      cmd_->release();
      cmd_ = static_cast<MTL::CommandBuffer*>(next);
    }
    open_encoder();
  }
  void commit() override {
    encoder_->end();
    cmd_->commit();
  }
  void wait() override {
    ScopedPool pool;  // the error and its description are autoreleased
    cmd_->waitUntilCompleted();
    if (cmd_->status() == MTL::CommandBufferStatusError) {
      throw std::runtime_error("[metal] command buffer failed: " + ns_error_text(cmd_->error()));
    }
  }

 private:
  void open_encoder() {
    MTL::ComputeCommandEncoder* enc = cmd_->computeCommandEncoder();
    if (enc == nullptr)
      throw std::runtime_error("[metal] computeCommandEncoder: the command buffer returned none");
    encoder_ = std::make_unique<MtlEncoder>(enc);
  }

  MTL::CommandBuffer* cmd_ = nullptr;
  std::unique_ptr<MtlEncoder> encoder_;
  std::function<MpsGraphMlp&()> mps_;
};

class MtlDevice final : public GpuDevice {
 public:
  MtlDevice() {
    ScopedPool pool;
    device_ = MTL::CreateSystemDefaultDevice();
    if (device_ == nullptr) throw std::runtime_error("[metal] no Metal device on this machine");
    const std::string problem = gpu_capability_problem(
        {device_->name()->utf8String(), device_->supportsFamily(MTL::GPUFamilyApple7),
         device_->supportsFamily(MTL::GPUFamilyMetal3)});
    if (!problem.empty()) {
      device_->release();
      throw std::runtime_error(problem);
    }
    queue_ = device_->newCommandQueue();
    const std::string path = metallib_path();
    NS::Error* error = nullptr;
    NS::URL* url =
        NS::URL::fileURLWithPath(NS::String::string(path.c_str(), NS::UTF8StringEncoding));
    library_ = device_->newLibrary(url, &error);
    if (library_ == nullptr) {
      const std::string text = ns_error_text(error);
      queue_->release();
      device_->release();
      throw std::runtime_error("[metal] cannot load " + path + ": " + text);
    }
  }
  ~MtlDevice() override {
    mps_.reset();
    pipelines_.clear();
    library_->release();
    queue_->release();
    device_->release();
  }
  std::string name() const override {
    ScopedPool pool;
    return device_->name()->utf8String();
  }

  std::unique_ptr<GpuBuffer> new_buffer(size_t bytes) override {
    ScopedPool pool;
    MTL::Buffer* b = device_->newBuffer(bytes == 0 ? 16 : bytes, MTL::ResourceStorageModeShared);
    if (b == nullptr)
      throw std::runtime_error("[metal] out of memory allocating " + std::to_string(bytes) +
                               " bytes");
    return std::make_unique<MtlBuffer>(b, 0, bytes);  // shared buffers start zeroed
  }

  std::unique_ptr<GpuBuffer> wrap_host(const void* ptr, size_t bytes) override {
    if (bytes == 0 || ptr == nullptr) return new_buffer(bytes);  // nothing to read from ptr
    ScopedPool pool;
    // No copy: map the enclosing whole pages (mmap'ed weights are page-aligned only at the file
    // start).
    const uintptr_t page = static_cast<uintptr_t>(getpagesize());
    const uintptr_t begin = reinterpret_cast<uintptr_t>(ptr) & ~(page - 1);
    const uintptr_t end = (reinterpret_cast<uintptr_t>(ptr) + bytes + page - 1) & ~(page - 1);
    MTL::Buffer* b = device_->newBuffer(reinterpret_cast<void*>(begin), end - begin,
                                        MTL::ResourceStorageModeShared, nullptr);
    if (b != nullptr)
      return std::make_unique<MtlBuffer>(b, reinterpret_cast<uintptr_t>(ptr) - begin, bytes);
    MTL::Buffer* copy = device_->newBuffer(ptr, bytes, MTL::ResourceStorageModeShared);
    if (copy == nullptr)
      throw std::runtime_error("[metal] cannot wrap or copy " + std::to_string(bytes) + " bytes");
    return std::make_unique<MtlBuffer>(copy, 0, bytes);
  }

  const GpuPipeline& pipeline(const std::string& kernel_name) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pipelines_.find(kernel_name);
    if (it != pipelines_.end()) return *it->second;
    ScopedPool pool;
    MTL::Function* fn =
        library_->newFunction(NS::String::string(kernel_name.c_str(), NS::UTF8StringEncoding));
    if (fn == nullptr) {
      throw std::invalid_argument("[metal] longbow.metallib has no kernel '" + kernel_name + "'");
    }
    NS::Error* error = nullptr;
    MTL::ComputePipelineState* state = device_->newComputePipelineState(fn, &error);
    fn->release();
    if (state == nullptr) {
      throw std::runtime_error("[metal] pipeline " + kernel_name + ": " + ns_error_text(error));
    }
    const std::string problem =
        simd_width_problem(kernel_name, static_cast<uint32_t>(state->threadExecutionWidth()));
    if (!problem.empty()) {
      state->release();
      throw std::runtime_error(problem);
    }
    return *pipelines_.emplace(kernel_name, std::make_unique<MtlPipeline>(kernel_name, state))
                .first->second;
  }

  std::unique_ptr<GpuCommandBuffer> new_command_buffer() override {
    return std::make_unique<MtlCommandBuffer>(queue_, [this]() -> MpsGraphMlp& {
      std::lock_guard<std::mutex> lock(mu_);
      if (!mps_) mps_ = std::make_unique<MpsGraphMlp>(device_);
      return *mps_;
    });
  }
  std::string vendor_mlp_name() const override { return MpsGraphMlp::name(); }
  std::string vendor_mlp_unsupported(DType dtype) const override {
    return MpsGraphMlp::unsupported(dtype);
  }

 private:
  MTL::Device* device_ = nullptr;
  MTL::CommandQueue* queue_ = nullptr;
  MTL::Library* library_ = nullptr;
  std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<MtlPipeline>> pipelines_;
  std::unique_ptr<MpsGraphMlp> mps_;  // the vendor MLP, on first use
};
}  // namespace

std::unique_ptr<GpuDevice> make_metal_device() { return std::make_unique<MtlDevice>(); }

}  // namespace longbow::metal
