// CPU kernel micro-benchmarks (SmolLM2-135M shapes): matmul per weight dtype for decode (M = 1),
// 16 batched decode tokens (M = 16) and prefill (M = 512), the activation quantizer, rms_norm,
// silu_mul and thread-pool dispatch. Decode attention: bench_decode_attention.cpp.
// Run: bench_kernels [--filter=matmul/decode*q4_1] [--min-ms=300] [--list]; LONGBOW_CPU_SIMD=scalar
// benchmarks the portable path. Threads: $LONGBOW_BENCH_THREADS (default 2).
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench_harness.h"
#include "longbow/backend/backend.h"
#include "longbow/backend/cpu/matmul/matmul_kernels.h"
#include "longbow/backend/cpu/thread_pool.h"

using namespace longbow;

namespace {

int bench_threads() {
  const char* e = std::getenv("LONGBOW_BENCH_THREADS");
  return e ? std::atoi(e) : 2;
}

Backend& backend() {
  static std::unique_ptr<Backend> b = create_backend("cpu", BackendOptions{bench_threads()});
  return *b;
}

// A buffer of `bytes` random bytes (valid for every weight dtype: f16/bf16 scales stay finite
// because the scale bytes are rewritten below for block formats).
std::unique_ptr<Buffer> random_weights(DType t, int N, int K) {
  const size_t bytes = static_cast<size_t>(N) * dtype_row_bytes(t, K);
  auto buf = backend().alloc(bytes);
  auto* p = static_cast<uint8_t*>(buf->host_ptr());
  std::mt19937 rng(1);
  if (t == DType::F32) {
    auto* f = reinterpret_cast<float*>(p);
    for (size_t i = 0; i < bytes / 4; ++i) f[i] = static_cast<float>(rng() % 2000) / 1000.f - 1.f;
  } else if (t == DType::F16 || t == DType::BF16) {
    auto* h = reinterpret_cast<uint16_t*>(p);
    for (size_t i = 0; i < bytes / 2; ++i)
      h[i] = t == DType::F16 ? 0x3000 + (rng() % 0x800) : 0x3E00 + (rng() % 0x100);
  } else {
    for (size_t i = 0; i < bytes; ++i) p[i] = static_cast<uint8_t>(rng());
    const size_t bs = t == DType::Q8_0   ? sizeof(BlockQ8_0)
                      : t == DType::Q4_0 ? sizeof(BlockQ4_0)
                                         : sizeof(BlockQ4_1);
    for (size_t b = 0; b < bytes / bs; ++b) {
      auto* h = reinterpret_cast<uint16_t*>(p + b * bs);
      h[0] = 0x2000;  // d = 2^-7
      if (t == DType::Q4_1) h[1] = 0xA000;
    }
  }
  return buf;
}

std::unique_ptr<Buffer> random_f32(size_t n) {
  auto buf = backend().alloc(n * sizeof(float));
  auto* f = static_cast<float*>(buf->host_ptr());
  std::mt19937 rng(2);
  for (size_t i = 0; i < n; ++i) f[i] = static_cast<float>(rng() % 2000) / 1000.f - 1.f;
  return buf;
}

void matmul_bench(bench::State& s, DType t, int M, int N, int K) {
  auto raw = random_weights(t, N, K);  // (N, K) t, row-major
  auto w =
      backend().matmul_weight(raw->host_ptr(), t, N, K);  // the backend's layout (packed for Q*)
  auto x = random_f32(static_cast<size_t>(M) * K);        // (M, K) f32
  auto out = backend().alloc(static_cast<size_t>(M) * N * 4);  // (M, N) f32
  MatmulArgs a;
  a.out = {out.get(), 0};
  a.x = {x.get(), 0};
  a.w = {w.get(), 0};
  a.w_dtype = t;
  a.M = M, a.N = N, a.K = K;
  s.bytes = static_cast<double>(N) * dtype_row_bytes(t, K) + 4.0 * M * K + 4.0 * M * N;
  s.flops = 2.0 * M * N * K;
  s.run([&] { backend().matmul(a); });
}

struct Shape {
  const char* name;
  int N, K;
};
const Shape SHAPES[] = {{"qo_576x576", 576, 576},
                        {"kv_192x576", 192, 576},
                        {"up_1536x576", 1536, 576},
                        {"down_576x1536", 576, 1536}};
const std::pair<const char*, DType> DTYPES[] = {{"q4_0", DType::Q4_0}, {"q4_1", DType::Q4_1},
                                                {"q8_0", DType::Q8_0}, {"f16", DType::F16},
                                                {"bf16", DType::BF16}, {"f32", DType::F32}};

bool register_all() {
  for (auto& [dn, dt] : DTYPES) {
    for (const Shape& sh : SHAPES) {
      const DType t = dt;
      const Shape shape = sh;
      bench::Registrar(("matmul/decode/" + std::string(dn) + "/" + sh.name).c_str(),
                       [=](bench::State& s) { matmul_bench(s, t, 1, shape.N, shape.K); });
      bench::Registrar(("matmul/batch16/" + std::string(dn) + "/" + sh.name).c_str(),
                       [=](bench::State& s) { matmul_bench(s, t, 16, shape.N, shape.K); });
      bench::Registrar(("matmul/prefill512/" + std::string(dn) + "/" + sh.name).c_str(),
                       [=](bench::State& s) { matmul_bench(s, t, 512, shape.N, shape.K); });
    }
  }
  bench::Registrar("matmul/decode/q8_0/lm_head_49152x576",
                   [](bench::State& s) { matmul_bench(s, DType::Q8_0, 1, 49152, 576); });
  bench::Registrar("quantize_q16a/576", [](bench::State& s) {
    std::vector<float> x(576, 0.5f);
    std::vector<cpu::BlockQ16A> q(576 / QK);
    s.bytes = 576 * 4 + q.size() * sizeof(cpu::BlockQ16A);
    s.run([&] { cpu::matmul_kernels().quantize_q16a(x.data(), q.data(), 576); });
  });
  bench::Registrar("rms_norm/512x576", [](bench::State& s) {
    auto x = random_f32(512 * 576), o = random_f32(512 * 576), w = random_f32(576);
    RmsNormArgs a;
    a.out = {o.get(), 0}, a.x = {x.get(), 0}, a.weight = {w.get(), 0};
    a.num_rows = 512, a.dim = 576;
    s.bytes = 2.0 * 512 * 576 * 4;
    s.run([&] { backend().rms_norm(a); });
  });
  bench::Registrar("silu_mul/1x1536", [](bench::State& s) {
    auto g = random_f32(1536), u = random_f32(1536), o = random_f32(1536);
    GluArgs a;
    a.out = {o.get(), 0}, a.gate = {g.get(), 0}, a.up = {u.get(), 0};
    a.num_rows = 1, a.dim = 1536;
    s.bytes = 3.0 * 1536 * 4;
    s.run([&] { backend().glu(a); });
  });
  bench::Registrar("thread_pool/dispatch_empty", [](bench::State& s) {
    static cpu::ThreadPool pool(bench_threads());
    s.run([&] { pool.parallel_for(64, [](int64_t, int64_t, int) {}); });
  });
  return true;
}

const bool registered = register_all();

}  // namespace

int main(int argc, char** argv) {
  (void)registered;
  return bench::main(argc, argv);
}
