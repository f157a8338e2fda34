// Barriers and SIMD-group functions. Each collective is a rendezvous of the live lanes of the
// caller's SIMD group at one call site (msl_sim::detail::simd_collective); results are computed
// by every lane from the same snapshot, in lane order.
#pragma once
#pragma GCC system_header
#include <source_location>
#include "../runtime.h"
#include "math.h"

namespace metal {

enum class mem_flags : unsigned {
  mem_none = 0,
  mem_device = 1,
  mem_threadgroup = 2,
  mem_texture = 4,
  mem_threadgroup_imageblock = 8,
  mem_object_data = 16,
};
constexpr mem_flags operator|(mem_flags a, mem_flags b) {
  return mem_flags(unsigned(a) | unsigned(b));
}

using msl_sim::SimdSnapshot;
using msl_sim::Site;
using SrcLoc = std::source_location;

inline void threadgroup_barrier(mem_flags, SrcLoc loc = SrcLoc::current()) {
  msl_sim::detail::threadgroup_barrier(Site::here("threadgroup_barrier", loc));
}
inline void simdgroup_barrier(mem_flags, SrcLoc loc = SrcLoc::current()) {
  msl_sim::detail::simd_collective(Site::here("simdgroup_barrier", loc), nullptr, 0, 0, false);
}

namespace detail {
template <class T>
const SimdSnapshot& collect(const char* what, const T& v, SrcLoc loc, std::uint32_t arg = 0,
                            bool uniform = false) {
  static_assert(sizeof(T) <= SimdSnapshot::MAX_VALUE_BYTES, "[msl_sim] SIMD value too large");
  return msl_sim::detail::simd_collective(Site::here(what, loc), &v, sizeof(T), arg, uniform);
}
template <class T>
T lane_value(const SimdSnapshot& s, unsigned lane) {
  T v;
  std::memcpy(static_cast<void*>(&v), s.values[lane], sizeof(T));
  return v;
}
// Value of lane src for the caller; reading an inactive lane is a kernel bug.
template <class T>
T read_lane(const SimdSnapshot& s, unsigned src, const char* what, SrcLoc loc) {
  if (src >= 32 || !(s.active >> src & 1u))
    msl_sim::detail::fail(Site::here(what, loc),
                          std::string(what) + " reads inactive lane " + std::to_string(src) +
                              " (lane " + std::to_string(msl_sim::detail::current_lane()) + ")");
  return lane_value<T>(s, src);
}
template <class T, class F>
T reduce(const SimdSnapshot& s, unsigned upto, bool inclusive, T init, F f) {
  T acc = init;
  for (unsigned l = 0; l < 32; ++l) {
    if (!(s.active >> l & 1u)) continue;
    if (l > upto || (l == upto && !inclusive)) break;
    acc = f(acc, lane_value<T>(s, l));
  }
  return acc;
}
template <class T>
T lowest() {
  if constexpr (std::is_integral_v<T>)
    return std::numeric_limits<T>::lowest();
  else
    return T(-INFINITY);
}
template <class T>
T highest() {
  if constexpr (std::is_integral_v<T>)
    return std::numeric_limits<T>::max();
  else
    return T(INFINITY);
}
}  // namespace detail

#define MSL_SIM_SIMD_REDUCE(name, init, expr)                                   \
  template <class T>                                                            \
  T name(T v, SrcLoc loc = SrcLoc::current()) {                                 \
    const SimdSnapshot& s = detail::collect(#name, v, loc);                     \
    using S = typename vec_traits<T>::scalar;                                   \
    return detail::reduce(s, 31, true, T(init), [](T a, T b) { return expr; }); \
  }
MSL_SIM_SIMD_REDUCE(simd_sum, S(0), a + b)
MSL_SIM_SIMD_REDUCE(simd_product, S(1), a* b)
MSL_SIM_SIMD_REDUCE(simd_max, detail::lowest<S>(), max(a, b))
MSL_SIM_SIMD_REDUCE(simd_min, detail::highest<S>(), min(a, b))
MSL_SIM_SIMD_REDUCE(simd_and, S(~S(0)), a& b)
MSL_SIM_SIMD_REDUCE(simd_or, S(0), a | b)
MSL_SIM_SIMD_REDUCE(simd_xor, S(0), a ^ b)
#undef MSL_SIM_SIMD_REDUCE

#define MSL_SIM_SIMD_PREFIX(name, init, inclusive, expr)                          \
  template <class T>                                                              \
  T name(T v, SrcLoc loc = SrcLoc::current()) {                                   \
    const SimdSnapshot& s = detail::collect(#name, v, loc);                       \
    using S = typename vec_traits<T>::scalar;                                     \
    return detail::reduce(s, msl_sim::detail::current_lane(), inclusive, T(init), \
                          [](T a, T b) { return expr; });                         \
  }
MSL_SIM_SIMD_PREFIX(simd_prefix_inclusive_sum, S(0), true, a + b)
MSL_SIM_SIMD_PREFIX(simd_prefix_exclusive_sum, S(0), false, a + b)
MSL_SIM_SIMD_PREFIX(simd_prefix_inclusive_product, S(1), true, a* b)
MSL_SIM_SIMD_PREFIX(simd_prefix_exclusive_product, S(1), false, a* b)
#undef MSL_SIM_SIMD_PREFIX

template <class T>
T simd_shuffle(T v, ushort lane, SrcLoc loc = SrcLoc::current()) {
  const SimdSnapshot& s = detail::collect("simd_shuffle", v, loc, lane, false);
  return detail::read_lane<T>(s, lane, "simd_shuffle", loc);
}
template <class T>
T simd_shuffle_xor(T v, ushort mask, SrcLoc loc = SrcLoc::current()) {
  const SimdSnapshot& s = detail::collect("simd_shuffle_xor", v, loc, mask, true);
  return detail::read_lane<T>(s, msl_sim::detail::current_lane() ^ mask, "simd_shuffle_xor", loc);
}
template <class T>
T simd_shuffle_down(T v, ushort delta, SrcLoc loc = SrcLoc::current()) {
  const SimdSnapshot& s = detail::collect("simd_shuffle_down", v, loc, delta, true);
  unsigned src = msl_sim::detail::current_lane() + delta;
  return src >= 32 ? v : detail::read_lane<T>(s, src, "simd_shuffle_down", loc);
}
template <class T>
T simd_shuffle_up(T v, ushort delta, SrcLoc loc = SrcLoc::current()) {
  const SimdSnapshot& s = detail::collect("simd_shuffle_up", v, loc, delta, true);
  unsigned lane = msl_sim::detail::current_lane();
  return lane < delta ? v : detail::read_lane<T>(s, lane - delta, "simd_shuffle_up", loc);
}
template <class T>
T simd_shuffle_rotate_down(T v, ushort delta, SrcLoc loc = SrcLoc::current()) {
  const SimdSnapshot& s = detail::collect("simd_shuffle_rotate_down", v, loc, delta, true);
  unsigned src = (msl_sim::detail::current_lane() + delta) % 32;
  return detail::read_lane<T>(s, src, "simd_shuffle_rotate_down", loc);
}
template <class T>
T simd_shuffle_rotate_up(T v, ushort delta, SrcLoc loc = SrcLoc::current()) {
  const SimdSnapshot& s = detail::collect("simd_shuffle_rotate_up", v, loc, delta, true);
  unsigned src = (msl_sim::detail::current_lane() + 32 - delta % 32) % 32;
  return detail::read_lane<T>(s, src, "simd_shuffle_rotate_up", loc);
}
template <class T>
T simd_broadcast(T v, ushort lane, SrcLoc loc = SrcLoc::current()) {
  const SimdSnapshot& s = detail::collect("simd_broadcast", v, loc, lane, true);
  return detail::read_lane<T>(s, lane, "simd_broadcast", loc);
}
template <class T>
T simd_broadcast_first(T v, SrcLoc loc = SrcLoc::current()) {
  const SimdSnapshot& s = detail::collect("simd_broadcast_first", v, loc);
  return detail::lane_value<T>(s, unsigned(__builtin_ctz(s.active)));
}

// simd_vote: a 64-bit lane mask (only the low 32 bits are used; SIMD width is 32).
struct simd_vote {
  typedef ulong vote_t;
  vote_t v = 0;
  explicit constexpr simd_vote(vote_t x = 0) : v(x) {}
  explicit constexpr operator vote_t() const { return v; }
  constexpr bool all() const { return v == 0xffffffffull; }
  constexpr bool any() const { return v != 0; }
};
inline simd_vote simd_ballot(bool b, SrcLoc loc = SrcLoc::current()) {
  const SimdSnapshot& s = detail::collect("simd_ballot", b, loc);
  ulong m = 0;
  for (unsigned l = 0; l < 32; ++l)
    if ((s.active >> l & 1u) && detail::lane_value<bool>(s, l)) m |= 1ull << l;
  return simd_vote(m);
}
inline simd_vote simd_active_threads_mask(SrcLoc loc = SrcLoc::current()) {
  const SimdSnapshot& s = detail::collect("simd_active_threads_mask", true, loc);
  return simd_vote(s.active);
}
inline bool simd_all(bool b, SrcLoc loc = SrcLoc::current()) {
  const SimdSnapshot& s = detail::collect("simd_all", b, loc);
  return detail::reduce(s, 31, true, true, [](bool a, bool x) { return a && x; });
}
inline bool simd_any(bool b, SrcLoc loc = SrcLoc::current()) {
  const SimdSnapshot& s = detail::collect("simd_any", b, loc);
  return detail::reduce(s, 31, true, false, [](bool a, bool x) { return a || x; });
}
inline bool simd_is_first(SrcLoc loc = SrcLoc::current()) {
  const SimdSnapshot& s = detail::collect("simd_is_first", true, loc);
  return unsigned(__builtin_ctz(s.active)) == msl_sim::detail::current_lane();
}

// Quad-group functions: lanes 4q..4q+3 of the SIMD group.
template <class T>
T quad_sum(T v, SrcLoc loc = SrcLoc::current()) {
  const SimdSnapshot& s = detail::collect("quad_sum", v, loc);
  unsigned q = msl_sim::detail::current_lane() & ~3u;
  T acc = T(0);
  for (unsigned l = q; l < q + 4; ++l)
    if (s.active >> l & 1u) acc = acc + detail::lane_value<T>(s, l);
  return acc;
}
template <class T>
T quad_shuffle_xor(T v, ushort mask, SrcLoc loc = SrcLoc::current()) {
  const SimdSnapshot& s = detail::collect("quad_shuffle_xor", v, loc, mask, true);
  return detail::read_lane<T>(s, msl_sim::detail::current_lane() ^ (mask & 3u), "quad_shuffle_xor",
                              loc);
}
template <class T>
T quad_broadcast(T v, ushort lane, SrcLoc loc = SrcLoc::current()) {
  const SimdSnapshot& s = detail::collect("quad_broadcast", v, loc, lane, true);
  return detail::read_lane<T>(s, (msl_sim::detail::current_lane() & ~3u) + (lane & 3u),
                              "quad_broadcast", loc);
}

}  // namespace metal
