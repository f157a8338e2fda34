// The one instruction-set decision of the CPU backend: every kernel family (row, elementwise,
// matmul, attention) picks its set from cpu_isa(), decided once per process.
#pragma once

namespace longbow::cpu {

// What the kernels may use: what the CPU and the OS support, capped by LONGBOW_CPU_SIMD
// (`scalar`: portable kernels only; `avx2`: x86-64 capped at AVX2). Each wider level implies the
// narrower ones (avx512_vnni => avx512 => avx2).
struct CpuIsa {
  const char* name;  // "scalar", "neon", "avx2", "avx512" or "avx512_vnni"
  bool neon;         // arm64 NEON (baseline there)
  bool avx2;         // AVX2 + FMA + F16C (the *_avx2.cpp kernels)
  bool avx512;       // AVX-512 F/BW/VL with the opmask and ZMM state saved by the OS
  bool avx512_vnni;  // avx512 + VNNI (the AVX-512 matmul kernels)
};

// The level every kernel family uses; read once (CPUID + XGETBV and LONGBOW_CPU_SIMD).
const CpuIsa& cpu_isa();

}  // namespace longbow::cpu
