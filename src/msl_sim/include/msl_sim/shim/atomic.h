// MSL atomics (atomic_int, atomic_uint, atomic_float) on GCC __atomic builtins, so they are also
// correct when threadgroups run on several worker threads.
#pragma once
#pragma GCC system_header
#include "types.h"

namespace metal {

enum memory_order { memory_order_relaxed = __ATOMIC_RELAXED };

template <class T>
struct atomic {
  T v;  // the value; same size as T as in MSL
};
typedef atomic<int> atomic_int;
typedef atomic<uint> atomic_uint;
typedef atomic<float> atomic_float;
typedef atomic<bool> atomic_bool;

template <class T, class U>
void atomic_store_explicit(atomic<T>* p, U x, memory_order) {
  __atomic_store_n(&p->v, T(x), __ATOMIC_SEQ_CST);
}
template <class T>
T atomic_load_explicit(const atomic<T>* p, memory_order) {
  return __atomic_load_n(&p->v, __ATOMIC_SEQ_CST);
}
template <class T, class U>
T atomic_exchange_explicit(atomic<T>* p, U x, memory_order) {
  return __atomic_exchange_n(&p->v, T(x), __ATOMIC_SEQ_CST);
}
template <class T, class U>
bool atomic_compare_exchange_weak_explicit(atomic<T>* p, T* expected, U desired, memory_order,
                                           memory_order) {
  return __atomic_compare_exchange_n(&p->v, expected, T(desired), false, __ATOMIC_SEQ_CST,
                                     __ATOMIC_SEQ_CST);
}

namespace detail {
// Read-modify-write by compare-exchange (works for float, max/min, everything).
template <class T, class F>
T atomic_rmw(atomic<T>* p, F f) {
  T old = __atomic_load_n(&p->v, __ATOMIC_SEQ_CST);
  while (
      !__atomic_compare_exchange_n(&p->v, &old, f(old), true, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
  }
  return old;
}
}  // namespace detail

#define MSL_SIM_ATOMIC_RMW(name, expr)                                \
  template <class T, class U>                                         \
  T atomic_fetch_##name##_explicit(atomic<T>* p, U x, memory_order) { \
    T y = T(x);                                                       \
    return detail::atomic_rmw(p, [y](T a) { return T(expr); });       \
  }
MSL_SIM_ATOMIC_RMW(add, a + y)
MSL_SIM_ATOMIC_RMW(sub, a - y)
MSL_SIM_ATOMIC_RMW(max, a > y ? a : y)
MSL_SIM_ATOMIC_RMW(min, a < y ? a : y)
MSL_SIM_ATOMIC_RMW(and, a& y)
MSL_SIM_ATOMIC_RMW(or, a | y)
MSL_SIM_ATOMIC_RMW(xor, a ^ y)
#undef MSL_SIM_ATOMIC_RMW

}  // namespace metal
