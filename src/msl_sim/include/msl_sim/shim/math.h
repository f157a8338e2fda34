// MSL math: scalar overloads for float/half (half computes in float), element-wise vector
// templates, geometric functions, select, as_type, and the precise:: / fast:: namespaces.
#pragma once
#pragma GCC system_header
#include <bit>
#include <cmath>
#include <cstdlib>
#include "vec.h"

namespace metal {

#define MSL_SIM_UNARY(name, expr)                  \
  inline float name(float x) { return expr; }      \
  inline half name(half h) {                       \
    float x = float(h);                            \
    return half(expr);                             \
  }                                                \
  template <class T, int N>                        \
  vec<T, N> name(const vec<T, N>& v) {             \
    vec<T, N> r;                                   \
    for (int i = 0; i < N; ++i) r[i] = name(v[i]); \
    return r;                                      \
  }
// clang-format off: an X-macro table, one entry per math function (clang-format does not
// converge on it).
#define MSL_SIM_MATH_UNARY_LIST(X)                                                         \
  X(exp, std::exp(x)) X(exp2, std::exp2(x)) X(exp10, std::pow(10.0f, x))                   \
  X(log, std::log(x)) X(log2, std::log2(x)) X(log10, std::log10(x))                        \
  X(sqrt, std::sqrt(x)) X(rsqrt, 1.0f / std::sqrt(x)) X(fabs, std::fabs(x))                \
  X(floor, std::floor(x)) X(ceil, std::ceil(x)) X(round, std::round(x))                    \
  X(trunc, std::trunc(x)) X(rint, std::nearbyint(x)) X(fract, x - std::floor(x))           \
  X(sin, std::sin(x)) X(cos, std::cos(x)) X(tan, std::tan(x)) X(tanh, std::tanh(x))        \
  X(sinh, std::sinh(x)) X(cosh, std::cosh(x)) X(asin, std::asin(x))                        \
  X(acos, std::acos(x)) X(atan, std::atan(x)) X(erf, std::erf(x))                          \
  X(sign, x > 0 ? 1.0f : (x < 0 ? -1.0f : 0.0f)) X(saturate, std::fmin(std::fmax(x, 0.0f), 1.0f))
// clang-format on
MSL_SIM_MATH_UNARY_LIST(MSL_SIM_UNARY)

#define MSL_SIM_BINARY(name, expr)                         \
  inline float name(float x, float y) { return expr; }     \
  inline half name(half hx, half hy) {                     \
    float x = float(hx), y = float(hy);                    \
    return half(expr);                                     \
  }                                                        \
  template <class T, int N>                                \
  vec<T, N> name(const vec<T, N>& a, const vec<T, N>& b) { \
    vec<T, N> r;                                           \
    for (int i = 0; i < N; ++i) r[i] = name(a[i], b[i]);   \
    return r;                                              \
  }                                                        \
  template <class T, int N>                                \
  vec<T, N> name(const vec<T, N>& a, T b) {                \
    return name(a, vec<T, N>(b));                          \
  }
// clang-format off: an X-macro table, one entry per math function (clang-format does not
// converge on it).
#define MSL_SIM_MATH_BINARY_LIST(X)                                                        \
  X(pow, std::pow(x, y)) X(powr, std::pow(x, y)) X(fmod, std::fmod(x, y))                  \
  X(atan2, std::atan2(x, y)) X(copysign, std::copysign(x, y)) X(fmax, std::fmax(x, y))     \
  X(fmin, std::fmin(x, y)) X(step, y < x ? 0.0f : 1.0f)
// clang-format on
MSL_SIM_MATH_BINARY_LIST(MSL_SIM_BINARY)

// max/min/clamp/abs for every arithmetic scalar (fmax semantics for floats: NaN loses).
template <class T>
  requires(std::is_arithmetic_v<T> || std::is_same_v<T, half>)
inline T max(T a, T b) {
  if constexpr (std::is_integral_v<T>)
    return a > b ? a : b;
  else
    return T(std::fmax(float(a), float(b)));
}
template <class T>
  requires(std::is_arithmetic_v<T> || std::is_same_v<T, half>)
inline T min(T a, T b) {
  if constexpr (std::is_integral_v<T>)
    return a < b ? a : b;
  else
    return T(std::fmin(float(a), float(b)));
}
inline float max(float a, float b) { return std::fmax(a, b); }
inline float min(float a, float b) { return std::fmin(a, b); }
inline half max(half a, half b) { return half(std::fmax(float(a), float(b))); }
inline half min(half a, half b) { return half(std::fmin(float(a), float(b))); }
template <class T>
inline T clamp(T x, T lo, T hi) {
  return min(max(x, lo), hi);
}
template <class T>
  requires(std::is_arithmetic_v<T> || std::is_same_v<T, half>)
inline T abs(T x) {
  return x < T(0) ? T(-x) : x;
}
inline float abs(float x) { return std::fabs(x); }

template <class T, int N>
vec<T, N> max(const vec<T, N>& a, const vec<T, N>& b) {
  vec<T, N> r;
  for (int i = 0; i < N; ++i) r[i] = max(a[i], b[i]);
  return r;
}
template <class T, int N>
vec<T, N> max(const vec<T, N>& a, T b) {
  return max(a, vec<T, N>(b));
}
template <class T, int N>
vec<T, N> min(const vec<T, N>& a, const vec<T, N>& b) {
  vec<T, N> r;
  for (int i = 0; i < N; ++i) r[i] = min(a[i], b[i]);
  return r;
}
template <class T, int N>
vec<T, N> min(const vec<T, N>& a, T b) {
  return min(a, vec<T, N>(b));
}
template <class T, int N>
vec<T, N> clamp(const vec<T, N>& x, const vec<T, N>& lo, const vec<T, N>& hi) {
  return min(max(x, lo), hi);
}
template <class T, int N>
vec<T, N> clamp(const vec<T, N>& x, T lo, T hi) {
  return min(max(x, lo), hi);
}
template <class T, int N>
vec<T, N> abs(const vec<T, N>& v) {
  vec<T, N> r;
  for (int i = 0; i < N; ++i) r[i] = abs(v[i]);
  return r;
}

inline float fma(float a, float b, float c) { return std::fma(a, b, c); }
inline half fma(half a, half b, half c) { return half(std::fma(float(a), float(b), float(c))); }
template <class T, int N>
vec<T, N> fma(const vec<T, N>& a, const vec<T, N>& b, const vec<T, N>& c) {
  vec<T, N> r;
  for (int i = 0; i < N; ++i) r[i] = fma(a[i], b[i], c[i]);
  return r;
}
inline float mix(float x, float y, float a) { return x + (y - x) * a; }
inline half mix(half x, half y, half a) { return half(mix(float(x), float(y), float(a))); }
template <class T, int N>
vec<T, N> mix(const vec<T, N>& x, const vec<T, N>& y, const vec<T, N>& a) {
  return x + (y - x) * a;
}
template <class T, int N>
vec<T, N> mix(const vec<T, N>& x, const vec<T, N>& y, T a) {
  return x + (y - x) * a;
}

template <class T, int N>
T dot(const vec<T, N>& a, const vec<T, N>& b) {
  T s = T(0);
  for (int i = 0; i < N; ++i) s += a[i] * b[i];
  return s;
}
template <class T, int N>
T length(const vec<T, N>& a) {
  return sqrt(dot(a, a));
}
template <class T, int N>
vec<T, N> normalize(const vec<T, N>& a) {
  return a * rsqrt(dot(a, a));
}

template <class T>
  requires(!std::is_class_v<T> || std::is_same_v<T, bfloat>)
inline T select(T a, T b, bool c) {
  return c ? b : a;
}
template <class T, int N>
vec<T, N> select(const vec<T, N>& a, const vec<T, N>& b, const vec<bool, N>& c) {
  vec<T, N> r;
  for (int i = 0; i < N; ++i) r[i] = c[i] ? b[i] : a[i];
  return r;
}
template <class T, int N>
vec<T, N> select(const vec<T, N>& a, const vec<T, N>& b, bool c) {
  return c ? b : a;
}
template <int N>
bool all(const vec<bool, N>& v) {
  for (int i = 0; i < N; ++i)
    if (!v[i]) return false;
  return true;
}
template <int N>
bool any(const vec<bool, N>& v) {
  for (int i = 0; i < N; ++i)
    if (v[i]) return true;
  return false;
}
inline bool all(bool b) { return b; }
inline bool any(bool b) { return b; }
inline bool isnan(float x) { return std::isnan(x); }
inline bool isnan(half x) { return std::isnan(float(x)); }
inline bool isinf(float x) { return std::isinf(x); }
inline bool isinf(half x) { return std::isinf(float(x)); }
inline bool isfinite(float x) { return std::isfinite(x); }
inline bool isfinite(half x) { return std::isfinite(float(x)); }
inline bool signbit(float x) { return std::signbit(x); }

// as_type<T>(x): reinterpret the bits; sizes must match exactly.
template <class To, class From>
To as_type(const From& from) {
  static_assert(sizeof(To) == sizeof(From),
                "[msl_sim] as_type: source and destination sizes differ");
  To to;
  std::memcpy(static_cast<void*>(&to), static_cast<const void*>(&from), sizeof(To));
  return to;
}

inline uint popcount(uint x) { return uint(std::popcount(x)); }
inline uint clz(uint x) { return uint(std::countl_zero(x)); }
inline uint ctz(uint x) { return uint(std::countr_zero(x)); }
inline uint mulhi(uint a, uint b) { return uint((ulong(a) * ulong(b)) >> 32); }

// Fast math is off for simulated kernels, so precise:: and fast:: are the same functions.
namespace precise {
#define MSL_SIM_FWD(name, ignored) using metal::name;
MSL_SIM_MATH_UNARY_LIST(MSL_SIM_FWD)
MSL_SIM_MATH_BINARY_LIST(MSL_SIM_FWD)
using metal::clamp;
using metal::fma;
using metal::max;
using metal::min;
using metal::mix;
}  // namespace precise
namespace fast {
MSL_SIM_MATH_UNARY_LIST(MSL_SIM_FWD)
MSL_SIM_MATH_BINARY_LIST(MSL_SIM_FWD)
using metal::clamp;
using metal::fma;
using metal::max;
using metal::min;
using metal::mix;
#undef MSL_SIM_FWD
}  // namespace fast

}  // namespace metal

// Names declared in the kernel namespace so they hide ::exp(float) and friends from <math.h>.
#define MSL_SIM_USING_ONE(name, ignored) using metal::name;
#define MSL_SIM_USING_METAL_MATH              \
  MSL_SIM_MATH_UNARY_LIST(MSL_SIM_USING_ONE)  \
  MSL_SIM_MATH_BINARY_LIST(MSL_SIM_USING_ONE) \
  using metal::max;                           \
  using metal::min;                           \
  using metal::clamp;                         \
  using metal::abs;                           \
  using metal::fma;                           \
  using metal::mix;                           \
  using metal::dot;                           \
  using metal::select;                        \
  using metal::isnan;                         \
  using metal::isinf;                         \
  using metal::isfinite;                      \
  using metal::all;                           \
  using metal::any;                           \
  using metal::signbit;
