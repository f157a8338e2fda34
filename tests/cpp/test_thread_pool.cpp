// ThreadPool contracts (thread_pool.h), run from tests/test_thread_pool.py. Exit code 0 = pass.
// parallel_for: chunk i covers its share of [0, n) and gets thread_idx i, each exactly once, and
// no thread_idx is used by two concurrent calls. A long run of consecutive jobs of changing sizes
// exercises the hand-over between jobs; exceptions reach the caller; nested calls run serially.
#include <atomic>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "longbow/backend/cpu/thread_pool.h"

using longbow::cpu::ThreadPool;

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  if (!ok && ++failures < 20) std::printf("FAIL %s\n", what.c_str());
}

// Runs one job of n items; returns false on any contract violation.
bool one_job(ThreadPool& pool, int64_t n) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  std::vector<std::atomic<int>> busy(static_cast<size_t>(pool.num_threads()));
  std::vector<std::atomic<int>> chunk_seen(static_cast<size_t>(pool.num_threads()));
  std::atomic<bool> ok{true};
  auto fn = [&](int64_t b, int64_t e, int t) {
    if (t < 0 || t >= pool.num_threads() || b >= e || b < 0 || e > n) {
      ok = false;
      return;
    }
    if (busy[t].fetch_add(1) != 0) ok = false;        // thread_idx shared by two concurrent calls
    if (chunk_seen[t].fetch_add(1) != 0) ok = false;  // chunk index reused
    const int64_t chunk = (n + pool.num_threads() - 1) / pool.num_threads();
    if (pool.num_threads() > 1 && n > 1 && b != chunk * t) ok = false;  // serial runs get (0, n)
    for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
    busy[t].fetch_sub(1);
  };
  pool.parallel_for(n, fn);
  for (int64_t i = 0; i < n; ++i) ok = ok && hits[i].load() == 1;
  return ok;
}

}  // namespace

int main() {
  int jobs = 0;
  for (int threads : {1, 2, 3, 4}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 2, 3, 7, 100, 4097}) {
      check(one_job(pool, n), "threads=" + std::to_string(threads) + " n=" + std::to_string(n));
      ++jobs;
    }
    // Hand-over stress: consecutive jobs of different sizes.
    for (int i = 0; i < 3000; ++i) {
      const int64_t n = 1 + (i * 37) % 300;
      check(one_job(pool, n), "stress job " + std::to_string(i));
      ++jobs;
    }
    // Exceptions reach the caller; the pool stays usable.
    bool threw = false;
    try {
      pool.parallel_for(1000, [](int64_t, int64_t e, int) {
        if (e > 500) throw std::invalid_argument("boom");
      });
    } catch (const std::invalid_argument&) {
      threw = true;
    }
    check(threw, "exception rethrown, threads=" + std::to_string(threads));
    check(one_job(pool, 100), "usable after an exception");
    // A nested call runs serially on the calling thread.
    std::atomic<int64_t> inner{0};
    pool.parallel_for(8, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i)
        pool.parallel_for(10, [&](int64_t bb, int64_t ee, int) { inner += ee - bb; });
    });
    check(inner.load() == 80, "nested calls");
  }
  std::printf("%d jobs checked, %d failures\n", jobs, failures);
  return failures == 0 ? 0 : 1;
}
