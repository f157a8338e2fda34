// The CPU's MLP block: the vendor BLAS path and the per-shape chooser (mlp.h).
#include "longbow/backend/cpu/mlp.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <string>
#include <utility>

#include "longbow/backend/cpu/cpu_backend.h"
#include "longbow/backend/cpu/matmul/matmul_kernels.h"
#include "longbow/backend/cpu/vendor_blas.h"

namespace longbow::cpu {

namespace {

float panel_value(DType t, const uint8_t* panel, size_t i) {
  if (t == DType::F32) return reinterpret_cast<const float*>(panel)[i];
  const uint16_t h = reinterpret_cast<const uint16_t*>(panel)[i];
  return t == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
}

// The weight's row-major f32 copy (N, K), made from its panels on first use.
const float* f32_rows(Ctx& c, BufView w, DType t, int N, int K, const char* what) {
  const auto* packed = dynamic_cast<const PackedWeight*>(w.buffer);
  require(packed != nullptr && w.offset == 0 && packed->rows() == N && packed->cols() == K &&
              packed->dtype() == t,
          "cpu.mlp", [&] {
            return std::string(what) + ": expected a (" + std::to_string(N) + ", " +
                   std::to_string(K) + ") " + dtype_name(t) + " weight from matmul_weight";
          });
  if (packed->f32_rows.empty() && N > 0 && K > 0) {
    packed->f32_rows.resize(static_cast<size_t>(N) * K);
    float* dst = packed->f32_rows.data();
    const auto* src = static_cast<const uint8_t*>(packed->host_ptr());
    const size_t pb = panel_bytes(t, K);
    c.pool.parallel_for((N + PANEL_ROWS - 1) / PANEL_ROWS, [&](int64_t p0, int64_t p1, int) {
      for (int64_t p = p0; p < p1; ++p) {
        const uint8_t* panel = src + p * pb;  // (K, 16)
        for (int r = 0; r < PANEL_ROWS && p * PANEL_ROWS + r < N; ++r) {
          float* row = dst + static_cast<size_t>(p * PANEL_ROWS + r) * K;
          for (int k = 0; k < K; ++k)
            row[k] = panel_value(t, panel, static_cast<size_t>(k) * PANEL_ROWS + r);
        }
      }
    });
  }
  return packed->f32_rows.data();
}

void add_bias(float* out, const float* bias, int M, int N) {
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) out[static_cast<size_t>(m) * N + n] += bias[n];
}

}  // namespace

std::string vendor_mlp_unsupported(const MlpArgs& a) {
  for (auto [t, what] : {std::pair{a.gate_dtype, "w_gate"}, std::pair{a.up_dtype, "w_up"},
                         std::pair{a.down_dtype, "w_down"}}) {
    if (!is_float_weight(t)) {
      return std::string(what) + " is " + dtype_name(t) +
             ": the vendor BLAS takes F32, F16 or BF16 weights (quantized weights always run our "
             "integer kernels)";
    }
  }
  if (vendor_blas() == nullptr) return "no vendor BLAS: " + vendor_blas_status();
  return "";
}

void vendor_mlp(Ctx& c, const MlpArgs& a) {
  const std::string why = vendor_mlp_unsupported(a);
  if (!why.empty()) {
    if (vendor_blas() == nullptr) throw std::runtime_error("[cpu.mlp] " + why);
    throw std::invalid_argument("[cpu.mlp] " + why);
  }
  const VendorBlas& blas = *vendor_blas();
  // One BLAS thread per call, our pool splitting the output columns: OpenBLAS's own threads spin
  // after each call and starved the next ops on 2 cores (f32 prefill 0.75x of splitting here).
  if (blas.set_num_threads != nullptr) blas.set_num_threads(1);
  const int M = a.M, D = a.D, F = a.F;
  const char* where = "cpu.mlp";
  const size_t md = static_cast<size_t>(M) * D, mf = static_cast<size_t>(M) * F;
  const float* x = view_as<const float>(a.x, md, where, "x");  // (M, D)
  float* gate = view_as<float>(a.gate, mf, where, "gate");     // (M, F)
  float* up = view_as<float>(a.up, mf, where, "up");           // (M, F)
  float* out = view_as<float>(a.out, md, where, "out");        // (M, D)
  const float* wg = f32_rows(c, a.w_gate, a.gate_dtype, F, D, "w_gate");
  const float* wu = f32_rows(c, a.w_up, a.up_dtype, F, D, "w_up");
  const float* wd = f32_rows(c, a.w_down, a.down_dtype, D, F, "w_down");
  // C (M, N) [+]= A (M, K) · W (N, K)ᵀ, the pool's threads each taking a range of N.
  auto gemm = [&](const float* A, const float* W, float* C, int N, int K, float beta) {
    const int64_t chunks = (N + PANEL_ROWS - 1) / PANEL_ROWS;
    c.pool.parallel_for(chunks, [&](int64_t c0, int64_t c1, int) {
      const int n0 = static_cast<int>(c0 * PANEL_ROWS),
                n1 = std::min(N, static_cast<int>(c1 * PANEL_ROWS));
      blas.sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_TRANS, M, n1 - n0, K, 1.f, A, K,
                 W + static_cast<size_t>(n0) * K, K, beta, C + n0, N);
    });
  };
  gemm(x, wg, gate, F, D, 0.f);
  gemm(x, wu, up, F, D, 0.f);
  if (!a.b_gate.empty()) add_bias(gate, view_as<const float>(a.b_gate, F, where, "b_gate"), M, F);
  if (!a.b_up.empty()) add_bias(up, view_as<const float>(a.b_up, F, where, "b_up"), M, F);
  op_glu(c, {.out = a.gate, .gate = a.gate, .up = a.up, .num_rows = M, .dim = F, .act = a.act});
  gemm(gate, wd, out, D, F, a.accumulate ? 1.f : 0.f);
  if (!a.b_down.empty()) add_bias(out, view_as<const float>(a.b_down, D, where, "b_down"), M, D);
}

// ---- CpuBackend::mlp: the chooser ----

namespace {

double time_us(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

void CpuBackend::mlp(const MlpArgs& a) {
  if (mlp_chooser_.path() == MlpPath::Custom) return Backend::mlp(a);  // the default: no checks
  std::unique_ptr<Buffer> scratch_out;  // the probes' output (auto, first call of a shape)
  const bool vendor = mlp_chooser_.use_vendor(a, vendor_mlp_unsupported(a), [&](bool run_vendor) {
    if (!scratch_out) scratch_out = alloc(static_cast<size_t>(a.M) * a.D * sizeof(float));
    MlpArgs probe = a;
    probe.out = {scratch_out.get(), 0};
    probe.accumulate = false;
    return time_us([&] { run_vendor ? vendor_mlp(ctx_, probe) : Backend::mlp(probe); });
  });
  return vendor ? vendor_mlp(ctx_, a) : Backend::mlp(a);
}

std::vector<std::string> CpuBackend::mlp_report() const { return mlp_chooser_.report(); }

}  // namespace longbow::cpu
