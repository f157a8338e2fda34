// A vendor BLAS's single-precision GEMM, found at run time, for the CPU's vendor MLP path
// (cpu/mlp.cpp). macOS: Accelerate (linked). Elsewhere: a shared library loaded with dlopen, named
// by LONGBOW_BLAS_LIBRARY or set_blas_library() (the Python package passes the one inside the PyPI
// wheel scipy-openblas32 when it is installed: `pip install longbow-quarrel[blas]`). Symbols are
// looked up with the wheel's `scipy_` prefix first, then plain CBLAS names.
#pragma once

#include <string>

namespace longbow::cpu {

// CBLAS enum values (the ABI of every CBLAS).
constexpr int CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112;

struct VendorBlas {
  std::string name;  // e.g. "OpenBLAS (/path/libscipy_openblas.so)" or "Accelerate"
  // C (M, N) = alpha op(A) op(B) + beta C, cblas_sgemm's contract.
  void (*sgemm)(int order, int trans_a, int trans_b, int M, int N, int K, float alpha,
                const float* A, int lda, const float* B, int ldb, float beta, float* C, int ldc);
  void (*set_num_threads)(int);  // nullptr when the library has none (Accelerate)
};

// Library path to load on first use (before vendor_blas() is first called); the environment
// variable LONGBOW_BLAS_LIBRARY wins over it.
void set_blas_library(const std::string& path);
// The vendor BLAS, or nullptr when none could be found or loaded (vendor_blas_status() says why).
// Loads once; thread-safe.
const VendorBlas* vendor_blas();
// The loaded library's name, or why there is none.
std::string vendor_blas_status();

}  // namespace longbow::cpu
