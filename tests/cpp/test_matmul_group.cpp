// Backend::matmul_group on the CPU: quantized parts sharing x run as one job and equal separate
// matmul calls bit for bit (decode-sized and prefill-sized M, so both thread splits run; N not a
// multiple of the 16-row panel; bias and accumulate on single parts; a float part falls back to
// separate calls). Parts that do not share x, M and K, or write over x, are clear errors.
// Exit code 0 = pass.
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "longbow/backend/backend.h"
#include "test_checks.h"

using namespace longbow;

namespace {

using testing::failures;

// Random row-major (N, K) weight bytes in `t` with finite scales.
std::vector<uint8_t> random_rows(DType t, int N, int K, std::mt19937& rng) {
  std::vector<uint8_t> rows(static_cast<size_t>(N) * dtype_row_bytes(t, K));
  for (auto& b : rows) b = static_cast<uint8_t>(rng());
  if (t == DType::F32) {
    auto* f = reinterpret_cast<float*>(rows.data());
    for (size_t i = 0; i < rows.size() / 4; ++i)
      f[i] = static_cast<float>(static_cast<int>(rng() % 200) - 100) / 64.f;
    return rows;
  }
  const size_t bs = t == DType::Q8_0   ? sizeof(BlockQ8_0)
                    : t == DType::Q4_0 ? sizeof(BlockQ4_0)
                                       : sizeof(BlockQ4_1);
  for (size_t b = 0; b < rows.size() / bs; ++b) {
    auto* h = reinterpret_cast<uint16_t*>(rows.data() + b * bs);
    h[0] = static_cast<uint16_t>(0x2000 + rng() % 0x400);  // d in [2^-7, 2^-6)
    if (t == DType::Q4_1) h[1] = static_cast<uint16_t>(0xA000 + rng() % 0x400);
  }
  return rows;
}

struct Part {
  DType dtype;
  int N;
  bool bias, accumulate;
};

void check_group(Backend& be, int M, int K, const std::vector<Part>& spec, std::mt19937& rng) {
  std::vector<float> x(static_cast<size_t>(M) * K);
  for (auto& v : x) v = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) / 250.f;
  auto xb = be.alloc(x.size() * 4);
  be.upload({xb.get(), 0}, x.data(), x.size() * 4);
  std::vector<std::vector<uint8_t>> rows;
  std::vector<std::unique_ptr<Buffer>> weights, biases, outs_sep, outs_grp;
  std::vector<MatmulArgs> sep, grp;
  for (const Part& p : spec) {
    rows.push_back(random_rows(p.dtype, p.N, K, rng));
    weights.push_back(be.matmul_weight(rows.back().data(), p.dtype, p.N, K));
    std::vector<float> init(static_cast<size_t>(M) * p.N), bias(static_cast<size_t>(p.N));
    for (auto& v : init) v = static_cast<float>(rng() % 7) - 3.f;
    for (auto& v : bias) v = static_cast<float>(rng() % 5) - 2.f;
    biases.push_back(be.alloc(bias.size() * 4 + 4));
    be.upload({biases.back().get(), 0}, bias.data(), bias.size() * 4);
    for (auto* outs : {&outs_sep, &outs_grp}) {
      outs->push_back(be.alloc(init.size() * 4 + 4));
      be.upload({outs->back().get(), 0}, init.data(), init.size() * 4);
    }
    MatmulArgs a;
    a.x = {xb.get(), 0}, a.w = {weights.back().get(), 0}, a.w_dtype = p.dtype, a.M = M, a.N = p.N,
    a.K = K;
    if (p.bias) a.bias = {biases.back().get(), 0};
    a.accumulate = p.accumulate;
    a.out = {outs_sep.back().get(), 0};
    sep.push_back(a);
    a.out = {outs_grp.back().get(), 0};
    grp.push_back(a);
  }
  for (const MatmulArgs& a : sep) be.matmul(a);
  be.matmul_group(grp);
  for (size_t i = 0; i < spec.size(); ++i) {
    const size_t n = static_cast<size_t>(M) * spec[i].N;
    std::vector<float> want(n), got(n);
    be.download(want.data(), sep[i].out, n * 4);
    be.download(got.data(), grp[i].out, n * 4);
    if (std::memcmp(want.data(), got.data(), n * 4) != 0) {
      std::printf("FAIL M=%d K=%d part %zu (%s, N=%d): group differs from a separate matmul\n", M,
                  K, i, dtype_name(spec[i].dtype), spec[i].N);
      ++failures;
    }
  }
}

void expect_error(Backend& be, const std::vector<MatmulArgs>& parts, const char* needle,
                  const char* what) {
  testing::expect_invalid_argument([&] { be.matmul_group(parts); }, needle, what);
}

}  // namespace

int main() {
  auto be = create_backend("cpu", BackendOptions{2});
  std::mt19937 rng(11);
  const std::vector<Part> qkv = {{DType::Q4_1, 96, true, false},
                                 {DType::Q4_1, 32, true, false},
                                 {DType::Q4_1, 32, false, false}};
  const std::vector<Part> mixed = {{DType::Q8_0, 21, false, false},
                                   {DType::Q4_0, 48, true, true},
                                   {DType::Q4_1, 5, false, true}};
  const std::vector<Part> with_float = {{DType::Q4_1, 32, false, false},
                                        {DType::F32, 17, true, false}};
  const std::vector<Part> six = {{DType::Q4_1, 16, false, false}, {DType::Q8_0, 7, true, false},
                                 {DType::Q4_0, 32, false, true},  {DType::Q4_1, 0, false, false},
                                 {DType::Q4_1, 48, false, false}, {DType::Q8_0, 16, false, false}};
  for (int M : {1, 3, 5, 16, 33, 64}) {  // >= 32 tokens: threads split the tokens, else the panels
    check_group(*be, M, 64, six, rng);  // more parts than the on-stack binding holds; an empty part
    check_group(*be, M, 64, qkv, rng);
    check_group(*be, M, 96, mixed, rng);
    check_group(*be, M, 64, with_float, rng);
  }

  // Contract errors.
  std::vector<uint8_t> rows = random_rows(DType::Q8_0, 16, 64, rng);
  auto w = be->matmul_weight(rows.data(), DType::Q8_0, 16, 64);
  auto x = be->alloc(8 * 64 * 4), x2 = be->alloc(8 * 64 * 4), out = be->alloc(8 * 16 * 4);
  MatmulArgs a;
  a.x = {x.get(), 0}, a.w = {w.get(), 0}, a.w_dtype = DType::Q8_0, a.M = 8, a.N = 16, a.K = 64,
  a.out = {out.get(), 0};
  MatmulArgs b = a;
  b.M = 4;
  expect_error(*be, {a, b}, "part 1: expected the x view, M and K of part 0", "M differs");
  b = a;
  b.x = {x2.get(), 0};
  expect_error(*be, {a, b}, "and another x", "x differs");
  b = a;
  b.out = {x.get(), 64};
  expect_error(*be, {a, b}, "part 1: out overlaps x", "out over x");
  std::printf("matmul_group: %d failures\n", failures);
  return failures == 0 ? 0 : 1;
}
