// A persistent worker pool for the CPU backend: static chunking, short spin then sleep.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace longbow::cpu {

// Non-owning reference to a callable (begin, end, thread_idx); never allocates.
class RangeFn {
 public:
  template <typename F>
  RangeFn(F& f)  // NOLINT(google-explicit-constructor)
      : obj_(static_cast<void*>(&f)),
        call_([](void* o, int64_t b, int64_t e, int t) { (*static_cast<F*>(o))(b, e, t); }) {}
  void operator()(int64_t begin, int64_t end, int thread_idx) const {
    call_(obj_, begin, end, thread_idx);
  }

 private:
  void* obj_;
  void (*call_)(void*, int64_t, int64_t, int);
};

class ThreadPool {
 public:
  // num_threads <= 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Splits [0, n) into num_threads contiguous chunks and runs fn(begin, end, thread_idx) on each,
  // thread_idx being the chunk index (0..num_threads-1, each used exactly once, so per-thread
  // scratch indexed by it is never shared). Chunks are claimed by whichever thread is free first:
  // the caller included, so a late or descheduled worker never stalls the op. Returns when all
  // chunks are done; rethrows the first exception raised by fn. Nested calls (from inside fn) run
  // serially on the caller.
  template <typename F>
  void parallel_for(int64_t n, F&& fn) {
    auto& f = fn;
    run(n, RangeFn(f));
  }

 private:
  void run(int64_t n, RangeFn fn);
  void worker_loop(int thread_idx);
  void run_chunk(int chunk_idx);
  void drain_chunks();

  int num_threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> next_chunk_{0};  // next unclaimed chunk of the current job
  std::atomic<int> done_{0};        // chunks finished
  std::atomic<bool> stop_{false};
  std::atomic<bool> busy_{false};
  // Current job (valid while done_ < num_threads_).
  RangeFn* job_ = nullptr;
  int64_t job_n_ = 0;
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

}  // namespace longbow::cpu
