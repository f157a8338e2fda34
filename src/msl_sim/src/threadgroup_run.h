// One threadgroup in flight: its fibers, SIMD groups, barrier state and threadgroup memory.
#pragma once
#include <csetjmp>
#include <cstdint>
#include <exception>
#include <map>
#include <random>
#include <string>
#include <vector>
#include "fiber.h"
#include "msl_sim/runtime.h"

namespace msl_sim::detail {

enum class Wait : std::uint8_t { ready, barrier, simd, done };

struct FiberState {
  Context ctx;
  ThreadCtx tctx;
  Wait wait = Wait::ready;
  Site site;                // where the fiber waits (barrier or collective)
  std::uint32_t index = 0;  // thread_index_in_threadgroup
  std::uint32_t lane = 0;
  std::uint32_t group = 0;
  FiberStack* stack = nullptr;
  void* asan_fake_stack = nullptr;
};

struct SimdGroup {
  std::uint32_t live = 0;     // lanes not yet returned
  std::uint32_t arrived = 0;  // lanes waiting in a collective
  std::uint32_t first_lane = 0;
  std::uint32_t bytes = 0;
  bool arg_uniform = false;
  std::uint32_t args[SIMD_WIDTH];
  alignas(16) unsigned char pending[SIMD_WIDTH][SimdSnapshot::MAX_VALUE_BYTES];
  SimdSnapshot snap;
};

struct FiberAbort {};  // thrown inside waiting fibers to unwind them when a dispatch fails

struct DispatchShared;

class ThreadgroupRun {
 public:
  ThreadgroupRun(const DispatchShared& d, std::vector<FiberStack>& stacks);
  // Runs threadgroup tg to completion; throws SimError (or the kernel's exception) on failure.
  void run(const std::uint32_t tg[3]);

  // Called from fibers (via thread-local current run).
  void barrier(const Site& site);
  const SimdSnapshot& collective(const Site& site, const void* value, std::size_t bytes,
                                 std::uint32_t arg, bool arg_uniform);
  void* tg_var(const Site& site, std::size_t bytes, std::size_t align, PoisonKind poison);
  std::uint32_t lane() const { return current_->lane; }
  std::string where(const Site& site) const;
  [[noreturn]] void fail(const Site& site, const std::string& message) const;

  static void fiber_main(void* arg);

 private:
  void init_fibers(const std::uint32_t tg[3]);
  void reset_memory();
  std::size_t place(std::size_t bytes, std::size_t align);
  void schedule();
  void abort_all();
  void yield();
  void switch_to(FiberState& f);
  void on_fiber_done(FiberState& f);
  void try_complete_simd(SimdGroup& g);
  void check_barrier(const Site* site);
  std::string deadlock_report() const;
  std::string describe_threads(const std::vector<std::uint32_t>& ids) const;

  const DispatchShared& d_;
  std::vector<FiberStack>& stacks_;
  std::vector<FiberState> fibers_;        // (num_threads,)
  std::vector<SimdGroup> groups_;         // (ceil(num_threads / 32),)
  std::vector<std::uint32_t> order_;      // (num_threads,) fiber run order of one pass
  std::vector<unsigned char> arena_;      // threadgroup memory
  std::vector<void*> tg_args_;            // (num [[threadgroup(i)]] slots,)
  std::map<std::string, void*> tg_vars_;  // declaration site -> memory
  std::size_t arena_used_ = 0;            // physical bytes used (with redzones)
  std::size_t accounted_ = 0;             // bytes counted against the 32 KiB limit
  std::uint32_t num_threads_ = 0;
  std::uint32_t num_done_ = 0;
  std::uint32_t barrier_arrived_ = 0;
  std::uint32_t tg_[3] = {0, 0, 0};
  bool aborting_ = false;
  std::exception_ptr error_;
  Context sched_;
  FiberState* current_ = nullptr;
  std::mt19937_64 rng_;
  // The scheduler's stack for ASan's fiber switches (used only in sanitizer builds).
  [[maybe_unused]] const void* asan_sched_bottom_ = nullptr;
  [[maybe_unused]] std::size_t asan_sched_size_ = 0;

 public:
  sigjmp_buf overflow_jmp_;  // target of the stack-overflow signal handler
  const FiberState* current_fiber() const { return current_; }
};

// State shared by all threadgroups of one dispatch.
struct DispatchShared {
  const KernelInfo* kernel;
  Dim3 grid;
  Dim3 tptg;
  const std::vector<void*>* buffers;
  std::vector<std::size_t> tg_arg_bytes;
  SimOptions options;
};

ThreadgroupRun*& current_run();

}  // namespace msl_sim::detail
