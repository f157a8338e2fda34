#include "longbow/backend/cpu/cpu_backend.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include "longbow/backend/cpu/matmul/matmul_kernels.h"
#include "longbow/backend/cpu/vendor_blas.h"
#include "longbow/backend/op_checks.h"

namespace longbow::cpu {

namespace {
constexpr size_t ALIGNMENT = 64;
// Buffers this large come from anonymous mappings: zero pages are committed only when touched,
// so a big, mostly idle KV cache does not count against resident memory.
constexpr size_t MMAP_THRESHOLD = 1u << 20;

enum class Ownership { Heap, Mapped, Wrapped };

// Host memory: owned (64-byte aligned heap or a page-aligned mapping, zeroed) or wrapped.
class CpuBuffer final : public Buffer {
 public:
  CpuBuffer(void* ptr, size_t bytes, size_t capacity, Ownership own)
      : ptr_(ptr), bytes_(bytes), capacity_(capacity), own_(own) {}
  ~CpuBuffer() override {
    if (own_ == Ownership::Heap) ::operator delete(ptr_, std::align_val_t(ALIGNMENT));
    if (own_ == Ownership::Mapped) ::munmap(ptr_, capacity_);
  }
  size_t bytes() const override { return bytes_; }
  void* host_ptr() const override { return ptr_; }

 private:
  void* ptr_;
  size_t bytes_, capacity_;
  Ownership own_;
};

}  // namespace

// ---- shared helpers of cpu_ops.h ----

void Scratch::ensure(int num_threads, size_t f32_elems, size_t i32_elems) {
  if (f32.size() < static_cast<size_t>(num_threads)) f32.resize(num_threads);
  if (i32.size() < static_cast<size_t>(num_threads)) i32.resize(num_threads);
  for (int t = 0; t < num_threads; ++t) {
    if (f32[t].size() < f32_elems) f32[t].resize(f32_elems);
    if (i32[t].size() < i32_elems) i32[t].resize(i32_elems);
  }
}

void* view_ptr(const BufView& v, size_t bytes, const char* where, const char* what) {
  if (v.buffer == nullptr) {
    throw std::invalid_argument(std::string("[") + where + "] " + what +
                                ": expected a buffer, found none");
  }
  const size_t size = v.buffer->bytes();
  if (v.offset > size || bytes > size - v.offset) {
    throw std::invalid_argument(std::string("[") + where + "] " + what + ": view needs bytes [" +
                                std::to_string(v.offset) + ", " + std::to_string(v.offset + bytes) +
                                ") but the buffer has " + std::to_string(size) + " bytes");
  }
  void* base = v.buffer->host_ptr();
  if (base == nullptr) {
    throw std::runtime_error(std::string("[") + where + "] " + what +
                             ": buffer is not host-visible");
  }
  return static_cast<char*>(base) + v.offset;
}

// ---- CpuBackend ----

CpuBackend::CpuBackend(const BackendOptions& options)
    : pool_(options.num_threads),
      ctx_{pool_, scratch_},
      mlp_chooser_(options.mlp, "cpu", vendor_blas_status()) {
  if (options.mlp == MlpPath::Vendor && vendor_blas() == nullptr) {
    throw std::runtime_error("[cpu] mlp=\"vendor\" needs a vendor BLAS; " + vendor_blas_status());
  }
}

std::unique_ptr<Buffer> CpuBackend::alloc(size_t bytes) {
  const size_t rounded = std::max(ALIGNMENT, ((bytes + ALIGNMENT - 1) / ALIGNMENT) * ALIGNMENT);
  if (rounded >= MMAP_THRESHOLD) {
    void* p = ::mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      throw std::runtime_error("[cpu.alloc] out of memory mapping " + std::to_string(bytes) +
                               " bytes");
    }
    return std::make_unique<CpuBuffer>(p, bytes, rounded, Ownership::Mapped);
  }
  void* p = nullptr;
  try {
    p = ::operator new(rounded, std::align_val_t(ALIGNMENT));
  } catch (const std::bad_alloc&) {
    throw std::runtime_error("[cpu.alloc] out of memory allocating " + std::to_string(bytes) +
                             " bytes");
  }
  std::memset(p, 0, rounded);
  return std::make_unique<CpuBuffer>(p, bytes, rounded, Ownership::Heap);
}

std::unique_ptr<Buffer> CpuBackend::wrap_host(const void* ptr, size_t bytes) {
  require(ptr != nullptr || bytes == 0, "cpu.wrap_host", "expected a host pointer, found nullptr");
  return std::make_unique<CpuBuffer>(const_cast<void*>(ptr), bytes, bytes, Ownership::Wrapped);
}

std::unique_ptr<Buffer> CpuBackend::matmul_weight(const void* ptr, DType dtype, int N, int K) {
  const char* where = "cpu.matmul_weight";
  require(N >= 0 && K >= 0, where, [&] {
    return "expected non-negative N, K, found " + std::to_string(N) + ", " + std::to_string(K);
  });
  require(is_block_quant(dtype) || is_float_weight(dtype), where, [&] {
    return std::string("expected a weight dtype (F32, F16, BF16, Q8_0, Q4_0, Q4_1), found ") +
           dtype_name(dtype);
  });
  require(!is_block_quant(dtype) || K % QK == 0, where, [&] {
    return "expected K a multiple of 32 for " + std::string(dtype_name(dtype)) + ", found " +
           std::to_string(K);
  });
  require(ptr != nullptr || N == 0 || K == 0, where, "expected a host pointer, found nullptr");
  auto storage = alloc(std::max<size_t>(packed_bytes(dtype, N, K), 4));
  void* dst = storage->host_ptr();
  const int64_t panels = (static_cast<int64_t>(N) + PANEL_ROWS - 1) / PANEL_ROWS;
  if (K > 0) {
    pool_.parallel_for(
        panels, [&](int64_t p0, int64_t p1, int) { pack_panels(dtype, ptr, N, K, p0, p1, dst); });
  }
  return std::make_unique<PackedWeight>(std::move(storage), dtype, N, K);
}

void CpuBackend::upload(BufView dst, const void* src, size_t bytes) {
  void* d = view_ptr(dst, bytes, "cpu.upload", "dst");
  if (bytes) std::memcpy(d, src, bytes);
}

void CpuBackend::download(void* dst, BufView src, size_t bytes) {
  const void* s = view_ptr(src, bytes, "cpu.download", "src");
  if (bytes) std::memcpy(dst, s, bytes);
}

bool CpuBackend::supports(Op op, DType dtype) const {
  // The whole shared kernel set, and KV caches of the block types (op_checks.h).
  const bool kv_op = op == Op::KvWrite || op == Op::Attention || op == Op::CopyBlocks;
  return kernel_set_supports(op, dtype) || (kv_op && is_kv_block_dtype(dtype));
}

void CpuBackend::require_supported(Op op, DType dtype, const char* where) const {
  if (!supports(op, dtype)) {
    throw std::invalid_argument(std::string("[") + where + "] the cpu backend does not support " +
                                op_family_name(op) + " with dtype " + dtype_name(dtype));
  }
}

namespace {
// Token-count class of an op in the profile: 1, 2-16, 17-64, ... (decode vs batched vs prefill).
std::string tokens_class(int64_t n) {
  if (n <= 1) return "T=1";
  int64_t hi = 16;
  while (hi < n) hi *= 4;
  return "T<=" + std::to_string(hi);
}
}  // namespace

void CpuBackend::embed(const EmbedArgs& a) {
  OpTimer t(profile_, [&] { return "embed " + tokens_class(a.num_tokens); });
  require_supported(Op::Embed, a.table_dtype, "cpu.embed");
  op_embed(ctx_, a);
}
void CpuBackend::rms_norm(const RmsNormArgs& a) {
  OpTimer t(profile_, [&] { return "rms_norm " + tokens_class(a.num_rows); });
  op_rms_norm(ctx_, a);
}
void CpuBackend::matmul(const MatmulArgs& a) {
  OpTimer t(profile_, [&] {
    return "matmul " + std::string(dtype_name(a.w_dtype)) + " " + std::to_string(a.N) + "x" +
           std::to_string(a.K) + " " + tokens_class(a.M);
  });
  require_supported(Op::Matmul, a.w_dtype, "cpu.matmul");
  op_matmul(ctx_, a);
}
void CpuBackend::matmul_group(std::span<const MatmulArgs> parts) {
  OpTimer t(profile_, [&] {
    std::string key = "matmul_group";
    for (const MatmulArgs& a : parts) {
      key += " " + std::string(dtype_name(a.w_dtype)) + " " + std::to_string(a.N) + "x" +
             std::to_string(a.K);
    }
    return key + " " + tokens_class(parts.empty() ? 0 : parts[0].M);
  });
  for (const MatmulArgs& a : parts) require_supported(Op::Matmul, a.w_dtype, "cpu.matmul_group");
  op_matmul_group(ctx_, parts);
}
void CpuBackend::rope(const RopeArgs& a) {
  OpTimer t(profile_, [&] { return "rope " + tokens_class(a.num_tokens); });
  op_rope(ctx_, a);
}
void CpuBackend::kv_write(const KvWriteArgs& a) {
  OpTimer t(profile_, [&] { return "kv_write " + tokens_class(a.num_tokens); });
  require_supported(Op::KvWrite, a.k_dtype, "cpu.kv_write");
  require_supported(Op::KvWrite, a.v_dtype, "cpu.kv_write");
  op_kv_write(ctx_, a);
}
void CpuBackend::attention(const AttentionArgs& a) {
  OpTimer t(profile_, [&] { return "attention " + tokens_class(a.num_tokens); });
  require_supported(Op::Attention, a.k_dtype, "cpu.attention");
  require_supported(Op::Attention, a.v_dtype, "cpu.attention");
  op_attention(ctx_, a);  // variant choice: attention_dispatch.cpp
}
void CpuBackend::glu(const GluArgs& a) {
  OpTimer t(profile_, [&] { return "glu " + tokens_class(a.num_rows); });
  op_glu(ctx_, a);
}
void CpuBackend::add(const AddArgs& a) {
  OpTimer t(profile_, [] { return std::string("add"); });
  op_add(ctx_, a);
}
void CpuBackend::softcap(const SoftcapArgs& a) {
  OpTimer t(profile_, [] { return std::string("softcap"); });
  op_softcap(ctx_, a);
}
void CpuBackend::get_rows(const GetRowsArgs& a) {
  OpTimer t(profile_, [] { return std::string("get_rows"); });
  op_get_rows(ctx_, a);
}
void CpuBackend::sample(const SampleArgs& a) {
  OpTimer t(profile_, [&] { return "sample " + tokens_class(a.num_rows); });
  op_sample(ctx_, a);
}
void CpuBackend::copy_blocks(const CopyBlocksArgs& a) {
  OpTimer t(profile_, [] { return std::string("copy_blocks"); });
  op_copy_blocks(ctx_, a);
}

std::unique_ptr<Backend> make_cpu_backend(const BackendOptions& options) {
  return std::make_unique<CpuBackend>(options);
}

}  // namespace longbow::cpu
