// MSL scalar types for the simulator: half = _Float16, bfloat = RNE struct, Metal integer names.
#pragma once
#pragma GCC system_header
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace metal {

typedef _Float16 half;
typedef unsigned int uint;
typedef unsigned short ushort;
typedef unsigned char uchar;
typedef std::uint64_t ulong;  // 64-bit in MSL
typedef std::size_t size_t;
typedef std::ptrdiff_t ptrdiff_t;

// bfloat16: storage is the high 16 bits of a float; conversion from float rounds to nearest even.
struct bfloat {
  std::uint16_t bits = 0;
  bfloat() = default;
  static std::uint16_t from_float(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return std::uint16_t((u >> 16) | 0x40u);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return std::uint16_t(u >> 16);
  }
  bfloat(float f) : bits(from_float(f)) {}
  bfloat(double f) : bits(from_float(float(f))) {}
  bfloat(half h) : bits(from_float(float(h))) {}
  bfloat(int i) : bits(from_float(float(i))) {}
  bfloat(uint i) : bits(from_float(float(i))) {}
  operator float() const {
    std::uint32_t u = std::uint32_t(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  bfloat& operator+=(float o) { return *this = bfloat(float(*this) + o); }
  bfloat& operator-=(float o) { return *this = bfloat(float(*this) - o); }
  bfloat& operator*=(float o) { return *this = bfloat(float(*this) * o); }
  bfloat& operator/=(float o) { return *this = bfloat(float(*this) / o); }
  bfloat operator-() const {
    bfloat r;
    r.bits = std::uint16_t(bits ^ 0x8000u);
    return r;
  }
};

template <class T>
inline constexpr bool is_float_scalar_v =
    std::is_floating_point_v<T> || std::is_same_v<T, half> || std::is_same_v<T, bfloat>;

}  // namespace metal

// MSL half literals: 1.0h. Suffix without '_' is reserved in C++; gcc accepts it in a system
// header.
constexpr metal::half operator""h(long double v) { return metal::half(v); }
constexpr metal::half operator""h(unsigned long long v) { return metal::half(v); }
