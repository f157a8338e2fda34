// Helpers for generated launchers: bind [[buffer(i)]], [[threadgroup(i)]] and built-in
// attributes to kernel parameters, taking parameter types from the kernel's function type.
#pragma once
#include <tuple>
#include <type_traits>
#include "runtime.h"

namespace msl_sim::launch {

template <class F>
struct fn_params;
template <class R, class... A>
struct fn_params<R (*)(A...)> {
  using type = std::tuple<A...>;
};
template <class F, std::size_t I>
using param_t = std::tuple_element_t<I, typename fn_params<F>::type>;

// A buffer binds to a pointer parameter, or to a reference (`constant Args& args [[buffer(0)]]`).
template <class P>
P buffer(const ThreadCtx& c, unsigned i) {
  void* p = c.buffers[i];
  if constexpr (std::is_pointer_v<P>) {
    return (P)p;  // a C-style cast: may enter an address space (the strict mode)
  } else if constexpr (std::is_reference_v<P>) {
    return *(std::remove_reference_t<P>*)p;
  } else {
    return *reinterpret_cast<const P*>(p);  // by value: copy of the bytes
  }
}

template <class P>
P tg_arg(const ThreadCtx& c, unsigned i) {
  static_assert(std::is_pointer_v<P>, "[msl_sim] [[threadgroup(i)]] parameters must be pointers");
  return (P)c.threadgroup_args[i];
}

// Built-in values: scalar from the first component, vectors from the first N components.
template <class P>
P builtin(const std::uint32_t* v) {
  using T = std::remove_cvref_t<P>;
  if constexpr (std::is_arithmetic_v<T>) {
    return T(v[0]);
  } else {
    using S = typename T::value_type;
    if constexpr (T::size == 2)
      return T(S(v[0]), S(v[1]));
    else if constexpr (T::size == 3)
      return T(S(v[0]), S(v[1]), S(v[2]));
    else
      static_assert(T::size == 2, "[msl_sim] unsupported built-in parameter type");
  }
}
template <class P>
P builtin_scalar(std::uint32_t v) {
  std::uint32_t a[3] = {v, 0, 0};
  return builtin<P>(a);
}

}  // namespace msl_sim::launch
