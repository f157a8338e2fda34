// Matmul micro-kernels shared by the scalar, AVX2, AVX-512 and NEON implementations (matmul_*.cpp).
//
// Quantized weights (Q4_0, Q4_1, Q8_0) are repacked once, when the weight is created
// (CpuBackend::matmul_weight, matmul_pack.cpp), into panels of PANEL_ROWS = 16 rows: per 32-wide
// block, the 16 rows' scales side by side, then their quants interleaved in pairs, so that one
// SIMD register holds the same two columns of 16 different rows and one multiply-add of int16
// pairs (vpdpwssd / vpmaddwd) updates 16 row sums at once. Activations are quantized once per
// matmul into BlockQ16A (per 32 values: f32 scale, f32 scaled sum, int16 values). 16-bit rather
// than llama.cpp's 8-bit activations: the rounding error (amax / 65534) is far below the weight
// quantization error (8-bit activations failed the transformers oracle at 2.2e-2 of the logit
// range).
//
// Float weights (F32, F16, BF16) are repacked too, keeping their dtype: panels of 16 rows stored
// k-major, (K, 16) per panel, so one SIMD load holds element k of 16 rows and one FMA with a
// broadcast activation updates 16 row sums. Activations stay f32, transposed per group of mr tokens
// (xt[k * mr + m]). Each (row r, token m) is one FMA chain in k order:
//   acc = 0;  for k < K: acc = fma(w[r][k], x[m][k], acc);  out[m][r] = acc
//
// Every kernel set computes, for each (row r, token m), exactly this sequence (the scalar kernel is
// the reference; the SIMD ones match it bit for bit):
//   acc = 0
//   for each block b:  isum = sum_k wq[r][k] * xq[m][k]            (exact int32)
//                      acc = fma(float(isum), dw[r] * xd[m], acc)
//                      Q4_1: acc = fma(mw[r], xs[m], acc);  Q4_0: acc = fma(-8 * dw[r], xs[m], acc)
//   out[m][r] = acc
// so a token's result is the same whichever set runs it and whatever else is in the batch.
#pragma once

#include <cstddef>
#include <cstdint>

#include "longbow/core/dtype.h"

namespace longbow::cpu {

// One block of 32 activations quantized to int16: x[i] ~= d * qs[i]; s = d * sum(qs).
struct BlockQ16A {
  float d;
  float s;
  int16_t qs[QK];
};
static_assert(sizeof(BlockQ16A) == 72);
constexpr float Q16_MAX = 32767.f;
// Blocks whose largest |x| is below this quantize to zero: Q16_MAX / amax overflows to inf near
// 1e-35, and the kernel sets would then round inf / NaN differently.
constexpr float Q16_MIN_AMAX = 1e-30f;

constexpr int MAX_MR = 8;  // activation rows per tile call (upper bound over kernel sets)
constexpr int PANEL_ROWS = 16;
// Panel blocks fetched ahead by the kernels: weights stream from DRAM once per step (0 -> 8 made
// 16-token decode steps ~9 % faster on the AVX-512 set; 8..16 were equal).
constexpr int PANEL_PREFETCH_BLOCKS = 8;

// One 32-column block of a 16-row panel. Q4_0/Q4_1: qs[32 t + 2 r + e] is byte 2 t + e of row r's
// original block (low nibble = column 2 t + e, high nibble = column 16 + 2 t + e), t < 8.
// Q4_0 keeps only d (m is zero). Rows past N in the last panel are zero (d = m = 0).
struct PanelQ4 {
  uint16_t d[PANEL_ROWS];  // f16 bits
  uint16_t m[PANEL_ROWS];  // f16 bits (Q4_1)
  uint8_t qs[PANEL_ROWS * QK / 2];
};
// Q8_0: qs[32 j + 2 r + e] = column 2 j + e of row r, j < 16. pad keeps blocks 64-byte multiples.
struct PanelQ8 {
  uint16_t d[PANEL_ROWS];
  uint16_t pad[PANEL_ROWS];
  int8_t qs[PANEL_ROWS * QK];
};
static_assert(sizeof(PanelQ4) == 320 && sizeof(PanelQ8) == 576);

// Bytes of one panel block for a quantized dtype (PanelQ4 or PanelQ8).
inline size_t panel_block_bytes(DType t) {
  return t == DType::Q8_0 ? sizeof(PanelQ8) : sizeof(PanelQ4);
}
inline bool is_block_quant(DType t) {
  return t == DType::Q4_0 || t == DType::Q4_1 || t == DType::Q8_0;
}
inline bool is_float_weight(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16;
}
// Bytes of one packed panel of a (N, K) weight: K / 32 blocks (quantized) or (K, 16) elements.
inline size_t panel_bytes(DType t, int64_t K) {
  return is_block_quant(t) ? static_cast<size_t>(K / QK) * panel_block_bytes(t)
                           : PANEL_ROWS * dtype_row_bytes(t, K);
}
// Bytes of a packed (N, K) weight: ceil(N / 16) panels.
inline size_t packed_bytes(DType t, int64_t N, int64_t K) {
  return static_cast<size_t>((N + PANEL_ROWS - 1) / PANEL_ROWS) * panel_bytes(t, K);
}
// Packs panels [p0, p1) of the row-major (N, K) weight `rows` (Q4_0/Q4_1/Q8_0 with K a multiple of
// 32, or F32/F16/BF16) into `dst` (the whole packed buffer).
void pack_panels(DType t, const void* rows, int64_t N, int64_t K, int64_t p0, int64_t p1,
                 void* dst);

// Tokens per float-panel call, upper bound over kernel sets.
constexpr int FP_MAX_MR = 12;

struct MatmulKernels {
  const char* name;
  int mr;  // activation rows per dot_q / dot_f call that this set runs best with (<= MAX_MR)
  // y (K/32,) = quantized x (K,) ; K a multiple of 32. Rounds to nearest-even, |q| <= 32767.
  void (*quantize_q16a)(const float* x, BlockQ16A* y, int64_t K);
  // out[m * ldo + r] = w_r · x_m for r < 16, m < mr (any mr >= 1); `panel` is one packed panel
  // (nb blocks of PanelQ4/PanelQ8 for t = Q4_0/Q4_1 or Q8_0), x_m = xq + m * ldx blocks.
  void (*dot_q)(DType t, const void* panel, const BlockQ16A* xq, size_t ldx, int mr, int64_t nb,
                float* out, size_t ldo);
  int fp_mr;  // tokens per dot_fp call this set runs best with (<= FP_MAX_MR)
  // Float panels: out[m * ldo + 16 j + r] = w_{j,r} · x_m for panels j < np (np = 1 or 2,
  // `panel_stride` bytes apart, F32/F16/BF16), rows r < 16, tokens m < mr (1 <= mr <= fp_mr);
  // xt is the mr tokens transposed, xt[k * mr + m].
  void (*dot_fp)(DType t, const void* panels, size_t panel_stride, int np, const float* xt, int mr,
                 int64_t K, float* out, size_t ldo);
};

const MatmulKernels& scalar_matmul_kernels();
const MatmulKernels* avx2_matmul_kernels();    // nullptr when not compiled in
const MatmulKernels* avx512_matmul_kernels();  // nullptr when not compiled in
const MatmulKernels* neon_matmul_kernels();    // nullptr when not compiled in
// The active set: the widest SIMD set the CPU has (avx512 > avx2 on x86-64, neon on arm64);
// the level comes from cpu_isa() (LONGBOW_CPU_SIMD=scalar forces the portable kernels, =avx2 caps
// at AVX2).
const MatmulKernels& matmul_kernels();

// Runs Panel<T>(args...) for the quantized weight dtype t (each SIMD file passes its own,
// internal-linkage kernel template); throws for other dtypes.
template <void (*Q4_0)(const void*, const BlockQ16A*, size_t, int, int64_t, float*, size_t),
          void (*Q4_1)(const void*, const BlockQ16A*, size_t, int, int64_t, float*, size_t),
          void (*Q8_0)(const void*, const BlockQ16A*, size_t, int, int64_t, float*, size_t)>
void dispatch_panel(DType t, const void* panel, const BlockQ16A* xq, size_t ldx, int mr, int64_t nb,
                    float* out, size_t ldo);

void throw_not_block_quant(
    DType t);  // "[cpu.matmul] expected Q4_0, Q4_1 or Q8_0 weights, found ..."

template <void (*Q4_0)(const void*, const BlockQ16A*, size_t, int, int64_t, float*, size_t),
          void (*Q4_1)(const void*, const BlockQ16A*, size_t, int, int64_t, float*, size_t),
          void (*Q8_0)(const void*, const BlockQ16A*, size_t, int, int64_t, float*, size_t)>
void dispatch_panel(DType t, const void* panel, const BlockQ16A* xq, size_t ldx, int mr, int64_t nb,
                    float* out, size_t ldo) {
  switch (t) {
    case DType::Q4_0: return Q4_0(panel, xq, ldx, mr, nb, out, ldo);
    case DType::Q4_1: return Q4_1(panel, xq, ldx, mr, nb, out, ldo);
    case DType::Q8_0: return Q8_0(panel, xq, ldx, mr, nb, out, ldo);
    default: throw_not_block_quant(t);
  }
}

void throw_not_float_weight(DType t);  // "[cpu.matmul] expected F32, F16 or BF16 weights, ..."

// Float-panel kernel signature (the dtype is a template argument of each set's kernels).
using FloatPanelFn = void (*)(const uint8_t* panels, size_t panel_stride, int np, const float* xt,
                              int mr, int64_t K, float* out, size_t ldo);

// Runs F32(args...), F16(args...) or BF16(args...) by the weight dtype t; throws for other dtypes.
template <FloatPanelFn F32, FloatPanelFn F16, FloatPanelFn BF16>
void dispatch_float_panel(DType t, const void* panels, size_t panel_stride, int np, const float* xt,
                          int mr, int64_t K, float* out, size_t ldo) {
  const auto* p = static_cast<const uint8_t*>(panels);
  switch (t) {
    case DType::F32: return F32(p, panel_stride, np, xt, mr, K, out, ldo);
    case DType::F16: return F16(p, panel_stride, np, xt, mr, K, out, ldo);
    case DType::BF16: return BF16(p, panel_stride, np, xt, mr, K, out, ldo);
    default: throw_not_float_weight(t);
  }
}

}  // namespace longbow::cpu
