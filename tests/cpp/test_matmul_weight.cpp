// The CPU backend's matmul weights (CpuBackend::matmul_weight): quantized weights must come packed
// from matmul_weight, with the (N, K, dtype) the op names; anything else is a clear
// std::invalid_argument, never a wrong result. Float weights are used in place. Exit code 0 = pass.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "longbow/backend/backend.h"
#include "test_checks.h"

using namespace longbow;

namespace {

using testing::failures;

void expect_error(Backend& be, const MatmulArgs& a, const char* needle, const char* what) {
  testing::expect_invalid_argument([&] { be.matmul(a); }, needle, what);
}

}  // namespace

int main() {
  auto be = create_backend("cpu", BackendOptions{2});
  const int N = 20, K = 64, M = 3;
  std::vector<uint8_t> rows(static_cast<size_t>(N) * dtype_row_bytes(DType::Q8_0, K), 0);
  for (size_t b = 0; b < rows.size() / sizeof(BlockQ8_0); ++b) {
    auto* blk = reinterpret_cast<BlockQ8_0*>(rows.data() + b * sizeof(BlockQ8_0));
    blk->d = 0x3C00;  // 1.0
    for (int i = 0; i < QK; ++i) blk->qs[i] = static_cast<int8_t>((b * 7 + i) % 11 - 5);
  }
  std::vector<float> x(static_cast<size_t>(M) * K);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 5) - 2.f;
  auto xb = be->alloc(x.size() * 4), out = be->alloc(static_cast<size_t>(M) * N * 4);
  be->upload({xb.get(), 0}, x.data(), x.size() * 4);

  auto packed = be->matmul_weight(rows.data(), DType::Q8_0, N, K);
  MatmulArgs a;
  a.out = {out.get(), 0}, a.x = {xb.get(), 0}, a.w = {packed.get(), 0};
  a.w_dtype = DType::Q8_0, a.M = M, a.N = N, a.K = K;
  be->matmul(a);
  std::vector<float> got(static_cast<size_t>(M) * N);
  be->download(got.data(), a.out, got.size() * 4);
  for (int m = 0; m < M; ++m) {
    for (int n = 0; n < N; ++n) {
      double want = 0;
      for (int k = 0; k < K; ++k) {
        const auto* blk =
            reinterpret_cast<const BlockQ8_0*>(rows.data() + n * dtype_row_bytes(DType::Q8_0, K)) +
            k / QK;
        want += blk->qs[k % QK] * static_cast<double>(x[m * K + k]);
      }
      if (std::fabs(got[m * N + n] - want) >
          1e-4 * (1.0 + std::fabs(want))) {  // int16 activation rounding
        std::printf("FAIL packed product (%d, %d): got %g expected %g\n", m, n, got[m * N + n],
                    want);
        ++failures;
      }
    }
  }

  auto plain = be->wrap_host(rows.data(), rows.size());
  MatmulArgs b = a;
  b.w = {plain.get(), 0};
  expect_error(*be, b, "made by Backend::matmul_weight", "plain quantized buffer");
  b = a;
  b.N = 16;
  expect_error(*be, b, "expected packed (16, 64) q8_0, found packed (20, 64) q8_0", "wrong N");
  b = a;
  b.w_dtype = DType::Q4_0;
  expect_error(*be, b, "found packed (20, 64) q8_0", "wrong dtype");
  try {
    be->matmul_weight(rows.data(), DType::Q8_0, N, 48);
    std::printf("FAIL K not a multiple of 32: no error\n");
    ++failures;
  } catch (const std::invalid_argument& e) {
    if (std::string(e.what()).find("multiple of 32") == std::string::npos) ++failures;
  }
  // Float weights stay row-major: a wrapped F32 buffer works directly.
  std::vector<float> wf(static_cast<size_t>(N) * K, 0.5f);
  auto fw = be->matmul_weight(wf.data(), DType::F32, N, K);
  b = a;
  b.w = {fw.get(), 0}, b.w_dtype = DType::F32;
  be->matmul(b);
  be->download(got.data(), b.out, got.size() * 4);
  // x row 0 = (i % 5) - 2 for i < 64: twelve cycles summing to 0, then -2, -1, 0, 1 (f32: exact).
  if (got[0] != -1.f) {
    std::printf("FAIL f32 weight: got %g expected -1\n", got[0]);
    ++failures;
  }
  std::printf("matmul_weight: %d failures\n", failures);
  return failures == 0 ? 0 : 1;
}
