// The Metal capability decisions (gpu_capabilities.h), pure functions the Metal runtime applies to
// the device it opens; run from tests/test_metal_runtime.py. Exit code 0 = pass.
#include <cstdio>
#include <string>

#if defined(LONGBOW_HAS_METAL) || defined(LONGBOW_HAS_METAL_SIM)
#include "longbow/backend/metal/gpu_capabilities.h"
#endif

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  if (!ok && ++failures < 20) std::printf("FAIL %s\n", what.c_str());
}

bool has(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

}  // namespace

int main() {
#if defined(LONGBOW_HAS_METAL) || defined(LONGBOW_HAS_METAL_SIM)
  using namespace longbow::metal;
  check(gpu_capability_problem({"Apple M2", true, true}).empty(), "an M2 is accepted");
  const std::string vm = gpu_capability_problem({"Apple Paravirtual device", false, false});
  check(has(vm, "Apple Paravirtual device") && has(vm, "Apple7") && has(vm, "Metal 3") &&
            has(vm, "cpu backend"),
        "a paravirtual GPU is refused naming what it lacks: " + vm);
  const std::string amd = gpu_capability_problem({"AMD Radeon Pro 5500M", false, true});
  check(has(amd, "Apple7") && !has(amd, "Metal 3"), "an AMD GPU lacks Apple7 only: " + amd);
  check(simd_width_problem("rms_norm_f32", 32).empty(), "SIMD width 32 is accepted");
  const std::string w = simd_width_problem("rms_norm_f32", 64);
  check(has(w, "rms_norm_f32") && has(w, "64") && has(w, "32"), "SIMD width 64 is refused: " + w);
#endif
  std::printf("%d failures\n", failures);
  return failures == 0 ? 0 : 1;
}
