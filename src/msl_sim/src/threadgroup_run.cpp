// Cooperative execution of one threadgroup: one fiber per thread, run in passes (in-order,
// reverse or seeded random) until each blocks at a barrier or SIMD collective. A barrier
// releases when every thread of the threadgroup waits at the same site; a collective releases
// when every live lane of that SIMD group waits at the same site.
#include "threadgroup_run.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#if defined(__SANITIZE_ADDRESS__)
#define MSL_SIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MSL_SIM_ASAN 1
#endif
#endif
#ifdef MSL_SIM_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace msl_sim::detail {

#ifdef MSL_SIM_ASAN
// Poisoned gap after every threadgroup allocation, so ASan reports threadgroup overruns.
constexpr std::size_t REDZONE_BYTES = 64;
#else
constexpr std::size_t REDZONE_BYTES = 0;
#endif

ThreadgroupRun*& current_run() {
  thread_local ThreadgroupRun* run = nullptr;
  return run;
}

ThreadgroupRun::ThreadgroupRun(const DispatchShared& d, std::vector<FiberStack>& stacks)
    : d_(d), stacks_(stacks) {
  num_threads_ = d.tptg.x * d.tptg.y * d.tptg.z;
  fibers_.resize(num_threads_);
  groups_.resize((num_threads_ + SIMD_WIDTH - 1) / SIMD_WIDTH);
  order_.resize(num_threads_);
  arena_.resize(2 * MAX_THREADGROUP_MEMORY_BYTES + 64);
  while (stacks_.size() < num_threads_) stacks_.emplace_back();
  for (std::uint32_t i = 0; i < num_threads_; ++i) {
    if (stacks_[i].bytes < d.options.stack_bytes) stacks_[i].allocate(d.options.stack_bytes);
    fibers_[i].stack = &stacks_[i];
  }
}

std::string ThreadgroupRun::where(const Site& site) const {
  std::ostringstream os;
  os << site.file << ":" << site.line;
  return os.str();
}

void ThreadgroupRun::fail(const Site& site, const std::string& message) const {
  std::ostringstream os;
  os << "[msl_sim] " << where(site) << ": kernel '" << d_.kernel->name << "' threadgroup ("
     << tg_[0] << "," << tg_[1] << "," << tg_[2] << ")";
  if (current_) os << " thread " << current_->index;
  os << ": " << message;
  throw SimError(os.str());
}

// Places bytes in the arena (16-byte aligned, then a redzone under ASan); returns the offset.
std::size_t ThreadgroupRun::place(std::size_t bytes, std::size_t align) {
  auto base = reinterpret_cast<std::uintptr_t>(arena_.data());
  std::size_t a = std::max<std::size_t>(align, 16);
  std::size_t off = ((base + arena_used_ + a - 1) & ~std::uintptr_t(a - 1)) - base;
  arena_used_ = off + bytes + REDZONE_BYTES;
  accounted_ += (bytes + 15) / 16 * 16;
#ifdef MSL_SIM_ASAN
  __asan_unpoison_memory_region(arena_.data() + off, bytes);
#endif
  return off;
}

void ThreadgroupRun::reset_memory() {
  tg_vars_.clear();
  arena_used_ = 0;
  accounted_ = 0;
#ifdef MSL_SIM_ASAN
  __asan_poison_memory_region(arena_.data(), arena_.size());
#endif
  tg_args_.assign(d_.tg_arg_bytes.size(), nullptr);
  for (std::size_t i = 0; i < d_.tg_arg_bytes.size(); ++i) {
    std::size_t off = place(d_.tg_arg_bytes[i], 16);
    tg_args_[i] = arena_.data() + off;
    std::memset(arena_.data() + off, 0xff, d_.tg_arg_bytes[i]);  // NaN for every float type
  }
}

void* ThreadgroupRun::tg_var(const Site& site, std::size_t bytes, std::size_t align,
                             PoisonKind poison) {
  std::string key =
      std::string(site.file) + ":" + std::to_string(site.line) + ":" + std::to_string(site.column);
  auto it = tg_vars_.find(key);
  if (it != tg_vars_.end()) return it->second;
  if (accounted_ + bytes > MAX_THREADGROUP_MEMORY_BYTES)
    fail(site, "threadgroup memory exceeds " + std::to_string(MAX_THREADGROUP_MEMORY_BYTES) +
                   " bytes: this declaration needs " + std::to_string(bytes) + " bytes, " +
                   std::to_string(accounted_) + " are already in use");
  std::size_t off = place(bytes, align);
  std::memset(arena_.data() + off, poison == PoisonKind::nan_bytes ? 0xff : 0xcd, bytes);
  void* p = arena_.data() + off;
  tg_vars_.emplace(std::move(key), p);
  return p;
}

void ThreadgroupRun::init_fibers(const std::uint32_t tg[3]) {
  const Dim3& t = d_.tptg;
  const Dim3& g = d_.grid;
  std::uint32_t num_groups = std::uint32_t(groups_.size());
  for (std::uint32_t i = 0; i < num_threads_; ++i) {
    FiberState& f = fibers_[i];
    ThreadCtx& c = f.tctx;
    std::uint32_t lx = i % t.x, ly = (i / t.x) % t.y, lz = i / (t.x * t.y);
    std::uint32_t pos[3] = {lx, ly, lz}, tsz[3] = {t.x, t.y, t.z}, gsz[3] = {g.x, g.y, g.z};
    for (int k = 0; k < 3; ++k) {
      c.thread_position_in_threadgroup[k] = pos[k];
      c.threadgroup_position_in_grid[k] = tg[k];
      c.threads_per_threadgroup[k] = tsz[k];
      c.threadgroups_per_grid[k] = gsz[k];
      c.threads_per_grid[k] = gsz[k] * tsz[k];
      c.thread_position_in_grid[k] = tg[k] * tsz[k] + pos[k];
    }
    c.thread_index_in_threadgroup = i;
    c.thread_index_in_simdgroup = i % SIMD_WIDTH;
    c.simdgroup_index_in_threadgroup = i / SIMD_WIDTH;
    c.simdgroups_per_threadgroup = num_groups;
    c.buffers = d_.buffers->data();
    c.threadgroup_args = tg_args_.data();
    f.index = i;
    f.lane = i % SIMD_WIDTH;
    f.group = i / SIMD_WIDTH;
    f.wait = Wait::ready;
    f.site = Site{};
    f.asan_fake_stack = nullptr;
#ifdef MSL_SIM_ASAN
    __asan_unpoison_memory_region(f.stack->lo, f.stack->bytes);
#endif
    context_init(f.ctx, f.stack->lo, f.stack->bytes, &ThreadgroupRun::fiber_main, &f);
  }
  for (std::uint32_t gi = 0; gi < num_groups; ++gi) {
    SimdGroup& sg = groups_[gi];
    std::uint32_t n = std::min(SIMD_WIDTH, num_threads_ - gi * SIMD_WIDTH);
    sg.live = n == 32 ? 0xffffffffu : ((1u << n) - 1u);
    sg.arrived = 0;
    sg.first_lane = gi * SIMD_WIDTH;
  }
}

void ThreadgroupRun::switch_to(FiberState& f) {
  current_ = &f;
#ifdef MSL_SIM_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, f.stack->lo, f.stack->bytes);
  context_switch(sched_, f.ctx);
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
  context_switch(sched_, f.ctx);
#endif
  current_ = nullptr;
}

void ThreadgroupRun::yield() {
  FiberState& f = *current_;
#ifdef MSL_SIM_ASAN
  bool finished = f.wait == Wait::done;
  __sanitizer_start_switch_fiber(finished ? nullptr : &f.asan_fake_stack, asan_sched_bottom_,
                                 asan_sched_size_);
  context_switch(f.ctx, sched_);
  __sanitizer_finish_switch_fiber(f.asan_fake_stack, &asan_sched_bottom_, &asan_sched_size_);
#else
  context_switch(f.ctx, sched_);
#endif
  if (aborting_) throw FiberAbort{};
}

void ThreadgroupRun::fiber_main(void* arg) {
  auto& f = *static_cast<FiberState*>(arg);
  ThreadgroupRun& r = *current_run();
#ifdef MSL_SIM_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &r.asan_sched_bottom_, &r.asan_sched_size_);
#endif
  if (!r.aborting_) {
    try {
      r.d_.kernel->launch(f.tctx);
    } catch (const FiberAbort&) {
    } catch (...) {
      if (!r.error_) r.error_ = std::current_exception();
    }
  }
  f.wait = Wait::done;
  ++r.num_done_;
  if (!r.aborting_) {
    try {
      r.on_fiber_done(f);
    } catch (...) {
      if (!r.error_) r.error_ = std::current_exception();
    }
  }
  r.current_ = &f;
  try {
    r.yield();  // never resumed: the scheduler does not switch to finished fibers
  } catch (...) {
  }
  __builtin_trap();
}

void ThreadgroupRun::on_fiber_done(FiberState& f) {
  SimdGroup& g = groups_[f.group];
  g.live &= ~(1u << f.lane);
  if (g.arrived != 0 && g.arrived == g.live) try_complete_simd(g);
  if (barrier_arrived_ > 0 && barrier_arrived_ + num_done_ == num_threads_) check_barrier(nullptr);
}

void ThreadgroupRun::barrier(const Site& site) {
  FiberState& f = *current_;
  f.site = site;
  f.wait = Wait::barrier;
  ++barrier_arrived_;
  if (barrier_arrived_ + num_done_ == num_threads_) check_barrier(&site);
  yield();
}

// All threads that have not returned wait at a barrier: release them if that is legal.
void ThreadgroupRun::check_barrier(const Site* site) {
  std::vector<std::uint32_t> returned, elsewhere, here;
  const Site* first = nullptr;
  for (const FiberState& f : fibers_) {
    if (f.wait == Wait::done) {
      returned.push_back(f.index);
    } else {
      if (!first) first = &f.site;
      bool same = f.site.file == first->file && f.site.line == first->line &&
                  f.site.column == first->column;
      (same ? here : elsewhere).push_back(f.index);
    }
  }
  if (!returned.empty())
    fail(*first, "barrier divergence: threadgroup_barrier reached by " + describe_threads(here) +
                     " but " + describe_threads(returned) + " returned without reaching it");
  if (!elsewhere.empty()) {
    const FiberState& other = fibers_[elsewhere.front()];
    fail(*first, "barrier divergence: " + describe_threads(here) + " wait at " + where(*first) +
                     " but " + describe_threads(elsewhere) + " wait at a different barrier at " +
                     where(other.site));
  }
  (void)site;
  for (FiberState& f : fibers_)
    if (f.wait == Wait::barrier) f.wait = Wait::ready;
  barrier_arrived_ = 0;
}

const SimdSnapshot& ThreadgroupRun::collective(const Site& site, const void* value,
                                               std::size_t bytes, std::uint32_t arg,
                                               bool arg_uniform) {
  FiberState& f = *current_;
  SimdGroup& g = groups_[f.group];
  if (bytes) std::memcpy(g.pending[f.lane], value, bytes);
  g.args[f.lane] = arg;
  g.bytes = std::uint32_t(bytes);
  g.arg_uniform = arg_uniform;
  g.arrived |= 1u << f.lane;
  f.site = site;
  f.wait = Wait::simd;
  if (g.arrived == g.live) try_complete_simd(g);
  yield();
  return g.snap;
}

void ThreadgroupRun::try_complete_simd(SimdGroup& g) {
  const FiberState* first = nullptr;
  std::vector<std::uint32_t> same, other;
  for (std::uint32_t l = 0; l < SIMD_WIDTH; ++l) {
    if (!(g.arrived >> l & 1u)) continue;
    const FiberState& f = fibers_[g.first_lane + l];
    if (!first) first = &f;
    bool eq = f.site.file == first->site.file && f.site.line == first->site.line &&
              f.site.column == first->site.column;
    (eq ? same : other).push_back(f.index);
  }
  if (!other.empty()) {
    const FiberState& o = fibers_[other.front()];
    fail(first->site, std::string("divergent SIMD collectives in simdgroup ") +
                          std::to_string(first->group) + ": " + describe_threads(same) + " in " +
                          first->site.what + " at " + where(first->site) + ", " +
                          describe_threads(other) + " in " + o.site.what + " at " + where(o.site));
  }
  if (g.arg_uniform) {
    std::uint32_t l0 = std::uint32_t(__builtin_ctz(g.arrived));
    for (std::uint32_t l = l0 + 1; l < SIMD_WIDTH; ++l)
      if ((g.arrived >> l & 1u) && g.args[l] != g.args[l0])
        fail(first->site, std::string("non-uniform argument to ") + first->site.what +
                              " in simdgroup " + std::to_string(first->group) + ": lane " +
                              std::to_string(l0) + " passes " + std::to_string(g.args[l0]) +
                              ", lane " + std::to_string(l) + " passes " +
                              std::to_string(g.args[l]));
  }
  g.snap.active = g.arrived;
  for (std::uint32_t l = 0; l < SIMD_WIDTH; ++l) {
    if (!(g.arrived >> l & 1u)) continue;
    g.snap.args[l] = g.args[l];
    if (g.bytes) std::memcpy(g.snap.values[l], g.pending[l], g.bytes);
    fibers_[g.first_lane + l].wait = Wait::ready;
  }
  g.arrived = 0;
}

std::string ThreadgroupRun::describe_threads(const std::vector<std::uint32_t>& ids) const {
  std::ostringstream os;
  os << (ids.size() == 1 ? "thread " : "threads ");
  for (std::size_t i = 0; i < ids.size();) {
    std::size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    if (i) os << ",";
    os << ids[i];
    if (j > i) os << "-" << ids[j];
    i = j + 1;
  }
  return os.str();
}

std::string ThreadgroupRun::deadlock_report() const {
  // Group waiting threads by (kind, site) in first-seen order.
  std::vector<std::pair<const FiberState*, std::vector<std::uint32_t>>> sites;
  std::vector<std::uint32_t> returned;
  for (const FiberState& f : fibers_) {
    if (f.wait == Wait::done) {
      returned.push_back(f.index);
      continue;
    }
    auto it = std::find_if(sites.begin(), sites.end(), [&](const auto& s) {
      return s.first->site.file == f.site.file && s.first->site.line == f.site.line &&
             s.first->site.column == f.site.column;
    });
    if (it == sites.end())
      sites.push_back({&f, {f.index}});
    else
      it->second.push_back(f.index);
  }
  std::string msg = "deadlock: no thread can proceed; wait sites:";
  for (const auto& [f, ids] : sites)
    msg += "\n  " + describe_threads(ids) + " in " + f->site.what + " at " + where(f->site);
  if (!returned.empty()) msg += "\n  " + describe_threads(returned) + " returned";
  return msg;
}

void ThreadgroupRun::schedule() {
  std::uint32_t n = num_threads_;
  for (std::uint32_t i = 0; i < n; ++i)
    order_[i] = d_.options.order == ThreadOrder::reverse ? n - 1 - i : i;
  while (num_done_ < n) {
    if (d_.options.order == ThreadOrder::random) std::shuffle(order_.begin(), order_.end(), rng_);
    bool progressed = false;
    for (std::uint32_t idx : order_) {
      FiberState& f = fibers_[idx];
      if (f.wait != Wait::ready) continue;
      switch_to(f);
      progressed = true;
      if (error_) return;
    }
    if (!progressed && num_done_ < n) {
      const FiberState* any = nullptr;
      for (const FiberState& f : fibers_)
        if (f.wait != Wait::done) {
          any = &f;
          break;
        }
      try {
        fail(any->site, deadlock_report());
      } catch (...) {
        error_ = std::current_exception();
      }
      return;
    }
  }
}

void ThreadgroupRun::abort_all() {
  aborting_ = true;
  for (FiberState& f : fibers_)
    if (f.wait != Wait::done) switch_to(f);
}

void ThreadgroupRun::run(const std::uint32_t tg[3]) {
  std::copy(tg, tg + 3, tg_);
  num_done_ = 0;
  barrier_arrived_ = 0;
  aborting_ = false;
  error_ = nullptr;
  rng_.seed(d_.options.seed * 0x9e3779b97f4a7c15ull + (std::uint64_t(tg[2]) << 42) +
            (std::uint64_t(tg[1]) << 21) + tg[0]);
  reset_memory();
  init_fibers(tg);
  ThreadgroupRun*& cur = current_run();
  ThreadgroupRun* saved = cur;
  cur = this;
  schedule();
  if (error_) abort_all();
  cur = saved;
  if (error_) std::rethrow_exception(error_);
}

// ---- entry points used by the shim (they find the run of the calling OS thread) ----

static ThreadgroupRun& run_or_throw(const Site& site) {
  ThreadgroupRun* r = current_run();
  if (!r)
    throw std::logic_error(std::string("[msl_sim] ") + site.what +
                           " called outside a simulated dispatch");
  return *r;
}
void threadgroup_barrier(const Site& site) { run_or_throw(site).barrier(site); }
const SimdSnapshot& simd_collective(const Site& site, const void* value, std::size_t bytes,
                                    std::uint32_t arg, bool arg_uniform) {
  return run_or_throw(site).collective(site, value, bytes, arg, arg_uniform);
}
std::uint32_t current_lane() { return run_or_throw(Site{}).lane(); }
void* threadgroup_var(const Site& site, std::size_t bytes, std::size_t align, PoisonKind poison) {
  return run_or_throw(site).tg_var(site, bytes, align, poison);
}
void fail(const Site& site, const std::string& message) { run_or_throw(site).fail(site, message); }

}  // namespace msl_sim::detail
