// msl_sim self-tests on real-style kernels: every SIMD function vs a scalar reference, row
// softmax vs double, decode attention with half KV vs double, exact 8x8 simdgroup matmul.
#include <algorithm>
#include <random>
#include "test_harness.h"

using namespace sim_test;
using msl_sim::Dim3;

namespace {

std::vector<float> random_floats(std::size_t n, unsigned seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

constexpr std::uint32_t NUM_F = 12, NUM_U = 10;

// Scalar reference of simd_ops for SIMD group [g0, g0 + width) (all lanes active).
void check_simd_group(const std::vector<float>& x, const std::vector<int>& ix,
                      const std::vector<float>& of, const std::vector<std::uint32_t>& ou,
                      std::uint32_t n, std::uint32_t g0, std::uint32_t width, bool shuffles) {
  auto F = [&](std::uint32_t k, std::uint32_t i) { return of[k * n + g0 + i]; };
  auto U = [&](std::uint32_t k, std::uint32_t i) { return ou[k * n + g0 + i]; };
  double sum = 0, mx = -1e30, mn = 1e30, prefix = 0;
  std::uint32_t prod = 1, band = ~0u, bor = 0, bxor = 0, ballot = 0;
  bool all = true, any = false;
  for (std::uint32_t i = 0; i < width; ++i) {
    float v = x[g0 + i];
    sum += v;
    mx = std::max<double>(mx, v);
    mn = std::min<double>(mn, v);
    int iv = ix[g0 + i];
    prod *= iv % 3 == 0 ? 2u : 1u;
    band &= std::uint32_t(iv);
    bor |= std::uint32_t(iv);
    bxor ^= std::uint32_t(iv);
    if (v > 0) ballot |= 1u << i;
    all = all && v > -2.0f;
    any = any || v > 0.9f;
  }
  std::string at = " (group at " + std::to_string(g0) + ", lane ";
  for (std::uint32_t i = 0; i < width; ++i) {
    std::string w = at + std::to_string(i) + ")";
    float v = x[g0 + i];
    check_close(F(0, i), sum, 1e-5, "simd_sum" + w);
    check(F(1, i) == float(mx), "simd_max" + w);
    check(F(2, i) == float(mn), "simd_min" + w);
    check_close(F(4, i), prefix, 1e-5, "simd_prefix_exclusive_sum" + w);
    prefix += v;
    check_close(F(3, i), prefix, 1e-5, "simd_prefix_inclusive_sum" + w);
    check(F(5, i) == x[g0], "simd_broadcast_first" + w);
    check_close(F(6, i), sum + width, 1e-5, "simd_sum(float4)" + w);
    check(U(0, i) == prod, "simd_product" + w);
    check(U(1, i) == band && U(2, i) == bor && U(3, i) == bxor, "simd_and/or/xor" + w);
    check(U(4, i) == ballot, "simd_ballot" + w);
    check(U(5, i) == std::uint32_t(all) && U(6, i) == std::uint32_t(any), "simd_all/any" + w);
    check(U(7, i) == (i == 0 ? 1u : 0u), "simd_is_first" + w);
    if (!shuffles) continue;
    check(F(7, i) == x[g0 + (i * 7) % 32], "simd_shuffle" + w);
    check(F(8, i) == x[g0 + (i ^ 3)], "simd_shuffle_xor" + w);
    check(F(9, i) == (i + 4 < 32 ? x[g0 + i + 4] : v), "simd_shuffle_down" + w);
    check(F(10, i) == (i >= 4 ? x[g0 + i - 4] : v), "simd_shuffle_up" + w);
    check(F(11, i) == x[g0 + 7], "simd_broadcast" + w);
    check(int(U(8, i)) == ix[g0 + (i + 5) % 32], "simd_shuffle_rotate_down" + w);
    int q = 0;
    for (std::uint32_t k = i & ~3u; k < (i & ~3u) + 4; ++k) q += ix[g0 + k];
    check(int(U(9, i)) == q, "quad_sum" + w);
  }
}

void run_simd_ops(const msl_sim::SimOptions& opt, std::uint32_t tptg, std::uint32_t num_tg,
                  bool shuffles) {
  std::uint32_t n = tptg * num_tg;
  std::vector<float> x = random_floats(n, n);
  std::vector<int> ix(n);
  std::mt19937 rng(5);
  for (int& v : ix) v = int(rng() % 1000);
  std::vector<float> of(NUM_F * n, 0.0f);
  std::vector<std::uint32_t> ou(NUM_U * n, 0);
  std::uint32_t args = shuffles ? 1 : 0;
  msl_sim::dispatch("simd_ops", Dim3{num_tg, 1, 1}, Dim3{tptg, 1, 1},
                    {&args, x.data(), ix.data(), of.data(), ou.data()}, {}, opt);
  for (std::uint32_t t = 0; t < num_tg; ++t)
    for (std::uint32_t g = 0; g < tptg; g += 32)
      check_simd_group(x, ix, of, ou, n, t * tptg + g, std::min(32u, tptg - g), shuffles);
}

void test_simd_ops(const msl_sim::SimOptions& opt) { run_simd_ops(opt, 64, 3, true); }
// 40 threads: the second SIMD group has 8 live lanes (reductions only).
void test_simd_ops_partial(const msl_sim::SimOptions& opt) { run_simd_ops(opt, 40, 2, false); }

void test_softmax(const msl_sim::SimOptions& opt) {
  for (std::uint32_t ncols : {4u, 124u, 1024u, 4100u}) {
    std::uint32_t nrows = 3;
    std::vector<float> src = random_floats(std::size_t(nrows) * ncols, ncols, -8.0f, 8.0f);
    std::vector<float> dst(src.size(), -1.0f);
    msl_sim::dispatch("softmax_f32", Dim3{nrows, 1, 1}, Dim3{256, 1, 1},
                      {&ncols, src.data(), dst.data()}, {}, opt);
    for (std::uint32_t r = 0; r < nrows; ++r) {
      const float* x = &src[std::size_t(r) * ncols];
      double m = *std::max_element(x, x + ncols), s = 0;
      for (std::uint32_t c = 0; c < ncols; ++c) s += std::exp(double(x[c]) - m);
      for (std::uint32_t c = 0; c < ncols; ++c) {
        double want = std::exp(double(x[c]) - m) / s;
        double got = dst[std::size_t(r) * ncols + c];
        if (std::fabs(got - want) > 1e-6 * std::max(1.0, want * 10))
          throw Failure{"softmax ncols=" + std::to_string(ncols) + " row " + std::to_string(r) +
                        " col " + std::to_string(c) + ": got " + std::to_string(got) +
                        ", want " + std::to_string(want)};
      }
    }
  }
}

struct AttnArgs {
  std::uint32_t seq_len, num_heads, num_kv_heads;
  float scale;
};

void test_attention(const msl_sim::SimOptions& opt) {
  const std::uint32_t head_dim = 64;
  for (std::uint32_t seq_len : {1u, 33u, 200u}) {
    AttnArgs a{seq_len, 6, 2, 1.0f / 8.0f};
    std::vector<float> q = random_floats(a.num_heads * head_dim, 1);
    std::vector<float> kf = random_floats(std::size_t(seq_len) * a.num_kv_heads * head_dim, 2);
    std::vector<float> vf = random_floats(kf.size(), 3);
    std::vector<_Float16> k(kf.size()), v(vf.size());
    for (std::size_t i = 0; i < kf.size(); ++i) {
      k[i] = _Float16(kf[i]);
      v[i] = _Float16(vf[i]);
    }
    std::vector<float> out(q.size(), -1.0f);
    msl_sim::dispatch("attention_decode_f16", Dim3{a.num_heads, 1, 1}, Dim3{128, 1, 1},
                      {&a, q.data(), k.data(), v.data(), out.data()}, {}, opt);
    for (std::uint32_t h = 0; h < a.num_heads; ++h) {
      std::uint32_t kvh = h / (a.num_heads / a.num_kv_heads);
      std::vector<double> sc(seq_len);
      double m = -1e300, s = 0;
      for (std::uint32_t t = 0; t < seq_len; ++t) {
        double d = 0;
        for (std::uint32_t i = 0; i < head_dim; ++i)
          d += double(q[h * head_dim + i]) * double(k[(t * a.num_kv_heads + kvh) * head_dim + i]);
        sc[t] = d * a.scale;
        m = std::max(m, sc[t]);
      }
      for (double& x : sc) s += (x = std::exp(x - m));
      for (std::uint32_t i = 0; i < head_dim; ++i) {
        double o = 0;
        for (std::uint32_t t = 0; t < seq_len; ++t)
          o += sc[t] * double(v[(t * a.num_kv_heads + kvh) * head_dim + i]);
        check_close(out[h * head_dim + i], o / s, 1e-5,
                    "attention seq_len=" + std::to_string(seq_len) + " head " + std::to_string(h) +
                        " dim " + std::to_string(i));
      }
    }
  }
}

template <class T>
void run_matmul(const msl_sim::SimOptions& opt, const char* name) {
  std::vector<T> a(64), b(64);
  std::vector<float> c0(64), c(64, -1), ct(64, -1);
  for (int i = 0; i < 64; ++i) {
    a[i] = T((i * 7) % 11 - 5);
    b[i] = T((i * 5) % 13 - 6);
    c0[i] = float(i % 9);
  }
  msl_sim::dispatch(name, Dim3{1, 1, 1}, Dim3{32, 1, 1},
                    {a.data(), b.data(), c0.data(), c.data(), ct.data()}, {}, opt);
  for (int r = 0; r < 8; ++r)
    for (int col = 0; col < 8; ++col) {
      float want = c0[r * 8 + col], want_t = 0;
      for (int k = 0; k < 8; ++k) {
        want += float(a[r * 8 + k]) * float(b[k * 8 + col]);
        want_t += float(a[r * 8 + k]) * float(b[col * 8 + k]);
      }
      check(c[r * 8 + col] == want, std::string(name) + " A*B+C at (" + std::to_string(r) + "," +
                                        std::to_string(col) + ")");
      check(ct[r * 8 + col] == want_t, std::string(name) + " A*B^T at (" + std::to_string(r) +
                                           "," + std::to_string(col) + ")");
    }
}

void test_matmul(const msl_sim::SimOptions& opt) {
  run_matmul<float>(opt, "matmul8x8_f32");
  run_matmul<_Float16>(opt, "matmul8x8_f16");
}

}  // namespace

int main(int argc, char** argv) {
  Args args(argc, argv);
  return run_all({{"simd_ops", test_simd_ops},
                  {"simd_ops_partial_group", test_simd_ops_partial},
                  {"softmax_256_threads", test_softmax},
                  {"attention_decode_half_kv", test_attention},
                  {"simdgroup_matmul_8x8", test_matmul}},
                 args);
}
