// Run-time CPU feature detection for the SIMD kernel dispatch.
#pragma once

namespace longbow::cpu {

// True when the CPU and the OS support AVX2, FMA and F16C (the *_avx2.cpp kernels).
bool cpu_has_avx2_fma_f16c();
// True when the CPU and the OS support AVX-512 F/BW/VL (+ VNNI when vnni is set) with AVX2, FMA and
// F16C, and the OS saves the opmask and ZMM state (the *avx512*.cpp kernels).
bool cpu_has_avx512(bool vnni);

}  // namespace longbow::cpu
