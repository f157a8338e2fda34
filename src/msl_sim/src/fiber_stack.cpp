// Fiber stacks: mmap + a PROT_NONE guard page at the low end (stacks grow down).
// Under ASan a fiber's frames leave poisoned shadow (stack redzones) in the mapping; it is cleared
// before every munmap, or the kernel may hand the same pages to later allocations (e.g. a new
// worker thread's stack) that ASan would then report as out-of-bounds.
#include <sys/mman.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include "fiber.h"

#if defined(__SANITIZE_ADDRESS__)
#define MSL_SIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MSL_SIM_ASAN 1
#endif
#endif
#ifdef MSL_SIM_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace msl_sim::detail {

namespace {
// Clears ASan's poisoning of [map, map + bytes), then unmaps it.
void unmap_stack(void* map, std::size_t bytes) {
#ifdef MSL_SIM_ASAN
  __asan_unpoison_memory_region(map, bytes);
#endif
  munmap(map, bytes);
}
}  // namespace

FiberStack& FiberStack::operator=(FiberStack&& o) noexcept {
  std::swap(map, o.map);
  std::swap(map_bytes, o.map_bytes);
  std::swap(lo, o.lo);
  std::swap(bytes, o.bytes);
  return *this;
}

FiberStack::~FiberStack() {
  if (map) unmap_stack(map, map_bytes);
}

void FiberStack::allocate(std::size_t usable_bytes) {
  std::size_t page = std::size_t(sysconf(_SC_PAGESIZE));
  std::size_t usable = (usable_bytes + page - 1) / page * page;
  std::size_t total = usable + page;
  void* m = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED)
    throw std::runtime_error("[msl_sim] mmap of a " + std::to_string(total) +
                             "-byte fiber stack failed: " + std::strerror(errno));
  if (mprotect(m, page, PROT_NONE) != 0) {
    munmap(m, total);
    throw std::runtime_error(std::string("[msl_sim] mprotect of a stack guard page failed: ") +
                             std::strerror(errno));
  }
  if (map) unmap_stack(map, map_bytes);
  map = m;
  map_bytes = total;
  lo = static_cast<char*>(m) + page;
  bytes = usable;
}

bool FiberStack::guard_contains(const void* addr) const {
  auto a = reinterpret_cast<const char*>(addr);
  auto g = static_cast<const char*>(map);
  return map && a >= g && a < static_cast<const char*>(lo);
}

}  // namespace msl_sim::detail
