// Minimal test harness for the msl_sim C++ test programs: named checks, options from argv.
#pragma once
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>
#include "msl_sim/sim.h"

namespace sim_test {

struct Failure {
  std::string message;
};

inline void check(bool ok, const std::string& what) {
  if (!ok) throw Failure{what};
}
inline void check_close(double got, double want, double tol, const std::string& what) {
  if (!(std::fabs(got - want) <= tol * (1.0 + std::fabs(want))))
    throw Failure{what + ": got " + std::to_string(got) + ", want " + std::to_string(want)};
}

// Parses --order in_order|reverse|random, --seed N, --workers N, --filter substring.
struct Args {
  msl_sim::SimOptions options;
  std::string filter;
  Args(int argc, char** argv) {
    for (int i = 1; i + 1 < argc; i += 2) {
      std::string k = argv[i], v = argv[i + 1];
      if (k == "--order") {
        options.order = v == "reverse"  ? msl_sim::ThreadOrder::reverse
                        : v == "random" ? msl_sim::ThreadOrder::random
                                        : msl_sim::ThreadOrder::in_order;
      } else if (k == "--seed") {
        options.seed = std::strtoull(v.c_str(), nullptr, 10);
      } else if (k == "--workers") {
        options.num_workers = unsigned(std::atoi(v.c_str()));
      } else if (k == "--filter") {
        filter = v;
      }
    }
  }
};

struct Test {
  const char* name;
  std::function<void(const msl_sim::SimOptions&)> fn;
};

// Runs every test (matching the filter); prints one line per test; returns the exit status.
inline int run_all(const std::vector<Test>& tests, const Args& args) {
  int failed = 0, ran = 0;
  for (const Test& t : tests) {
    if (!args.filter.empty() && std::string(t.name).find(args.filter) == std::string::npos)
      continue;
    ++ran;
    try {
      t.fn(args.options);
      std::printf("PASS %s\n", t.name);
    } catch (const Failure& f) {
      ++failed;
      std::printf("FAIL %s: %s\n", t.name, f.message.c_str());
    } catch (const std::exception& e) {
      ++failed;
      std::printf("FAIL %s: unexpected exception: %s\n", t.name, e.what());
    }
  }
  std::printf("%d/%d passed\n", ran - failed, ran);
  return failed == 0 && ran > 0 ? 0 : 1;
}

// Expects dispatch to throw SimError whose message contains every needle.
template <class F>
void expect_sim_error(F&& f, const std::vector<std::string>& needles, const std::string& what) {
  try {
    f();
  } catch (const msl_sim::SimError& e) {
    std::string msg = e.what();
    for (const std::string& n : needles)
      check(msg.find(n) != std::string::npos,
            what + ": message lacks '" + n + "': " + msg);
    return;
  }
  throw Failure{what + ": expected msl_sim::SimError, none thrown"};
}

}  // namespace sim_test
