// simdgroup_matrix<T, 8, 8>: each lane holds 2 of the 64 elements, using the public
// reverse-engineered Apple layout: q = lane/4; row = (q&4) + (lane/2)%4; col = (q&2)*2 + (lane%2)*2
// (elements (row, col) and (row, col+1)). Multiplication is a SIMD-group collective.
#pragma once
#pragma GCC system_header
#include "sync.h"

namespace metal {

namespace detail {
inline void matrix_coord(unsigned lane, unsigned& row, unsigned& col) {
  unsigned q = lane / 4;
  row = (q & 4) + (lane / 2) % 4;
  col = (q & 2) * 2 + (lane % 2) * 2;
}
}  // namespace detail

template <class T, int R, int C>
struct simdgroup_matrix {
  static_assert(R == 8 && C == 8, "[msl_sim] only 8x8 simdgroup matrices are supported");
  vec<T, 2> e;  // this lane's elements (row, col) and (row, col + 1)
  simdgroup_matrix() = default;
  // Diagonal matrix with d on the diagonal (as in MSL).
  explicit simdgroup_matrix(T d) {
    unsigned row, col;
    detail::matrix_coord(msl_sim::detail::current_lane(), row, col);
    e[0] = row == col ? d : T(0);
    e[1] = row == col + 1 ? d : T(0);
  }
  vec<T, 2>& thread_elements() { return e; }
  const vec<T, 2>& thread_elements() const { return e; }
};
typedef simdgroup_matrix<float, 8, 8> simdgroup_float8x8;
typedef simdgroup_matrix<half, 8, 8> simdgroup_half8x8;
typedef simdgroup_matrix<bfloat, 8, 8> simdgroup_bfloat8x8;

template <class T, int R, int C>
simdgroup_matrix<T, R, C> make_filled_simdgroup_matrix(T v) {
  simdgroup_matrix<T, R, C> m;
  m.e = vec<T, 2>(v);
  return m;
}

template <class T, class U>
void simdgroup_load(simdgroup_matrix<T, 8, 8>& d, const U* src, ulong elements_per_row = 8,
                    ulong2 matrix_origin = ulong2(0), bool transpose_matrix = false) {
  unsigned row, col;
  detail::matrix_coord(msl_sim::detail::current_lane(), row, col);
  const U* base = src + matrix_origin.y * elements_per_row + matrix_origin.x;
  for (unsigned k = 0; k < 2; ++k) {
    ulong r = row, c = col + k;
    d.e[k] = T(transpose_matrix ? base[c * elements_per_row + r] : base[r * elements_per_row + c]);
  }
}
template <class T, class U>
void simdgroup_store(const simdgroup_matrix<T, 8, 8>& a, U* dst, ulong elements_per_row = 8,
                     ulong2 matrix_origin = ulong2(0), bool transpose_matrix = false) {
  unsigned row, col;
  detail::matrix_coord(msl_sim::detail::current_lane(), row, col);
  U* base = dst + matrix_origin.y * elements_per_row + matrix_origin.x;
  for (unsigned k = 0; k < 2; ++k) {
    ulong r = row, c = col + k;
    (transpose_matrix ? base[c * elements_per_row + r] : base[r * elements_per_row + c]) =
        U(a.e[k]);
  }
}

// d = a * b + c, accumulated in float in k order.
template <class TD, class TA, class TB, class TC>
void simdgroup_multiply_accumulate(simdgroup_matrix<TD, 8, 8>& d,
                                   const simdgroup_matrix<TA, 8, 8>& a,
                                   const simdgroup_matrix<TB, 8, 8>& b,
                                   const simdgroup_matrix<TC, 8, 8>& c,
                                   SrcLoc loc = SrcLoc::current()) {
  float mine[6] = {float(a.e[0]), float(a.e[1]), float(b.e[0]),
                   float(b.e[1]), float(c.e[0]), float(c.e[1])};
  const SimdSnapshot& s = detail::collect("simdgroup_multiply_accumulate", mine, loc);
  if (s.active != 0xffffffffu)
    msl_sim::detail::fail(Site::here("simdgroup_multiply_accumulate", loc),
                          "simdgroup matrix operations need all 32 lanes active");
  float A[8][8], B[8][8], Cm[8][8];
  for (unsigned l = 0; l < 32; ++l) {
    unsigned row, col;
    detail::matrix_coord(l, row, col);
    float v[6];
    std::memcpy(v, s.values[l], sizeof v);
    for (unsigned k = 0; k < 2; ++k) {
      A[row][col + k] = v[k];
      B[row][col + k] = v[2 + k];
      Cm[row][col + k] = v[4 + k];
    }
  }
  unsigned row, col;
  detail::matrix_coord(msl_sim::detail::current_lane(), row, col);
  for (unsigned k = 0; k < 2; ++k) {
    float acc = Cm[row][col + k];
    for (unsigned i = 0; i < 8; ++i) acc = std::fma(A[row][i], B[i][col + k], acc);
    d.e[k] = TD(acc);
  }
}
template <class TD, class TA, class TB>
void simdgroup_multiply(simdgroup_matrix<TD, 8, 8>& d, const simdgroup_matrix<TA, 8, 8>& a,
                        const simdgroup_matrix<TB, 8, 8>& b, SrcLoc loc = SrcLoc::current()) {
  simdgroup_matrix<TD, 8, 8> zero = make_filled_simdgroup_matrix<TD, 8, 8>(TD(0));
  simdgroup_multiply_accumulate(d, a, b, zero, loc);
}

}  // namespace metal
