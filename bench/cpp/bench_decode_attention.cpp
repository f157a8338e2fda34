// Decode attention alone with SmolLM2-135M shapes (9 query heads, 3 kv heads, head dim 64, f16
// paged KV cache, block size 16): S sequences x one new token each at context N, variant auto
// (fused decode). Each call reads the KV of a different "layer" (rotating over enough caches to
// exceed the L3 cache, up to 30 like the model), so K/V stream from memory as in a real step.
// Names: decode/s<S>/ctx<N>; ns_per_iter is per call (one layer).
// Run: bench_decode_attention [--filter=decode/s16] [--min-ms=300]; threads: $LONGBOW_BENCH_THREADS
// (2).
#include <algorithm>
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

constexpr int H = 9, HKV = 3, HD = 64, BS = 16;
constexpr size_t TARGET_BYTES = size_t{96} << 20;  // KV bytes rotated over: beyond a 32 MiB L3

int bench_threads() {
  const char* e = std::getenv("LONGBOW_BENCH_THREADS");
  return e ? std::atoi(e) : 2;
}

Backend& backend() {
  static std::unique_ptr<Backend> b = create_backend("cpu", BackendOptions{bench_threads()});
  return *b;
}

template <typename T_>
std::unique_ptr<Buffer> host_buf(const std::vector<T_>& v) {
  auto buf = backend().alloc(std::max<size_t>(v.size() * sizeof(T_), 4));
  std::copy(v.begin(), v.end(), static_cast<T_*>(buf->host_ptr()));
  return buf;
}

std::unique_ptr<Buffer> random_f16(size_t n, std::mt19937& rng) {
  auto buf = backend().alloc(n * 2);
  auto* h = static_cast<uint16_t*>(buf->host_ptr());
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (size_t i = 0; i < n; ++i) h[i] = f32_to_f16(dist(rng));
  return buf;
}

void bench_decode(bench::State& st, int S, int N) {
  const int blocks_per_seq = (N + BS - 1) / BS,
            num_blocks = S * blocks_per_seq + 1;  // block 0: null
  const size_t cache_elems =
      static_cast<size_t>(num_blocks) * BS * HKV * HD;  // (num_blocks, BS, HKV, HD)
  const int layers = static_cast<int>(std::clamp<size_t>(TARGET_BYTES / (4 * cache_elems), 1, 30));
  std::mt19937 rng(7);
  std::vector<std::unique_ptr<Buffer>> kc, vc;
  for (int l = 0; l < layers; ++l)
    kc.push_back(random_f16(cache_elems, rng)), vc.push_back(random_f16(cache_elems, rng));
  std::vector<int32_t> blocks(static_cast<size_t>(S) *
                              blocks_per_seq);  // (S, blocks_per_seq) shuffled
  std::iota(blocks.begin(), blocks.end(), 1);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  std::vector<int32_t> qs(S + 1), lens(S, N), pos(S, N - 1);
  std::iota(qs.begin(), qs.end(), 0);
  auto block_tables = host_buf(blocks), query_start = host_buf(qs), seq_lens = host_buf(lens),
       positions = host_buf(pos);
  std::vector<float> qv(static_cast<size_t>(S) * H * HD);  // (S, H, HD)
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (float& x : qv) x = dist(rng);
  auto q = host_buf(qv);
  auto out = backend().alloc(qv.size() * 4);  // (S, H, HD)
  AttentionArgs a;
  a.out = {out.get(), 0}, a.q = {q.get(), 0};
  a.block_tables = {block_tables.get(), 0}, a.query_start = {query_start.get(), 0};
  a.seq_lens = {seq_lens.get(), 0}, a.positions = {positions.get(), 0};
  a.k_dtype = DType::F16, a.v_dtype = DType::F16, a.num_tokens = S, a.num_seqs = S, a.num_heads = H,
  a.num_kv_heads = HKV;
  a.head_dim = HD, a.block_size = BS, a.max_blocks_per_seq = blocks_per_seq,
  a.num_blocks = num_blocks;
  a.scale = 1.0f / std::sqrt(static_cast<float>(HD));
  st.bytes = 2.0 * S * N * HKV * HD * 2;  // K and V read once
  st.flops = 4.0 * S * H * HD * N;        // QK^T and PV
  int layer = 0;
  st.run([&] {
    a.k_cache = {kc[layer].get(), 0}, a.v_cache = {vc[layer].get(), 0};
    layer = (layer + 1) % layers;
    backend().attention(a);
  });
}

const bool registered = [] {
  for (int S : {1, 16}) {
    for (int N : {128, 512, 2048}) {
      const std::string name = "decode/s" + std::to_string(S) + "/ctx" + std::to_string(N);
      bench::Registrar(name.c_str(), [S, N](bench::State& s) { bench_decode(s, S, N); });
    }
  }
  return true;
}();

}  // namespace

int main(int argc, char** argv) { return bench::main(argc, argv); }
