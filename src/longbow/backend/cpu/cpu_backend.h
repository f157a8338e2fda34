// The CPU backend: the numerical reference and a fast portable backend (threads + SIMD).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "longbow/backend/backend.h"
#include "longbow/backend/cpu/cpu_ops.h"
#include "longbow/backend/cpu/mlp.h"
#include "longbow/backend/cpu/op_profile.h"
#include "longbow/backend/cpu/thread_pool.h"
#include "longbow/backend/mlp_chooser.h"

namespace longbow::cpu {

// Runs every op eagerly on the calling thread plus a persistent worker pool.
class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const BackendOptions& options);
  std::string name() const override { return "cpu"; }

  std::unique_ptr<Buffer> alloc(size_t bytes) override;
  std::unique_ptr<Buffer> wrap_host(const void* ptr, size_t bytes) override;
  // A copy packed into 16-row panels (matmul_kernels.h): quantized blocks or k-major floats.
  std::unique_ptr<Buffer> matmul_weight(const void* ptr, DType dtype, int N, int K) override;
  void upload(BufView dst, const void* src, size_t bytes) override;
  void download(void* dst, BufView src, size_t bytes) override;
  bool supports(Op op, DType dtype) const override;
  // Half the tail waste of 16-token blocks (KV utilization 0.943 -> 0.973 for 96 + 64 token
  // requests) at the same batched and single-sequence decode speed (bench_batching A/B).
  int preferred_block_size() const override { return 8; }
  void synchronize() override {}

  void embed(const EmbedArgs& a) override;
  void rms_norm(const RmsNormArgs& a) override;
  void matmul(const MatmulArgs& a) override;
  void matmul_group(std::span<const MatmulArgs> parts) override;
  void rope(const RopeArgs& a) override;
  void kv_write(const KvWriteArgs& a) override;
  void attention(const AttentionArgs& a) override;
  void glu(const GluArgs& a) override;
  // BackendOptions::mlp: our ops, the vendor BLAS (float weights), or per shape the faster of the
  // two as measured on the first call of each (dtype, D, F, token bucket) (cpu/mlp.cpp).
  void mlp(const MlpArgs& a) override;
  void check_mlp(const MlpArgs& a) const override { mlp_chooser_.check(vendor_mlp_unsupported(a)); }
  std::vector<std::string> mlp_report() const override;
  void softcap(const SoftcapArgs& a) override;
  void add(const AddArgs& a) override;
  void get_rows(const GetRowsArgs& a) override;
  void sample(const SampleArgs& a) override;
  void copy_blocks(const CopyBlocksArgs& a) override;

  int num_threads() const { return pool_.num_threads(); }

 private:
  void require_supported(Op op, DType dtype, const char* where) const;
  OpProfile profile_;  // LONGBOW_PROFILE_OPS=1
  ThreadPool pool_;
  Scratch scratch_;
  Ctx ctx_;
  MlpChooser mlp_chooser_;
};

std::unique_ptr<Backend> make_cpu_backend(const BackendOptions& options);

}  // namespace longbow::cpu
