// Fiber stacks: mmap + a PROT_NONE guard page at the low end (stacks grow down).
#include <sys/mman.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include "fiber.h"

namespace msl_sim::detail {

FiberStack& FiberStack::operator=(FiberStack&& o) noexcept {
  std::swap(map, o.map);
  std::swap(map_bytes, o.map_bytes);
  std::swap(lo, o.lo);
  std::swap(bytes, o.bytes);
  return *this;
}

FiberStack::~FiberStack() {
  if (map) munmap(map, map_bytes);
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
  if (map) munmap(map, map_bytes);
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
