// msl_sim self-tests: barriers, threadgroup memory, atomics, registry and dispatch checks.
#include <numeric>
#include <random>
#include "test_harness.h"

using namespace sim_test;
using msl_sim::Dim3;

namespace {

struct ReduceArgs {
  std::uint32_t n;
};

std::vector<float> random_floats(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

void test_tree_reduction(const msl_sim::SimOptions& opt) {
  for (std::uint32_t n : {1u, 31u, 32u, 33u, 4097u}) {
    ReduceArgs args{n};
    std::vector<float> src = random_floats(n, n);
    const std::uint32_t num_tg = 3;
    std::vector<float> out(num_tg, -1.0f);
    msl_sim::dispatch("reduce_sum_f32", Dim3{num_tg, 1, 1}, Dim3{256, 1, 1},
                      {&args, src.data(), out.data()}, {}, opt);
    double want = 0, got = 0;
    for (float x : src) want += x;
    for (float x : out) got += x;
    check_close(got, want, 1e-5, "reduce_sum_f32 n=" + std::to_string(n));
  }
}

void test_tgarg_reduction(const msl_sim::SimOptions& opt) {
  std::uint32_t n = 1000;
  ReduceArgs args{n};
  std::vector<float> src = random_floats(n, 7);
  Dim3 tptg{16, 8, 1};  // 128 threads, 2D
  std::uint32_t num_tg = (n + 127) / 128;
  std::vector<float> out(num_tg, -1.0f);
  msl_sim::dispatch("reduce_sum_tgarg_f32", Dim3{num_tg, 1, 1}, tptg,
                    {&args, src.data(), out.data()}, {128 * sizeof(float)}, opt);
  for (std::uint32_t t = 0; t < num_tg; ++t) {
    double want = 0;
    for (std::uint32_t i = t * 128; i < std::min(n, t * 128 + 128); ++i) want += src[i];
    check_close(out[t], want, 1e-5, "threadgroup " + std::to_string(t));
  }
}

void test_atomics(const msl_sim::SimOptions& opt) {
  std::uint32_t counter = 0;
  std::vector<std::uint32_t> per_tg(5, 0);
  msl_sim::SimOptions o = opt;
  o.num_workers = 2;  // device atomics across worker threads
  msl_sim::dispatch("atomic_count", Dim3{5, 1, 1}, Dim3{96, 1, 1}, {&counter, per_tg.data()}, {},
                    o);
  check(counter == 5 * 96, "device counter " + std::to_string(counter));
  for (std::uint32_t c : per_tg) check(c == 96, "threadgroup counter " + std::to_string(c));
}

void test_registry_and_checks(const msl_sim::SimOptions& opt) {
  auto names = msl_sim::list_kernels();
  check(std::find(names.begin(), names.end(), "reduce_sum_f32") != names.end(),
        "reduce_sum_f32 registered");
  try {
    msl_sim::find_kernel("no_such_kernel");
    throw Failure{"find_kernel of unknown name did not throw"};
  } catch (const std::invalid_argument& e) {
    check(std::string(e.what()).find("reduce_sum_f32") != std::string::npos,
          std::string("message lists kernels: ") + e.what());
  }
  ReduceArgs args{1};
  float src = 1, out = 0;
  auto expect_invalid = [&](auto f, const std::string& needle) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      check(std::string(e.what()).find(needle) != std::string::npos,
            "message '" + std::string(e.what()) + "' lacks '" + needle + "'");
      return;
    }
    throw Failure{"expected std::invalid_argument containing " + needle};
  };
  expect_invalid([&] {
    msl_sim::dispatch("reduce_sum_f32", Dim3{1, 1, 1}, Dim3{1025, 1, 1}, {&args, &src, &out}, {},
                      opt);
  }, "at most 1024 threads per threadgroup, found 1025");
  expect_invalid([&] {
    msl_sim::dispatch("reduce_sum_f32", Dim3{1, 1, 1}, Dim3{256, 1, 1}, {&args, &src}, {}, opt);
  }, "[[buffer(2)]]");
  expect_invalid([&] {
    msl_sim::dispatch("reduce_sum_tgarg_f32", Dim3{1, 1, 1}, Dim3{32, 1, 1}, {&args, &src, &out},
                      {40000}, opt);
  }, "40000 bytes");
}

}  // namespace

int main(int argc, char** argv) {
  Args args(argc, argv);
  return run_all({{"tree_reduction", test_tree_reduction},
                  {"threadgroup_arg_reduction", test_tgarg_reduction},
                  {"atomics", test_atomics},
                  {"registry_and_dispatch_checks", test_registry_and_checks}},
                 args);
}
