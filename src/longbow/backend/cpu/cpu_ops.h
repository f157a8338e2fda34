// Internal to the CPU backend: view helpers, the SIMD kernel table and one entry per op family.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "longbow/backend/backend.h"
#include "longbow/backend/cpu/thread_pool.h"
#include "longbow/core/check.h"  // require(), fail()

namespace longbow::cpu {

// Per-thread scratch owned by the backend; grown before parallel work, never inside it.
struct Scratch {
  std::vector<std::vector<float>> f32;    // one per thread
  std::vector<std::vector<int32_t>> i32;  // one per thread
  std::vector<int32_t> token_seq;         // (num_tokens,) sequence of each token, shared
  std::vector<uint8_t> act_q;             // matmul: activations quantized to BlockQ16A, shared
  std::vector<float> act_f;  // matmul: activations transposed per token group (float panels)
  std::vector<int32_t>
      attn_items;  // attention work list + split merges, shared (attention_dispatch.cpp)
  std::vector<float>
      attn_partials;  // (num_partials, group, head_dim + 2) flash-decoding partials, shared
  void ensure(int num_threads, size_t f32_elems, size_t i32_elems = 0);
};

struct Ctx {
  ThreadPool& pool;
  Scratch& scratch;
};

// A matmul weight (N, K) packed into 16-row panels (matmul_kernels.h) by
// CpuBackend::matmul_weight; op_matmul accepts weights only in this form.
class PackedWeight final : public Buffer {
 public:
  PackedWeight(std::unique_ptr<Buffer> storage, DType dtype, int64_t N, int64_t K)
      : storage_(std::move(storage)), dtype_(dtype), N_(N), K_(K) {}
  size_t bytes() const override { return storage_->bytes(); }
  void* host_ptr() const override { return storage_->host_ptr(); }
  DType dtype() const { return dtype_; }
  int64_t rows() const { return N_; }
  int64_t cols() const { return K_; }
  // Float weights for the vendor BLAS (cpu/mlp.cpp): a row-major f32 copy (N, K) made on first
  // use and kept with the weight.
  mutable std::vector<float> f32_rows;

 private:
  std::unique_ptr<Buffer> storage_;
  DType dtype_;
  int64_t N_, K_;
};

// Checks that `bytes` bytes starting at view lie inside its buffer; returns the host address.
void* view_ptr(const BufView& v, size_t bytes, const char* where, const char* what);
template <typename T>
T* view_as(const BufView& v, size_t count, const char* where, const char* what) {
  return static_cast<T*>(view_ptr(v, count * sizeof(T), where, what));
}

// Row kernels chosen once at start-up: AVX2/FMA/F16C when available, else portable scalar.
struct RowKernels {
  const char* name;
  // dst (n,) f32 = dequantized src row of n elements in dtype t (n multiple of the block size).
  void (*dequant_row)(DType t, const void* src, float* dst, int64_t n);
  // sum_i a[i] * b[i]
  float (*dot)(const float* a, const float* b, int64_t n);
  // y[i] += alpha * x[i]
  void (*axpy)(float alpha, const float* x, float* y, int64_t n);
};
const RowKernels* avx2_kernels();  // nullptr when not compiled in
// The active kernels: AVX2 when cpu_isa() has it, else scalar.
const RowKernels& row_kernels();

// ---- op families (one .cpp each) ----
void op_embed(Ctx& c, const EmbedArgs& a);
void op_rms_norm(Ctx& c, const RmsNormArgs& a);
void op_matmul(Ctx& c, const MatmulArgs& a);
// Parts sharing x (Backend::matmul_group): quantized parts run as one job.
void op_matmul_group(Ctx& c, std::span<const MatmulArgs> parts);
void op_rope(Ctx& c, const RopeArgs& a);
void op_kv_write(Ctx& c, const KvWriteArgs& a);
void op_copy_blocks(Ctx& c, const CopyBlocksArgs& a);
void op_attention_split(Ctx& c, const AttentionArgs& a);
// Variant dispatch: split baseline, fused decode, flash prefill, or per sequence for Auto.
void op_attention(Ctx& c, const AttentionArgs& a);
void op_glu(Ctx& c, const GluArgs& a);
void op_add(Ctx& c, const AddArgs& a);
void op_softcap(Ctx& c, const SoftcapArgs& a);
void op_get_rows(Ctx& c, const GetRowsArgs& a);
void op_sample(Ctx& c, const SampleArgs& a);

}  // namespace longbow::cpu
