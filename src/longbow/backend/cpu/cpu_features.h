// Run-time CPU feature detection for the SIMD kernel dispatch.
#pragma once

namespace longbow::cpu {

// True when the CPU and the OS support AVX2, FMA and F16C (the *_avx2.cpp kernels).
bool cpu_has_avx2_fma_f16c();

}  // namespace longbow::cpu
