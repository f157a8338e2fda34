// The GPU runtime seam on the MSL simulator: buffers are host memory, pipelines are entries of
// the simulator's kernel registry, and a command buffer records its dispatches and runs them in
// order through msl_sim::dispatch at commit (so a failure names the kernel and .metal line).
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <vector>

#include "longbow/backend/metal/gpu_runtime.h"
#include "longbow/backend/metal/sim_runtime.h"
#include "msl_sim/sim.h"

namespace longbow::metal {

namespace {
constexpr size_t ALIGNMENT = 64;
constexpr uint32_t MAX_BINDINGS = 31;  // Metal's buffer argument table size

struct SimConfig {
  std::mutex mu;
  msl_sim::ThreadOrder order = msl_sim::ThreadOrder::in_order;
  std::string order_name = "inorder";
  uint64_t seed = 0;
  unsigned workers = 1;
};

msl_sim::ThreadOrder parse_order(const std::string& s) {
  if (s == "inorder" || s == "in_order") return msl_sim::ThreadOrder::in_order;
  if (s == "reverse") return msl_sim::ThreadOrder::reverse;
  if (s == "random") return msl_sim::ThreadOrder::random;
  throw std::invalid_argument(
      "[metal-sim] thread order: expected inorder, reverse or random, found '" + s + "'");
}

SimConfig& config() {
  static SimConfig* c = [] {
    auto* cfg = new SimConfig();
    if (const char* o = std::getenv("LONGBOW_SIM_ORDER"); o != nullptr && *o != '\0') {
      cfg->order = parse_order(o);
      cfg->order_name = o;
    }
    if (const char* s = std::getenv("LONGBOW_SIM_SEED"); s != nullptr && *s != '\0') {
      cfg->seed = std::strtoull(s, nullptr, 10);
    }
    const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
    cfg->workers = hw;
    if (const char* w = std::getenv("LONGBOW_SIM_WORKERS"); w != nullptr && *w != '\0') {
      const long n = std::strtol(w, nullptr, 10);
      if (n < 1 || n > 256) {
        throw std::invalid_argument(
            std::string("[metal-sim] LONGBOW_SIM_WORKERS: expected 1..256, found '") + w + "'");
      }
      cfg->workers = static_cast<unsigned>(n);
    }
    return cfg;
  }();
  return *c;
}

class SimBuffer final : public GpuBuffer {
 public:
  SimBuffer(void* ptr, size_t bytes, bool owned) : ptr_(ptr), bytes_(bytes), owned_(owned) {}
  ~SimBuffer() override {
    if (owned_) ::operator delete(ptr_, std::align_val_t(ALIGNMENT));
  }
  size_t bytes() const override { return bytes_; }
  void* contents() const override { return ptr_; }

 private:
  void* ptr_;
  size_t bytes_;
  bool owned_;
};

class SimPipeline final : public GpuPipeline {
 public:
  explicit SimPipeline(const msl_sim::KernelInfo& info) : info_(info), name_(info.name) {}
  const std::string& name() const override { return name_; }
  uint32_t max_threads_per_threadgroup() const override {
    return msl_sim::MAX_THREADS_PER_THREADGROUP;
  }
  const msl_sim::KernelInfo& info() const { return info_; }

 private:
  const msl_sim::KernelInfo& info_;
  std::string name_;
};

// One recorded dispatch with its own copies of the argument bytes (setBytes semantics).
struct Recorded {
  const msl_sim::KernelInfo* kernel = nullptr;
  msl_sim::Dim3 grid, threads;
  std::vector<void*> buffers;             // (num_bindings,)
  std::vector<size_t> threadgroup_bytes;  // (num_threadgroup_args,)
  std::vector<std::unique_ptr<std::max_align_t[]>> arg_copies;
};

class SimEncoder final : public GpuEncoder {
 public:
  void set_pipeline(const GpuPipeline& p) override {
    kernel_ = &static_cast<const SimPipeline&>(p).info();
  }
  void set_args(uint32_t index, const void* data, size_t bytes) override {
    check_index(index);
    auto copy = std::make_unique<std::max_align_t[]>(
        (bytes + sizeof(std::max_align_t) - 1) / sizeof(std::max_align_t) + 1);
    std::memcpy(copy.get(), data, bytes);
    bind(index, copy.get());
    pending_copies_.push_back(std::move(copy));
  }
  void set_buffer(uint32_t index, const GpuBuffer& buffer, size_t offset) override {
    check_index(index);
    if (offset > buffer.bytes()) {
      throw std::invalid_argument("[metal-sim] set_buffer(" + std::to_string(index) + "): offset " +
                                  std::to_string(offset) + " exceeds the buffer size " +
                                  std::to_string(buffer.bytes()));
    }
    bind(index, static_cast<char*>(buffer.contents()) + offset);
  }
  void set_threadgroup_memory(uint32_t index, size_t bytes) override {
    if (tg_bytes_.size() <= index) tg_bytes_.resize(index + 1, 0);
    tg_bytes_[index] = bytes;
  }
  void dispatch(GpuSize tgs, GpuSize threads) override {
    if (kernel_ == nullptr)
      throw std::invalid_argument("[metal-sim] dispatch: expected a pipeline, found none set");
    Recorded r;
    r.kernel = kernel_;
    r.grid = {tgs.x, tgs.y, tgs.z};
    r.threads = {threads.x, threads.y, threads.z};
    r.buffers = bindings_;
    r.threadgroup_bytes = tg_bytes_;
    // Argument copies are shared by later dispatches that keep the binding: move them along.
    for (auto& c : pending_copies_) owned_copies_.push_back(std::move(c));
    pending_copies_.clear();
    recorded_.push_back(std::move(r));
  }
  std::vector<Recorded>& recorded() { return recorded_; }

 private:
  static void check_index(uint32_t index) {
    if (index >= MAX_BINDINGS) {
      throw std::invalid_argument("[metal-sim] buffer index: expected < " +
                                  std::to_string(MAX_BINDINGS) + ", found " +
                                  std::to_string(index));
    }
  }
  void bind(uint32_t index, void* p) {
    if (bindings_.size() <= index) bindings_.resize(index + 1, nullptr);
    bindings_[index] = p;
  }
  const msl_sim::KernelInfo* kernel_ = nullptr;
  std::vector<void*> bindings_;
  std::vector<size_t> tg_bytes_;
  std::vector<std::unique_ptr<std::max_align_t[]>> pending_copies_, owned_copies_;
  std::vector<Recorded> recorded_;
};

class SimCommandBuffer final : public GpuCommandBuffer {
 public:
  GpuEncoder& encoder() override { return encoder_; }
  void encode_vendor_mlp(const VendorMlpCall&) override {
    throw std::logic_error("[metal-sim] no vendor library for the MLP block");
  }
  void commit() override {
    if (committed_)
      throw std::runtime_error("[metal-sim] commit: the command buffer was already committed");
    committed_ = true;
    msl_sim::SimOptions opts;
    {
      SimConfig& cfg = config();
      std::lock_guard<std::mutex> lock(cfg.mu);
      opts.order = cfg.order;
      opts.seed = cfg.seed;
      opts.num_workers = cfg.workers;
    }
    for (const Recorded& r : encoder_.recorded()) {
      msl_sim::dispatch(*r.kernel, r.grid, r.threads, r.buffers, r.threadgroup_bytes, opts);
    }
  }
  void wait() override {
    if (!committed_)
      throw std::runtime_error("[metal-sim] wait: expected a committed command buffer, found none");
  }

 private:
  SimEncoder encoder_;
  bool committed_ = false;
};

class SimDevice final : public GpuDevice {
 public:
  std::string name() const override { return "msl_sim"; }
  std::unique_ptr<GpuBuffer> new_buffer(size_t bytes) override {
    const size_t rounded = std::max(ALIGNMENT, (bytes + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT);
    void* p = nullptr;
    try {
      p = ::operator new(rounded, std::align_val_t(ALIGNMENT));
    } catch (const std::bad_alloc&) {
      throw std::runtime_error("[metal-sim] out of memory allocating " + std::to_string(bytes) +
                               " bytes");
    }
    std::memset(p, 0, rounded);
    return std::make_unique<SimBuffer>(p, bytes, true);
  }
  std::unique_ptr<GpuBuffer> wrap_host(const void* ptr, size_t bytes) override {
    return std::make_unique<SimBuffer>(const_cast<void*>(ptr), bytes, false);
  }
  const GpuPipeline& pipeline(const std::string& kernel_name) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pipelines_.find(kernel_name);
    if (it == pipelines_.end()) {
      it = pipelines_
               .emplace(kernel_name,
                        std::make_unique<SimPipeline>(msl_sim::find_kernel(kernel_name)))
               .first;
    }
    return *it->second;
  }
  std::string vendor_mlp_name() const override {
    return "none: MPSGraph runs only on Apple's Metal (the simulator runs our kernels)";
  }
  std::string vendor_mlp_unsupported(DType) const override { return vendor_mlp_name(); }
  std::unique_ptr<GpuCommandBuffer> new_command_buffer() override {
    return std::make_unique<SimCommandBuffer>();
  }

 private:
  std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<SimPipeline>> pipelines_;
};
}  // namespace

std::unique_ptr<GpuDevice> make_sim_device() { return std::make_unique<SimDevice>(); }

void set_sim_thread_order(const std::string& order, uint64_t seed) {
  const msl_sim::ThreadOrder o = parse_order(order);
  SimConfig& cfg = config();
  std::lock_guard<std::mutex> lock(cfg.mu);
  cfg.order = o;
  cfg.order_name = order == "in_order" ? "inorder" : order;
  cfg.seed = seed;
}

std::string sim_thread_order() {
  SimConfig& cfg = config();
  std::lock_guard<std::mutex> lock(cfg.mu);
  return cfg.order_name;
}

uint64_t sim_seed() {
  SimConfig& cfg = config();
  std::lock_guard<std::mutex> lock(cfg.mu);
  return cfg.seed;
}

std::vector<std::string> sim_kernel_names() { return msl_sim::list_kernels(); }

}  // namespace longbow::metal
