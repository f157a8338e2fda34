// MSL vector types: vec<T, N> with Metal sizes and alignment (float3 = 16 bytes), packed_vec<T, N>
// without padding, element-wise operators (hidden friends, so swizzles and scalars convert), and
// swizzle proxies (.xy, .zyx, ...; full list with MSL_SIM_ALL_SWIZZLES).
#pragma once
#pragma GCC system_header
#include "types.h"

namespace metal {

template <class T, int N>
struct vec;

// A swizzle proxy overlays the vector storage (N elements) and names components I...
template <class T, class V, int N, int... I>
struct swizzle {
  T s_[N];
  operator V() const { return V(s_[I]...); }
  swizzle& operator=(const V& v) {
    int k = 0;
    ((s_[I] = v[k++]), ...);
    return *this;
  }
  swizzle& operator=(const swizzle& o) { return *this = V(o); }
  swizzle& operator+=(const V& v) { return *this = V(*this) + v; }
  swizzle& operator-=(const V& v) { return *this = V(*this) - v; }
  swizzle& operator*=(const V& v) { return *this = V(*this) * v; }
  swizzle& operator/=(const V& v) { return *this = V(*this) / v; }
};

template <class T, int N>
struct vec_storage;

#include "swizzles.h"

template <class T>
struct vec_storage<T, 2> {
  union {
    T s_[2];
    struct {
      T x, y;
    };
    struct {
      T r, g;
    };
    MSL_SIM_SWIZZLES_2(T)
  };
};
template <class T>
struct vec_storage<T, 3> {
  union {
    T s_[3];
    struct {
      T x, y, z;
    };
    struct {
      T r, g, b;
    };
    MSL_SIM_SWIZZLES_3(T)
  };
};
template <class T>
struct vec_storage<T, 4> {
  union {
    T s_[4];
    struct {
      T x, y, z, w;
    };
    struct {
      T r, g, b, a;
    };
    MSL_SIM_SWIZZLES_4(T)
  };
};

namespace detail {
template <class A>
struct num_components {
  static constexpr int value = 1;
};
template <class T, int N>
struct num_components<vec<T, N>> {
  static constexpr int value = N;
};
template <class T, class V, int N, int... I>
struct num_components<swizzle<T, V, N, I...>> {
  static constexpr int value = sizeof...(I);
};
template <class A>
inline constexpr int num_components_v = num_components<std::remove_cvref_t<A>>::value;

template <class T, class A>
void put(T* out, int& k, const A& a) {
  constexpr int M = num_components_v<A>;
  if constexpr (M == 1) {
    out[k++] = static_cast<T>(a);
  } else {
    using V = decltype(+a);  // swizzle -> vec via unary +
    V v = +a;
    for (int i = 0; i < M; ++i) out[k++] = static_cast<T>(v[i]);
  }
}
constexpr std::size_t vec_align(std::size_t elem, int n) { return elem * (n == 3 ? 4 : n); }
}  // namespace detail

template <class T, int N>
struct alignas(detail::vec_align(sizeof(T), N)) vec : vec_storage<T, N> {
  using value_type = T;
  static constexpr int size = N;

  vec() {
    for (int i = 0; i < N; ++i) this->s_[i] = T(0);
  }
  vec(const vec& o) = default;
  vec& operator=(const vec& o) {
    std::memcpy(this->s_, o.s_, sizeof(T) * N);
    return *this;
  }
  vec(T v) {
    for (int i = 0; i < N; ++i) this->s_[i] = v;
  }  // scalar broadcast (implicit in MSL)
  template <class A0, class A1, class... A>
    requires(detail::num_components_v<A0> + detail::num_components_v<A1> +
                 (0 + ... + detail::num_components_v<A>) ==
             N)
  vec(const A0& a0, const A1& a1, const A&... a) {
    int k = 0;
    detail::put(this->s_, k, a0);
    detail::put(this->s_, k, a1);
    (detail::put(this->s_, k, a), ...);
  }
  template <class U>
    requires(!std::is_same_v<U, T>)
  explicit vec(const vec<U, N>& o) {
    for (int i = 0; i < N; ++i) this->s_[i] = static_cast<T>(o[i]);
  }

  T& operator[](int i) { return this->s_[i]; }
  const T& operator[](int i) const { return this->s_[i]; }

  friend vec operator+(const vec& a) { return a; }
  friend vec operator-(const vec& a) {
    vec r;
    for (int i = 0; i < N; ++i) r[i] = -a[i];
    return r;
  }
  friend vec operator~(const vec& a) {
    vec r;
    for (int i = 0; i < N; ++i) r[i] = ~a[i];
    return r;
  }
  friend vec<bool, N> operator!(const vec& a) {
    vec<bool, N> r;
    for (int i = 0; i < N; ++i) r[i] = !a[i];
    return r;
  }

#define MSL_SIM_VEC_BINOP(op)                                       \
  friend vec operator op(const vec& a, const vec& b) {              \
    vec r;                                                          \
    for (int i = 0; i < N; ++i) r[i] = T(a[i] op b[i]);             \
    return r;                                                       \
  }                                                                 \
  friend vec operator op(const vec& a, T b) { return a op vec(b); } \
  friend vec operator op(T a, const vec& b) { return vec(a) op b; } \
  vec& operator op##=(const vec & b) { return *this = *this op b; }
  MSL_SIM_VEC_BINOP(+)
  MSL_SIM_VEC_BINOP(-)
  MSL_SIM_VEC_BINOP(*)
  MSL_SIM_VEC_BINOP(/)
  MSL_SIM_VEC_BINOP(%)
  MSL_SIM_VEC_BINOP(&)
  MSL_SIM_VEC_BINOP(|)
  MSL_SIM_VEC_BINOP(^)
  MSL_SIM_VEC_BINOP(<<)
  MSL_SIM_VEC_BINOP(>>)
#undef MSL_SIM_VEC_BINOP

#define MSL_SIM_VEC_CMP(op)                                                   \
  friend vec<bool, N> operator op(const vec & a, const vec & b) {             \
    vec<bool, N> r;                                                           \
    for (int i = 0; i < N; ++i) r[i] = a[i] op b[i];                          \
    return r;                                                                 \
  }                                                                           \
  friend vec<bool, N> operator op(const vec & a, T b) { return a op vec(b); } \
  friend vec<bool, N> operator op(T a, const vec & b) { return vec(a) op b; }
  MSL_SIM_VEC_CMP(==)
  MSL_SIM_VEC_CMP(!=)
  MSL_SIM_VEC_CMP(<)
  MSL_SIM_VEC_CMP(<=)
  MSL_SIM_VEC_CMP(>)
  MSL_SIM_VEC_CMP(>=)
  MSL_SIM_VEC_CMP(&&)
  MSL_SIM_VEC_CMP(||)
#undef MSL_SIM_VEC_CMP
};

// packed_vec: no padding, element alignment (packed_float3 is 12 bytes). Converts to/from vec.
template <class T, int N>
struct packed_vec {
  T s_[N];
  packed_vec() {
    for (int i = 0; i < N; ++i) s_[i] = T(0);
  }
  packed_vec(const vec<T, N>& v) {
    for (int i = 0; i < N; ++i) s_[i] = v[i];
  }
  template <class... A>
    requires(sizeof...(A) == N)
  packed_vec(A... a) : s_{static_cast<T>(a)...} {}
  operator vec<T, N>() const {
    vec<T, N> r;
    for (int i = 0; i < N; ++i) r[i] = s_[i];
    return r;
  }
  T& operator[](int i) { return s_[i]; }
  const T& operator[](int i) const { return s_[i]; }
  friend vec<T, N> operator+(const packed_vec& a) { return vec<T, N>(a); }
};

#define MSL_SIM_VEC_NAMES(T, name)           \
  typedef vec<T, 2> name##2;                 \
  typedef vec<T, 3> name##3;                 \
  typedef vec<T, 4> name##4;                 \
  typedef packed_vec<T, 2> packed_##name##2; \
  typedef packed_vec<T, 3> packed_##name##3; \
  typedef packed_vec<T, 4> packed_##name##4;
MSL_SIM_VEC_NAMES(float, float)
MSL_SIM_VEC_NAMES(half, half)
MSL_SIM_VEC_NAMES(bfloat, bfloat)
MSL_SIM_VEC_NAMES(int, int)
MSL_SIM_VEC_NAMES(uint, uint)
MSL_SIM_VEC_NAMES(short, short)
MSL_SIM_VEC_NAMES(ushort, ushort)
MSL_SIM_VEC_NAMES(char, char)
MSL_SIM_VEC_NAMES(uchar, uchar)
MSL_SIM_VEC_NAMES(long, long)
MSL_SIM_VEC_NAMES(ulong, ulong)
MSL_SIM_VEC_NAMES(bool, bool)
#undef MSL_SIM_VEC_NAMES

static_assert(sizeof(float3) == 16 && alignof(float3) == 16, "float3 must be 16 bytes");
static_assert(sizeof(packed_float3) == 12, "packed_float3 must be 12 bytes");
static_assert(sizeof(half4) == 8 && sizeof(half3) == 8 && sizeof(float2) == 8);

template <class V>
struct vec_traits {
  using scalar = V;
  static constexpr int size = 1;
};
template <class T, int N>
struct vec_traits<vec<T, N>> {
  using scalar = T;
  static constexpr int size = N;
};

}  // namespace metal
