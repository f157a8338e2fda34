#include "longbow/core/dtype.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <stdexcept>

namespace longbow {

namespace {
struct Info {
  const char* name;
  int block_elems;
  int block_bytes;
};
constexpr Info kInfo[] = {
    {"f32", 1, 4},
    {"f16", 1, 2},
    {"bf16", 1, 2},
    {"q8_0", QK, sizeof(BlockQ8_0)},
    {"q4_0", QK, sizeof(BlockQ4_0)},
    {"q4_1", QK, sizeof(BlockQ4_1)},
    {"i32", 1, 4},
    {"i8", 1, 1},
};
static_assert(std::size(kInfo) == NUM_DTYPES);
const Info& info(DType t) {
  auto i = static_cast<size_t>(t);
  if (i >= std::size(kInfo))
    throw std::invalid_argument("[dtype] unknown dtype code " + std::to_string(i));
  return kInfo[i];
}
}  // namespace

int dtype_block_elems(DType t) { return info(t).block_elems; }
int dtype_block_bytes(DType t) { return info(t).block_bytes; }
bool dtype_is_quantized(DType t) {
  return t == DType::Q8_0 || t == DType::Q4_0 || t == DType::Q4_1;
}
const char* dtype_name(DType t) { return info(t).name; }

DType dtype_from_name(const std::string& name, const char* where) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  for (size_t i = 0; i < std::size(kInfo); ++i) {
    if (lower == kInfo[i].name) return static_cast<DType>(i);
  }
  throw std::invalid_argument(std::string("[") + where + "] unknown dtype '" + name +
                              "' (expected f32, f16, bf16, q8_0, q4_0 or q4_1)");
}

size_t dtype_row_bytes(DType t, int64_t n) {
  const Info& i = info(t);
  if (n < 0 || n % i.block_elems != 0) {
    throw std::invalid_argument(std::string("[dtype] a row of ") + std::to_string(n) +
                                " elements is not a multiple of the " + i.name + " block size " +
                                std::to_string(i.block_elems));
  }
  return static_cast<size_t>(n / i.block_elems) * static_cast<size_t>(i.block_bytes);
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or nan
    return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
  }
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (abs < 0x38800000u) {  // subnormal or zero in half
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);
    const uint32_t e = abs >> 23;
    const uint32_t m = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;  // half subnormals count units of 2^-24
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    uint32_t r = m >> shift;
    if (rem > halfway || (rem == halfway && (r & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = ((abs - 0x38000000u) >> 13);
  const uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
  return static_cast<uint16_t>(sign | r);
}

float bf16_to_f32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet nan
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

}  // namespace longbow
