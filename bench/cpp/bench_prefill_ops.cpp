// The non-matmul ops of one 512-token prefill of SmolLM2-135M, each timed alone on the CPU
// backend with the real shapes (hidden 576, 9 heads, 3 kv heads, head dim 64, intermediate 1536,
// f16 paged KV cache, block size 16): embed, rms_norm, rope, kv_write, attention (auto = flash
// prefill), silu_mul, plus the per-layer matmuls for scale. bench/profile_prefill.py multiplies
// each by its count per forward (30 layers) to get the per-op-family breakdown.
// Run: bench_prefill_ops [--filter=prefill512/attention] [--min-ms=300]; threads:
// $LONGBOW_BENCH_THREADS (2).
#include <cmath>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "bench_harness.h"
#include "longbow/backend/backend.h"
#include "longbow/core/dtype.h"

using namespace longbow;

namespace {

constexpr int T = 512, D = 576, H = 9, HKV = 3, HD = 64, F = 1536, BS = 16, VOCAB = 49152;

int bench_threads() {
  const char* e = std::getenv("LONGBOW_BENCH_THREADS");
  return e ? std::atoi(e) : 2;
}

Backend& backend() {
  static std::unique_ptr<Backend> b = create_backend("cpu", BackendOptions{bench_threads()});
  return *b;
}

std::unique_ptr<Buffer> random_f32(size_t n, float scale = 1.0f, unsigned seed = 2) {
  auto buf = backend().alloc(n * sizeof(float));
  auto* f = static_cast<float*>(buf->host_ptr());
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  for (size_t i = 0; i < n; ++i) f[i] = dist(rng);
  return buf;
}

template <typename T_>
std::unique_ptr<Buffer> host_buf(const std::vector<T_>& v) {
  auto buf = backend().alloc(std::max<size_t>(v.size() * sizeof(T_), 4));
  std::copy(v.begin(), v.end(), static_cast<T_*>(buf->host_ptr()));
  return buf;
}

// One sequence of T tokens in a paged f16 cache: shuffled block table, positions 0..T-1.
struct Prefill {
  int num_blocks = T / BS + 1;  // block 0 is the null block
  std::unique_ptr<Buffer> positions, slots, block_table, query_start, seq_lens, k_cache, v_cache;
  Prefill() {
    std::vector<int32_t> pos(T), blocks(T / BS), slot(T);
    std::iota(pos.begin(), pos.end(), 0);
    std::iota(blocks.begin(), blocks.end(), 1);
    std::shuffle(blocks.begin(), blocks.end(), std::mt19937(3));
    for (int t = 0; t < T; ++t) slot[t] = blocks[t / BS] * BS + t % BS;
    positions = host_buf(pos), slots = host_buf(slot), block_table = host_buf(blocks);
    query_start = host_buf(std::vector<int32_t>{0, T}),
    seq_lens = host_buf(std::vector<int32_t>{T});
    const size_t cache_elems =
        static_cast<size_t>(num_blocks) * BS * HKV * HD;  // (num_blocks, BS, HKV, HD)
    k_cache = backend().alloc(cache_elems * 2), v_cache = backend().alloc(cache_elems * 2);
  }
  KvWriteArgs kv_write(const Buffer& k, const Buffer& v) const {
    KvWriteArgs a;
    a.k = {const_cast<Buffer*>(&k), 0}, a.v = {const_cast<Buffer*>(&v), 0};
    a.k_cache = {k_cache.get(), 0}, a.v_cache = {v_cache.get(), 0},
    a.slot_mapping = {slots.get(), 0};
    a.k_dtype = DType::F16, a.v_dtype = DType::F16, a.num_tokens = T, a.num_kv_heads = HKV,
    a.head_dim = HD;
    a.num_slots = num_blocks * BS;
    return a;
  }
};

Prefill& prefill() {
  static Prefill p;
  return p;
}

void bench_attention(bench::State& s) {
  Prefill& p = prefill();
  auto q = random_f32(static_cast<size_t>(T) * H * HD);             // (T, H, HD)
  auto k = random_f32(static_cast<size_t>(T) * HKV * HD, 1.0f, 4);  // (T, HKV, HD)
  auto v = random_f32(static_cast<size_t>(T) * HKV * HD, 1.0f, 5);  // (T, HKV, HD)
  auto out = backend().alloc(static_cast<size_t>(T) * H * HD * 4);  // (T, H, HD)
  backend().kv_write(p.kv_write(*k, *v));
  AttentionArgs a;
  a.out = {out.get(), 0}, a.q = {q.get(), 0}, a.k_cache = {p.k_cache.get(), 0},
  a.v_cache = {p.v_cache.get(), 0};
  a.block_tables = {p.block_table.get(), 0}, a.query_start = {p.query_start.get(), 0};
  a.seq_lens = {p.seq_lens.get(), 0}, a.positions = {p.positions.get(), 0};
  a.k_dtype = DType::F16, a.v_dtype = DType::F16, a.num_tokens = T, a.num_seqs = 1, a.num_heads = H,
  a.num_kv_heads = HKV;
  a.head_dim = HD, a.block_size = BS, a.max_blocks_per_seq = T / BS, a.num_blocks = p.num_blocks;
  a.scale = 1.0f / std::sqrt(static_cast<float>(HD));
  s.flops =
      4.0 * H * HD * (static_cast<double>(T) * (T + 1) / 2);  // QK^T and PV over the causal half
  s.run([&] { backend().attention(a); });
}

void bench_matmul(bench::State& s, int N, int K) {
  const size_t bytes = static_cast<size_t>(N) * dtype_row_bytes(DType::Q8_0, K);
  std::vector<uint8_t> raw(bytes);
  std::mt19937 rng(1);
  for (auto& b : raw) b = static_cast<uint8_t>(rng());
  for (size_t b = 0; b < bytes / sizeof(BlockQ8_0); ++b) {
    reinterpret_cast<uint16_t*>(raw.data() + b * sizeof(BlockQ8_0))[0] = 0x2000;  // d = 2^-7
  }
  auto w = backend().matmul_weight(raw.data(), DType::Q8_0, N, K);
  auto x = random_f32(static_cast<size_t>(T) * K);             // (T, K)
  auto out = backend().alloc(static_cast<size_t>(T) * N * 4);  // (T, N)
  MatmulArgs a;
  a.out = {out.get(), 0}, a.x = {x.get(), 0}, a.w = {w.get(), 0};
  a.w_dtype = DType::Q8_0, a.M = T, a.N = N, a.K = K;
  s.flops = 2.0 * T * N * K;
  s.run([&] { backend().matmul(a); });
}

bool register_all() {
  bench::Registrar("prefill512/embed_q8_0", [](bench::State& s) {
    std::vector<uint8_t> raw(static_cast<size_t>(VOCAB) * dtype_row_bytes(DType::Q8_0, D));
    std::mt19937 rng(1);
    for (auto& b : raw) b = static_cast<uint8_t>(rng());
    for (size_t b = 0; b < raw.size() / sizeof(BlockQ8_0); ++b) {
      reinterpret_cast<uint16_t*>(raw.data() + b * sizeof(BlockQ8_0))[0] = 0x2000;
    }
    auto table = host_buf(raw);
    std::vector<int32_t> ids(T);
    for (auto& i : ids) i = static_cast<int32_t>(rng() % VOCAB);
    auto tok = host_buf(ids);
    auto out = backend().alloc(static_cast<size_t>(T) * D * 4);  // (T, D)
    EmbedArgs a;
    a.out = {out.get(), 0}, a.token_ids = {tok.get(), 0}, a.table = {table.get(), 0};
    a.table_dtype = DType::Q8_0, a.num_tokens = T, a.dim = D, a.vocab_size = VOCAB;
    s.run([&] { backend().embed(a); });
  });
  bench::Registrar("prefill512/rms_norm", [](bench::State& s) {
    auto x = random_f32(static_cast<size_t>(T) * D), o = random_f32(static_cast<size_t>(T) * D),
         w = random_f32(D);
    RmsNormArgs a;
    a.out = {o.get(), 0}, a.x = {x.get(), 0}, a.weight = {w.get(), 0};
    a.num_rows = T, a.dim = D;
    s.bytes = 3.0 * T * D * 4;
    s.run([&] { backend().rms_norm(a); });
  });
  bench::Registrar("prefill512/rope", [](bench::State& s) {
    auto q = random_f32(static_cast<size_t>(T) * H * HD),
         k = random_f32(static_cast<size_t>(T) * HKV * HD);
    std::vector<float> inv(HD / 2);
    for (int i = 0; i < HD / 2; ++i) inv[i] = std::pow(100000.0f, -2.0f * i / HD);
    auto inv_freq = host_buf(inv);
    RopeArgs a;
    a.q = {q.get(), 0}, a.k = {k.get(), 0}, a.positions = {prefill().positions.get(), 0};
    a.inv_freq = {inv_freq.get(), 0};
    a.num_tokens = T, a.num_heads = H, a.num_kv_heads = HKV, a.head_dim = HD, a.rot_dim = HD;
    s.run([&] { backend().rope(a); });
  });
  bench::Registrar("prefill512/kv_write_f16", [](bench::State& s) {
    auto k = random_f32(static_cast<size_t>(T) * HKV * HD),
         v = random_f32(static_cast<size_t>(T) * HKV * HD);
    const KvWriteArgs a = prefill().kv_write(*k, *v);
    s.run([&] { backend().kv_write(a); });
  });
  bench::Registrar("prefill512/attention", bench_attention);
  bench::Registrar("prefill512/silu_mul", [](bench::State& s) {
    const size_t n = static_cast<size_t>(T) * F;
    auto g = random_f32(n), u = random_f32(n), o = random_f32(n);
    GluArgs a;
    a.out = {o.get(), 0}, a.gate = {g.get(), 0}, a.up = {u.get(), 0};
    a.num_rows = T, a.dim = F;
    s.bytes = 3.0 * n * 4;
    s.run([&] { backend().glu(a); });
  });
  // Per layer: q, k, v, o (576x576, 192x576 twice, 576x576), gate and up (1536x576), down
  // (576x1536).
  bench::Registrar("prefill512/matmul_q8_0/576x576",
                   [](bench::State& s) { bench_matmul(s, 576, 576); });
  bench::Registrar("prefill512/matmul_q8_0/192x576",
                   [](bench::State& s) { bench_matmul(s, 192, 576); });
  bench::Registrar("prefill512/matmul_q8_0/1536x576",
                   [](bench::State& s) { bench_matmul(s, 1536, 576); });
  bench::Registrar("prefill512/matmul_q8_0/576x1536",
                   [](bench::State& s) { bench_matmul(s, 576, 1536); });
  return true;
}

const bool registered = register_all();

}  // namespace

int main(int argc, char** argv) {
  (void)registered;
  return bench::main(argc, argv);
}
