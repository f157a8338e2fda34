// Fibers: stacks with a guard page and a context switch (hand-written for x86-64 and arm64,
// ucontext elsewhere). Only callee-saved registers are switched.
#pragma once
#include <cstddef>
#if !defined(__x86_64__) && !defined(__aarch64__)
#include <ucontext.h>
#define MSL_SIM_UCONTEXT 1
#endif

namespace msl_sim::detail {

struct Context {
#ifdef MSL_SIM_UCONTEXT
  ucontext_t uc;
#else
  void* sp = nullptr;  // saved stack pointer; callee-saved registers are on that stack
#endif
};

using FiberEntry = void (*)(void*);

// Prepare ctx so that the first switch to it calls entry(arg) on [stack_lo, stack_lo + bytes).
void context_init(Context& ctx, void* stack_lo, std::size_t bytes, FiberEntry entry, void* arg);
// Save the current context in from and resume to.
void context_switch(Context& from, Context& to);

// An mmap'ed stack with a PROT_NONE guard page below it.
struct FiberStack {
  void* map = nullptr;  // whole mapping, guard page first
  std::size_t map_bytes = 0;
  void* lo = nullptr;  // usable stack [lo, lo + bytes)
  std::size_t bytes = 0;
  FiberStack() = default;
  FiberStack(const FiberStack&) = delete;
  FiberStack& operator=(const FiberStack&) = delete;
  FiberStack(FiberStack&& o) noexcept { *this = std::move(o); }
  FiberStack& operator=(FiberStack&& o) noexcept;
  ~FiberStack();
  void allocate(std::size_t usable_bytes);  // throws std::runtime_error
  bool guard_contains(const void* addr) const;
};

}  // namespace msl_sim::detail
