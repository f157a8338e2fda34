#include "longbow/backend/cpu/thread_pool.h"

#include <algorithm>

namespace longbow::cpu {

namespace {
constexpr int SPIN_ITERS = 20000;  // ~tens of microseconds before sleeping on the condvar

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}
}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::thread::hardware_concurrency());
  num_threads_ = std::max(1, num_threads);
  workers_.reserve(num_threads_ - 1);
  for (int t = 1; t < num_threads_; ++t) workers_.emplace_back([this, t] { worker_loop(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
  }
  wake_cv_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::run_chunk(int chunk_idx) {
  const int64_t chunk = (job_n_ + num_threads_ - 1) / num_threads_;
  const int64_t begin = std::min<int64_t>(job_n_, chunk * chunk_idx);
  const int64_t end = std::min<int64_t>(job_n_, begin + chunk);
  if (begin < end) {
    try {
      (*job_)(begin, end, chunk_idx);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }
  done_.fetch_add(1, std::memory_order_acq_rel);
}

// Claims and runs chunks of the current job until none is left.
void ThreadPool::drain_chunks() {
  for (;;) {
    const int i = next_chunk_.fetch_add(1, std::memory_order_acq_rel);
    if (i >= num_threads_) return;
    run_chunk(i);
  }
}

void ThreadPool::worker_loop(int) {
  uint64_t seen = 0;
  for (;;) {
    // Short spin: consecutive ops of one forward pass arrive microseconds apart.
    int spins = 0;
    while (generation_.load(std::memory_order_acquire) == seen &&
           !stop_.load(std::memory_order_relaxed) && spins < SPIN_ITERS) {
      cpu_relax();
      ++spins;
    }
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_cv_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
    }
    if (stop_.load()) return;
    seen = generation_.load(std::memory_order_acquire);
    drain_chunks();
  }
}

void ThreadPool::run(int64_t n, RangeFn fn) {
  if (n <= 0) return;
  bool expected = false;
  if (num_threads_ == 1 || n == 1 || !busy_.compare_exchange_strong(expected, true)) {
    fn(0, n, 0);  // serial: single thread, trivial size, or nested call
    return;
  }
  job_ = &fn;
  job_n_ = n;
  error_ = nullptr;
  done_.store(0, std::memory_order_relaxed);
  next_chunk_.store(0, std::memory_order_release);  // publishes the job to chunk claimers
  {
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  wake_cv_.notify_all();
  // The caller claims chunks too: a worker that is descheduled (a busy machine) or still asleep
  // delays nothing, its chunk is simply run here.
  drain_chunks();
  for (int spins = 0; done_.load(std::memory_order_acquire) != num_threads_; ++spins) {
    if (spins < SPIN_ITERS) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
  job_ = nullptr;
  std::exception_ptr err = error_;
  error_ = nullptr;
  busy_.store(false);
  if (err) std::rethrow_exception(err);
}

}  // namespace longbow::cpu
