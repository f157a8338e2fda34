// dispatch(): validates a launch, then runs its threadgroups one after another on one or more
// worker threads. Fiber stacks are kept per worker thread and reused. A fiber that overflows its
// stack hits the guard page; the SIGSEGV handler (on an alternate stack) jumps back to the
// scheduler, which reports a SimError.
#include <signal.h>

#include <atomic>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <thread>

#include "threadgroup_run.h"

namespace msl_sim {

namespace detail {
namespace {

std::vector<FiberStack>& worker_stacks() {
  thread_local std::vector<FiberStack> stacks;
  return stacks;
}

struct sigaction g_old_segv;
struct sigaction g_old_bus;

void overflow_handler(int sig, siginfo_t* info, void* uctx) {
  ThreadgroupRun* r = current_run();
  const FiberState* f = r ? r->current_fiber() : nullptr;
  if (f && f->stack->guard_contains(info->si_addr)) siglongjmp(r->overflow_jmp_, 1);
  // Not ours: restore the previous handler and let the fault happen again.
  sigaction(sig, sig == SIGSEGV ? &g_old_segv : &g_old_bus, nullptr);
  (void)uctx;
}

void install_overflow_handler() {
#if defined(__SANITIZE_ADDRESS__)
  return;  // AddressSanitizer reports stack overflows itself and owns the signal stacks
#endif
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = &overflow_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_old_segv);
    sigaction(SIGBUS, &sa, &g_old_bus);
  });
  // The handler runs on an alternate stack (the fiber's is exhausted); unregistered at exit.
  struct AltStack {
    std::vector<char> mem;
    bool installed = false;
    ~AltStack() {
      if (!installed) return;
      stack_t ss;
      std::memset(&ss, 0, sizeof ss);
      ss.ss_flags = SS_DISABLE;
      sigaltstack(&ss, nullptr);
    }
  };
  thread_local AltStack alt;
  if (!alt.installed) {
    stack_t old;
    if (sigaltstack(nullptr, &old) == 0 && !(old.ss_flags & SS_DISABLE)) return;  // keep theirs
    alt.mem.resize(64 * 1024);
    stack_t ss;
    std::memset(&ss, 0, sizeof ss);
    ss.ss_sp = alt.mem.data();
    ss.ss_size = alt.mem.size();
    alt.installed = sigaltstack(&ss, nullptr) == 0;
  }
}

// Runs threadgroups [next, total) claimed one at a time from a shared counter.
void worker(const DispatchShared& d, std::atomic<std::uint64_t>& next, std::uint64_t total,
            std::exception_ptr& error, std::mutex& error_mu) {
  install_overflow_handler();
  std::vector<FiberStack>& stacks = worker_stacks();
  ThreadgroupRun run(d, stacks);
  for (;;) {
    std::uint64_t i = next.fetch_add(1);
    if (i >= total) return;
    std::uint32_t tg[3] = {std::uint32_t(i % d.grid.x), std::uint32_t(i / d.grid.x % d.grid.y),
                           std::uint32_t(i / (std::uint64_t(d.grid.x) * d.grid.y))};
    try {
      if (sigsetjmp(run.overflow_jmp_, 1) != 0) {
        current_run() = nullptr;
        stacks.clear();  // abandoned fibers: drop their stacks entirely
        throw SimError("[msl_sim] kernel '" + std::string(d.kernel->name) + "' (" + d.kernel->file +
                       "): fiber stack overflow in threadgroup (" + std::to_string(tg[0]) + "," +
                       std::to_string(tg[1]) + "," + std::to_string(tg[2]) +
                       "); raise SimOptions.stack_bytes (now " +
                       std::to_string(d.options.stack_bytes) + ")");
      }
      run.run(tg);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mu);
      if (!error) error = std::current_exception();
      next.store(total);
      return;
    }
  }
}

}  // namespace
}  // namespace detail

void dispatch(const KernelInfo& kernel, Dim3 grid, Dim3 tptg, const std::vector<void*>& buffers,
              const std::vector<std::size_t>& threadgroup_mem_bytes, const SimOptions& options) {
  std::string where = std::string("[msl_sim] dispatch '") + kernel.name + "'";
  if (!grid.x || !grid.y || !grid.z || !tptg.x || !tptg.y || !tptg.z)
    throw std::invalid_argument(
        where + ": grid and threadgroup sizes must be >= 1, found grid (" + std::to_string(grid.x) +
        "," + std::to_string(grid.y) + "," + std::to_string(grid.z) + ") threadgroup (" +
        std::to_string(tptg.x) + "," + std::to_string(tptg.y) + "," + std::to_string(tptg.z) + ")");
  std::uint64_t threads = std::uint64_t(tptg.x) * tptg.y * tptg.z;
  if (threads > MAX_THREADS_PER_THREADGROUP)
    throw std::invalid_argument(where + ": at most " + std::to_string(MAX_THREADS_PER_THREADGROUP) +
                                " threads per threadgroup, found " + std::to_string(threads));
  for (unsigned i = 0; i < 64; ++i)
    if ((kernel.buffer_mask >> i & 1u) && (i >= buffers.size() || !buffers[i]))
      throw std::invalid_argument(where + ": kernel uses [[buffer(" + std::to_string(i) +
                                  ")]] but " + std::to_string(buffers.size()) +
                                  " buffers were given" +
                                  (i < buffers.size() ? " and that one is null" : ""));
  std::size_t tg_bytes = 0;
  for (std::size_t b : threadgroup_mem_bytes) tg_bytes += (b + 15) / 16 * 16;
  for (unsigned i = 0; i < 32; ++i)
    if ((kernel.threadgroup_mask >> i & 1u) && i >= threadgroup_mem_bytes.size())
      throw std::invalid_argument(where + ": kernel uses [[threadgroup(" + std::to_string(i) +
                                  ")]] but " + std::to_string(threadgroup_mem_bytes.size()) +
                                  " threadgroup memory sizes were given");
  if (tg_bytes > MAX_THREADGROUP_MEMORY_BYTES)
    throw std::invalid_argument(where + ": threadgroup memory arguments need " +
                                std::to_string(tg_bytes) + " bytes, more than the " +
                                std::to_string(MAX_THREADGROUP_MEMORY_BYTES) + "-byte limit");
  if (options.stack_bytes < 16 * 1024)
    throw std::invalid_argument(where + ": SimOptions.stack_bytes must be >= 16384, found " +
                                std::to_string(options.stack_bytes));

  detail::DispatchShared d{&kernel, grid, tptg, &buffers, threadgroup_mem_bytes, options};
  std::uint64_t total = std::uint64_t(grid.x) * grid.y * grid.z;
  std::atomic<std::uint64_t> next{0};
  std::exception_ptr error;
  std::mutex error_mu;
  unsigned workers = std::max(1u, std::min<unsigned>(options.num_workers, unsigned(total)));
  std::vector<std::thread> pool;
  for (unsigned w = 1; w < workers; ++w)
    pool.emplace_back([&] { detail::worker(d, next, total, error, error_mu); });
  detail::worker(d, next, total, error, error_mu);
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

void dispatch(std::string_view kernel_name, Dim3 grid, Dim3 tptg, const std::vector<void*>& buffers,
              const std::vector<std::size_t>& threadgroup_mem_bytes, const SimOptions& options) {
  dispatch(find_kernel(kernel_name), grid, tptg, buffers, threadgroup_mem_bytes, options);
}

}  // namespace msl_sim
