// The Metal backend, on metal-cpp ("metal") or on the MSL simulator ("metal-sim"): the same host
// code over the GPU runtime seam (gpu_runtime.h). Ops are encoded into one command buffer per
// step, committed in synchronize() (and before any host access to buffers).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "longbow/backend/backend.h"
#include "longbow/backend/metal/gpu_runtime.h"
#include "longbow/backend/mlp_chooser.h"

namespace longbow::metal {

// A buffer bound to a kernel: the GPU buffer and the byte offset of the view.
struct Bound {
  const GpuBuffer* buffer = nullptr;
  size_t offset = 0;
};

class MetalBackend final : public Backend {
 public:
  // mlp: who runs the MLP block (BackendOptions::mlp); "vendor" throws std::runtime_error when
  // the device has no vendor library (the simulator).
  MetalBackend(std::string name, std::unique_ptr<GpuDevice> device, MlpPath mlp = MlpPath::Custom);
  ~MetalBackend() override;
  std::string name() const override { return name_; }

  std::unique_ptr<Buffer> alloc(size_t bytes) override;
  std::unique_ptr<Buffer> wrap_host(const void* ptr, size_t bytes) override;
  void upload(BufView dst, const void* src, size_t bytes) override;
  void download(void* dst, BufView src, size_t bytes) override;
  bool supports(Op op, DType dtype) const override;
  // K and V of one type (the kernels take one cache type).
  bool supports_kv_cache(DType k_dtype, DType v_dtype) const override {
    return k_dtype == v_dtype && Backend::supports_kv_cache(k_dtype, v_dtype);
  }
  void synchronize() override;

  void embed(const EmbedArgs& a) override;
  void rms_norm(const RmsNormArgs& a) override;
  void matmul(const MatmulArgs& a) override;
  void rope(const RopeArgs& a) override;
  void kv_write(const KvWriteArgs& a) override;
  void attention(const AttentionArgs& a) override;
  void glu(const GluArgs& a) override;
  // Ours (Backend::mlp's kernels) or MPSGraph for float weights, by the MlpChooser (metal_mlp.cpp).
  void mlp(const MlpArgs& a) override;
  void check_mlp(const MlpArgs& a) const override;
  std::vector<std::string> mlp_report() const override { return mlp_chooser_.report(); }
  void softcap(const SoftcapArgs& a) override;
  void add(const AddArgs& a) override;
  void get_rows(const GetRowsArgs& a) override;
  void sample(const SampleArgs& a) override;
  void copy_blocks(const CopyBlocksArgs& a) override;

 private:
  // Checks that `bytes` bytes of view v lie in one of this backend's buffers.
  Bound bind_view(const BufView& v, size_t bytes, const char* where, const char* what) const;
  void require_supported(Op op, DType dtype, const char* where) const;
  // Encodes one dispatch of `kernel` into the step's command buffer: args at buffer(0), buffers
  // from 1, grid in threadgroups.
  void encode(const std::string& kernel, const void* args, size_t args_bytes,
              const std::vector<Bound>& buffers, GpuSize threadgroups, GpuSize threads);
  // A backend-owned scratch buffer (slot) of at least `bytes` bytes; grows, never shrinks. A
  // replaced buffer stays alive until the command buffer that may use it has completed.
  Bound scratch(size_t slot, size_t bytes);

  std::string name_;
  std::unique_ptr<GpuDevice> device_;
  std::unique_ptr<GpuCommandBuffer> cmd_;            // the step being recorded, or null
  std::vector<std::unique_ptr<GpuBuffer>> scratch_;  // by slot
  std::vector<std::unique_ptr<GpuBuffer>> retired_;  // freed after the next completed commit
  MlpChooser mlp_chooser_;
};

// The factory used by registry.cpp: "metal-sim" (simulator) or "metal" (Apple).
std::unique_ptr<Backend> make_metal_backend(const std::string& name, MlpPath mlp = MlpPath::Custom);

}  // namespace longbow::metal
