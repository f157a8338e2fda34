// Runs one out-of-bounds kernel; in an AddressSanitizer build this must be reported (the pytest
// driver checks ASan's report names the .metal line). Usage: test_msl_sim_asan_oob device|threadgroup
#include <cstdio>
#include <cstring>
#include <vector>
#include "msl_sim/sim.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s device|threadgroup\n", argv[0]);
    return 2;
  }
  std::uint32_t n = 64;
  std::vector<float> src(n, 1.0f), dst(n, 0.0f);
  if (std::strcmp(argv[1], "device") == 0) {
    msl_sim::dispatch("oob_device_read", {2, 1, 1}, {32, 1, 1}, {src.data(), dst.data(), &n});
  } else {
    msl_sim::dispatch("oob_threadgroup_write", {1, 1, 1}, {32, 1, 1}, {dst.data()});
  }
  std::printf("no error reported\n");
  return 0;
}
