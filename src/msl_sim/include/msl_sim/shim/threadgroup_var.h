// Runtime-allocated threadgroup variables: the source rewrite turns an in-body
// `threadgroup T x[N];` into `threadgroup T (&x)[N] = MSL_SIM_TG_VAR(T[N]);` (`threadgroup` is
// empty except in the strict address-space mode, where the variable is in address space 3).
#pragma once
#pragma GCC system_header
#include <source_location>
#include <type_traits>
#include "../runtime.h"
#include "vec.h"

namespace msl_sim::detail {

template <class T>
constexpr PoisonKind poison_kind() {
  using E = std::remove_all_extents_t<T>;
  using S = typename metal::vec_traits<E>::scalar;
  return metal::is_float_scalar_v<S> ? PoisonKind::nan_bytes : PoisonKind::cd_bytes;
}
template <class T>
T& tg_var(std::source_location loc = std::source_location::current()) {
  void* p =
      threadgroup_var(Site::here("threadgroup", loc), sizeof(T), alignof(T), poison_kind<T>());
  return *static_cast<T*>(p);
}

// T itself: lets an address space qualify an array type in a cast.
template <class T>
using tg_type = T;

}  // namespace msl_sim::detail

#if defined(MSL_SIM_STRICT_ADDRESS_SPACES)
#define MSL_SIM_TG_VAR(...) \
  (*(threadgroup ::msl_sim::detail::tg_type<__VA_ARGS__>*)&::msl_sim::detail::tg_var<__VA_ARGS__>())
#else
#define MSL_SIM_TG_VAR(...) ::msl_sim::detail::tg_var<__VA_ARGS__>()
#endif
