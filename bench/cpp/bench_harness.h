// A minimal gtest-style micro-benchmark harness: BENCH(name) { ... state.run([&] { work; }); }
// One binary, filtered by name: `bench_kernels --filter=matmul/q4_1 --min-ms=200 --list`.
// Each benchmark prints one JSON line: name, iterations, ns per iteration, and the bytes / flops
// per iteration it declared turned into GB/s and GFLOP/s.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace bench {

struct State {
  double min_ms = 300.0;
  double bytes = 0, flops = 0;  // per iteration, set by the benchmark
  double ns_per_iter = 0;
  long iters = 0;
  template <typename F>
  void run(F&& f) {
    f();  // warm-up
    long n = 1;
    for (;;) {
      const auto t0 = std::chrono::steady_clock::now();
      for (long i = 0; i < n; ++i) f();
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (ms >= min_ms || n > (1L << 30)) {
        iters = n;
        ns_per_iter = ms * 1e6 / static_cast<double>(n);
        return;
      }
      n = ms <= 0 ? n * 10 : static_cast<long>(n * (min_ms * 1.2 / ms)) + 1;
    }
  }
};

struct Registry {
  std::vector<std::pair<std::string, std::function<void(State&)>>> items;
  static Registry& get() {
    static Registry r;
    return r;
  }
};

struct Registrar {
  Registrar(const char* name, std::function<void(State&)> fn) {
    Registry::get().items.emplace_back(name, std::move(fn));
  }
};

// Glob-lite: the name contains every '*'-separated piece of the filter, in order.
inline bool matches(const std::string& name, const std::string& filter) {
  size_t pos = 0, start = 0;
  while (start <= filter.size()) {
    size_t star = filter.find('*', start);
    std::string piece =
        filter.substr(start, star == std::string::npos ? std::string::npos : star - start);
    if (!piece.empty()) {
      size_t hit = name.find(piece, pos);
      if (hit == std::string::npos) return false;
      pos = hit + piece.size();
    }
    if (star == std::string::npos) break;
    start = star + 1;
  }
  return true;
}

inline int main(int argc, char** argv) {
  std::string filter;
  double min_ms = 300.0;
  bool list = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--filter=", 9) == 0)
      filter = argv[i] + 9;
    else if (std::strncmp(argv[i], "--min-ms=", 9) == 0)
      min_ms = std::atof(argv[i] + 9);
    else if (std::strcmp(argv[i], "--list") == 0)
      list = true;
    else {
      std::fprintf(stderr,
                   "[bench] unknown argument %s (expected --filter=PATTERN, --min-ms=MS, --list)\n",
                   argv[i]);
      return 2;
    }
  }
  int ran = 0;
  for (auto& [name, fn] : Registry::get().items) {
    if (!matches(name, filter)) continue;
    ++ran;
    if (list) {
      std::printf("%s\n", name.c_str());
      continue;
    }
    State s;
    s.min_ms = min_ms;
    fn(s);
    std::printf(
        "{\"name\": \"%s\", \"iters\": %ld, \"ns_per_iter\": %.1f, \"gb_s\": %.3f, \"gflop_s\": "
        "%.3f}\n",
        name.c_str(), s.iters, s.ns_per_iter, s.bytes / s.ns_per_iter, s.flops / s.ns_per_iter);
    std::fflush(stdout);
  }
  if (ran == 0) {
    std::fprintf(stderr, "[bench] no benchmark matches filter '%s'\n", filter.c_str());
    return 1;
  }
  return 0;
}

}  // namespace bench

#define BENCH_CAT2(a, b) a##b
#define BENCH_CAT(a, b) BENCH_CAT2(a, b)
// Registers a benchmark under a run-time name (a std::string expression).
#define BENCH_REGISTER(name_expr, fn) \
  static bench::Registrar BENCH_CAT(bench_reg_, __LINE__)(name_expr, fn)
