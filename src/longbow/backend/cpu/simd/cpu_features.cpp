#include "longbow/backend/cpu/simd/cpu_features.h"

#include <cstdlib>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace longbow::cpu {

namespace {

#if defined(__x86_64__) || defined(__i386__)
// CPUID directly: some compilers (clang before 16, older Apple clang) do not know "f16c" in
// __builtin_cpu_supports.
CpuIsa detect() {
  CpuIsa isa{"scalar", false, false, false, false};
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return isa;
  const bool fma = (ecx >> 12) & 1u, osxsave = (ecx >> 27) & 1u, avx = (ecx >> 28) & 1u,
             f16c = (ecx >> 29) & 1u;
  if (!(fma && osxsave && avx && f16c)) return isa;
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & 0x6u) != 0x6u) return isa;  // the OS saves XMM and YMM state
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return isa;
  if (!((ebx >> 5) & 1u)) return isa;  // AVX2
  isa = {"avx2", false, true, false, false};
  // XMM, YMM, opmask and ZMM state (XCR0 bits 1, 2, 5-7).
  const bool f = (ebx >> 16) & 1u, bw = (ebx >> 30) & 1u, vl = (ebx >> 31) & 1u;
  if ((xcr0_lo & 0xE6u) != 0xE6u || !(f && bw && vl)) return isa;
  isa = {"avx512", false, true, true, false};
  if ((ecx >> 11) & 1u) isa = {"avx512_vnni", false, true, true, true};
  return isa;
}
#elif defined(__aarch64__)
CpuIsa detect() { return {"neon", true, false, false, false}; }
#else
CpuIsa detect() { return {"scalar", false, false, false, false}; }
#endif

CpuIsa decide() {
  CpuIsa isa = detect();
  const char* env = std::getenv("LONGBOW_CPU_SIMD");
  const std::string cap = env != nullptr ? env : "";
  if (cap == "scalar") return {"scalar", false, false, false, false};
  if (cap == "avx2" && isa.avx2) return {"avx2", false, true, false, false};
  return isa;
}

}  // namespace

const CpuIsa& cpu_isa() {
  static const CpuIsa isa = decide();
  return isa;
}

}  // namespace longbow::cpu
