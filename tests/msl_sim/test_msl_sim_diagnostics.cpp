// msl_sim diagnostics: every deliberately wrong kernel of kernels/bad.metal must produce its
// SimError, naming the rule and the .metal file:line.
#include <fstream>
#include "test_harness.h"

using namespace sim_test;
using msl_sim::Dim3;

namespace {

// "<path>/bad.metal:<line>" of the line holding marker in the kernel's source.
std::string site(const char* kernel, const std::string& marker) {
  const msl_sim::KernelInfo& k = msl_sim::find_kernel(kernel);
  std::ifstream in(k.file);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n)
    if (line.find("@" + marker) != std::string::npos) return std::string(k.file) + ":" + std::to_string(n);
  throw Failure{std::string("marker @") + marker + " not found in " + k.file};
}

std::vector<float> buf(std::size_t n) { return std::vector<float>(n, 0.0f); }

void run(const char* kernel, std::uint32_t threads, const msl_sim::SimOptions& opt,
         std::vector<void*> extra = {}) {
  std::vector<float> out = buf(1024);
  std::vector<void*> bufs{out.data()};
  bufs.insert(bufs.end(), extra.begin(), extra.end());
  msl_sim::dispatch(kernel, Dim3{2, 1, 1}, Dim3{threads, 1, 1}, bufs, {}, opt);
}

void test_early_return(const msl_sim::SimOptions& opt) {
  expect_sim_error([&] { run("bad_early_return", 64, opt); },
                   {"barrier divergence", "threads 16-63 returned", "threads 0-15",
                    site("bad_early_return", "early_return_barrier"), "bad_early_return"},
                   "early return before barrier");
}

void test_barrier_sites(const msl_sim::SimOptions& opt) {
  expect_sim_error([&] { run("bad_barrier_sites", 64, opt); },
                   {"barrier divergence", "different barrier", site("bad_barrier_sites", "barrier_a"),
                    site("bad_barrier_sites", "barrier_b")},
                   "barriers at different sites");
}

void test_simd_divergent(const msl_sim::SimOptions& opt) {
  expect_sim_error([&] { run("bad_simd_divergent", 32, opt); },
                   {"divergent SIMD collectives", "simd_sum", "simd_max",
                    site("bad_simd_divergent", "simd_sum_branch"),
                    site("bad_simd_divergent", "simd_max_branch")},
                   "different collectives in if/else");
}

void test_nonuniform(const msl_sim::SimOptions& opt) {
  expect_sim_error([&] { run("bad_shuffle_nonuniform", 32, opt); },
                   {"non-uniform argument to simd_shuffle_down",
                    site("bad_shuffle_nonuniform", "nonuniform")},
                   "non-uniform shuffle delta");
}

void test_deadlock(const msl_sim::SimOptions& opt) {
  expect_sim_error([&] { run("bad_deadlock", 32, opt); },
                   {"deadlock", "threads 0-7 in simd_sum at " + site("bad_deadlock", "deadlock_simd"),
                    "threads 8-31 in threadgroup_barrier at " +
                        site("bad_deadlock", "deadlock_barrier")},
                   "simd_sum in part of a SIMD group");
}

void test_tg_overflow(const msl_sim::SimOptions& opt) {
  expect_sim_error([&] { run("bad_tg_overflow", 64, opt); },
                   {"threadgroup memory exceeds 32768 bytes", "32000 bytes",
                    site("bad_tg_overflow", "tg_overflow")},
                   "threadgroup memory over 32 KiB");
}

void test_inactive_lane(const msl_sim::SimOptions& opt) {
  expect_sim_error([&] { run("bad_inactive_lane", 40, opt); },
                   {"simd_shuffle reads inactive lane", site("bad_inactive_lane", "inactive")},
                   "shuffle from an inactive lane");
}

void test_uninitialised(const msl_sim::SimOptions& opt) {
  std::vector<float> out(64, 0.0f);
  std::vector<int> out_i(64, 0);
  msl_sim::dispatch("bad_uninitialised", Dim3{1, 1, 1}, Dim3{64, 1, 1}, {out.data(), out_i.data()},
                    {}, opt);
  for (int t = 0; t < 64; ++t) {
    bool written = 63 - t < 32;
    check(written ? out[t] == 1.0f : std::isnan(out[t]),
          "float slot " + std::to_string(63 - t) + " poisoned with NaN");
    check(written ? out_i[t] == 1 : out_i[t] == int(0xcdcdcdcdu),
          "int slot " + std::to_string(63 - t) + " poisoned with 0xCD");
  }
}

void test_missing_barrier(const msl_sim::SimOptions& opt) {
  // Poisoned memory + different thread orders expose the race: in order, threads 0-31 read
  // slots 63-32 before they are written (NaN); in reverse order threads 63-32 do.
  std::vector<float> a(64), b(64);
  msl_sim::SimOptions o = opt;
  o.order = msl_sim::ThreadOrder::in_order;
  msl_sim::dispatch("bad_missing_barrier", Dim3{1, 1, 1}, Dim3{64, 1, 1}, {a.data()}, {}, o);
  o.order = msl_sim::ThreadOrder::reverse;
  msl_sim::dispatch("bad_missing_barrier", Dim3{1, 1, 1}, Dim3{64, 1, 1}, {b.data()}, {}, o);
  check(std::isnan(a[0]) && a[63] == 0.0f, "in order: thread 0 reads poison, thread 63 a value");
  check(b[0] == 63.0f && std::isnan(b[63]), "reverse: thread 63 reads poison, thread 0 a value");
}

void test_stack_overflow(const msl_sim::SimOptions& opt) {
  std::uint32_t depth = 2;  // fits: 3 frames of 2 KiB
  std::vector<float> out = buf(64);
  msl_sim::dispatch("bad_stack_overflow", Dim3{1, 1, 1}, Dim3{32, 1, 1}, {out.data(), &depth}, {},
                    opt);
  check(out[0] == 7.0f + 1.0f + 2.0f, "shallow recursion result");
  depth = 100000;
  msl_sim::SimOptions o = opt;
  o.stack_bytes = 64 * 1024;
  expect_sim_error([&] {
    msl_sim::dispatch("bad_stack_overflow", Dim3{1, 1, 1}, Dim3{32, 1, 1}, {out.data(), &depth},
                      {}, o);
  }, {"fiber stack overflow", "bad_stack_overflow", "stack_bytes (now 65536)"}, "deep recursion");
  // The simulator keeps working after an overflow.
  depth = 2;
  msl_sim::dispatch("bad_stack_overflow", Dim3{1, 1, 1}, Dim3{32, 1, 1}, {out.data(), &depth}, {},
                    opt);
}

}  // namespace

int main(int argc, char** argv) {
  Args args(argc, argv);
  std::vector<Test> tests = {{"barrier_divergence_early_return", test_early_return},
                             {"barrier_divergence_sites", test_barrier_sites},
                             {"divergent_simd_collectives", test_simd_divergent},
                             {"non_uniform_shuffle_argument", test_nonuniform},
                             {"deadlock_wait_sites", test_deadlock},
                             {"threadgroup_memory_over_32k", test_tg_overflow},
                             {"inactive_lane_read", test_inactive_lane},
                             {"uninitialised_threadgroup_memory_poison", test_uninitialised},
                             {"missing_barrier_order_dependent", test_missing_barrier}};
#if !defined(__SANITIZE_ADDRESS__)
  tests.push_back({"fiber_stack_overflow", test_stack_overflow});
#endif
  return run_all(tests, args);
}
