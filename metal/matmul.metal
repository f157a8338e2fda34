// Matmul out (M, N) = x (M, K) . w (N, K)^T (+ bias) (+ out when accumulate), every weight dtype.
//  matmul_mv_<dtype>:    matrix-vector kernel for decode (small M): one SIMD group per output
//                        element, lanes stride over the weight blocks, simd_sum at the end.
//  matmul_tiled_<dtype>: tiled kernel for prefill: a threadgroup computes a 32x32 output tile;
//                        x and dequantized w tiles (32 wide in k) are staged in threadgroup memory
//                        and multiplied with 8x8 simdgroup matrices (4 SIMD groups, 2x2 each).
#include <metal_stdlib>
#include "kargs.h"
#include "weights.h"
using namespace metal;

template <typename W>
kernel void matmul_mv(constant MatmulKArgs& args [[buffer(0)]],
                      device float* out [[buffer(1)]],         // (M, N)
                      device const float* x [[buffer(2)]],     // (M, K)
                      device const uchar* w [[buffer(3)]],     // (N, K) W
                      device const float* bias [[buffer(4)]],  // (N,) if has_bias
                      uint2 tg [[threadgroup_position_in_grid]],
                      uint sg [[simdgroup_index_in_threadgroup]],
                      uint lane [[thread_index_in_simdgroup]]) {
  const uint n = tg.x * LONGBOW_MV_ROWS + sg, m = tg.y;
  if (n >= uint(args.N)) return;  // uniform per SIMD group; no barriers below
  device const uchar* row = w + ulong(n) * args.row_bytes;
  device const float* xm = x + ulong(m) * args.K;
  const uint num_blocks = uint(args.K) / W::BLOCK;
  float acc = 0.0f;
  for (uint b = lane; b < num_blocks; b += 32) acc += W::dot_block(row, b, xm + b * W::BLOCK);
  acc = simd_sum(acc);
  if (lane == 0) {
    if (args.has_bias != 0) acc += bias[n];
    device float* o = out + ulong(m) * args.N + n;
    *o = args.accumulate != 0 ? *o + acc : acc;
  }
}

template <typename W>
kernel void matmul_tiled(constant MatmulKArgs& args [[buffer(0)]],
                         device float* out [[buffer(1)]],         // (M, N)
                         device const float* x [[buffer(2)]],     // (M, K)
                         device const uchar* w [[buffer(3)]],     // (N, K) W
                         device const float* bias [[buffer(4)]],  // (N,) if has_bias
                         uint2 tg [[threadgroup_position_in_grid]],
                         uint tid [[thread_index_in_threadgroup]],
                         uint sg [[simdgroup_index_in_threadgroup]]) {
  threadgroup float xs[LONGBOW_MM_TILE_M * LONGBOW_MM_TILE_K];  // (TILE_M, TILE_K)
  threadgroup float ws[LONGBOW_MM_TILE_N * LONGBOW_MM_TILE_K];  // (TILE_N, TILE_K)
  threadgroup float cs[LONGBOW_MM_TILE_M * LONGBOW_MM_TILE_N];  // (TILE_M, TILE_N)
  const uint TK = LONGBOW_MM_TILE_K, TN = LONGBOW_MM_TILE_N;
  const uint M = uint(args.M), N = uint(args.N), K = uint(args.K);
  const uint m0 = tg.y * LONGBOW_MM_TILE_M, n0 = tg.x * TN;
  // Loader: thread -> (tile row r, 8 consecutive k); 128 threads cover 32 rows x 32 k.
  const uint r = tid / 4, kq = (tid % 4) * 8;
  const bool x_ok = m0 + r < M, w_ok = n0 + r < N;
  device const float* xrow = x + ulong(x_ok ? m0 + r : 0) * K;
  device const uchar* wrow = w + ulong(w_ok ? n0 + r : 0) * args.row_bytes;
  // Compute: SIMD group -> 16x16 sub-tile (sm, sn) as 2x2 8x8 accumulators.
  const uint sm = sg / 2, sn = sg % 2;
  simdgroup_float8x8 acc[2][2];
  for (uint i = 0; i < 2; ++i)
    for (uint j = 0; j < 2; ++j) acc[i][j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);

  for (uint k0 = 0; k0 < K; k0 += TK) {
    for (uint j = 0; j < 8; ++j) {
      const uint k = k0 + kq + j;
      xs[r * TK + kq + j] = (x_ok && k < K) ? xrow[k] : 0.0f;
      ws[r * TK + kq + j] = (w_ok && k < K) ? W::elem(wrow, k) : 0.0f;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (uint kk = 0; kk < TK; kk += 8) {
      simdgroup_float8x8 a[2];
      simdgroup_float8x8 b[2];
      for (uint i = 0; i < 2; ++i) simdgroup_load(a[i], xs + (sm * 16 + i * 8) * TK + kk, TK);
      // b[j] = (w rows sn*16 + j*8 .. +8, k kk .. kk+8)^T: a transposed load.
      for (uint j = 0; j < 2; ++j)
        simdgroup_load(b[j], ws + (sn * 16 + j * 8) * TK + kk, TK, ulong2(0, 0), true);
      for (uint i = 0; i < 2; ++i)
        for (uint j = 0; j < 2; ++j)
          simdgroup_multiply_accumulate(acc[i][j], a[i], b[j], acc[i][j]);
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  for (uint i = 0; i < 2; ++i)
    for (uint j = 0; j < 2; ++j)
      simdgroup_store(acc[i][j], cs + (sm * 16 + i * 8) * TN + sn * 16 + j * 8, TN);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (!x_ok) return;  // after the last barrier
  for (uint j = 0; j < 8; ++j) {
    const uint n = n0 + kq + j;
    if (n >= N) break;
    float v = cs[r * TN + kq + j];
    if (args.has_bias != 0) v += bias[n];
    device float* o = out + ulong(m0 + r) * N + n;
    *o = args.accumulate != 0 ? *o + v : v;
  }
}

template [[host_name("matmul_mv_f32")]] kernel void matmul_mv<w_f32>(
    constant MatmulKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* x [[buffer(2)]], device const uchar* w [[buffer(3)]],
    device const float* bias [[buffer(4)]], uint2 tg [[threadgroup_position_in_grid]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("matmul_tiled_f32")]] kernel void matmul_tiled<w_f32>(
    constant MatmulKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* x [[buffer(2)]], device const uchar* w [[buffer(3)]],
    device const float* bias [[buffer(4)]], uint2 tg [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]]);

template [[host_name("matmul_mv_f16")]] kernel void matmul_mv<w_f16>(
    constant MatmulKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* x [[buffer(2)]], device const uchar* w [[buffer(3)]],
    device const float* bias [[buffer(4)]], uint2 tg [[threadgroup_position_in_grid]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("matmul_tiled_f16")]] kernel void matmul_tiled<w_f16>(
    constant MatmulKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* x [[buffer(2)]], device const uchar* w [[buffer(3)]],
    device const float* bias [[buffer(4)]], uint2 tg [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]]);

template [[host_name("matmul_mv_bf16")]] kernel void matmul_mv<w_bf16>(
    constant MatmulKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* x [[buffer(2)]], device const uchar* w [[buffer(3)]],
    device const float* bias [[buffer(4)]], uint2 tg [[threadgroup_position_in_grid]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("matmul_tiled_bf16")]] kernel void matmul_tiled<w_bf16>(
    constant MatmulKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* x [[buffer(2)]], device const uchar* w [[buffer(3)]],
    device const float* bias [[buffer(4)]], uint2 tg [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]]);

template [[host_name("matmul_mv_q8_0")]] kernel void matmul_mv<w_q8_0>(
    constant MatmulKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* x [[buffer(2)]], device const uchar* w [[buffer(3)]],
    device const float* bias [[buffer(4)]], uint2 tg [[threadgroup_position_in_grid]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("matmul_tiled_q8_0")]] kernel void matmul_tiled<w_q8_0>(
    constant MatmulKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* x [[buffer(2)]], device const uchar* w [[buffer(3)]],
    device const float* bias [[buffer(4)]], uint2 tg [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]]);

template [[host_name("matmul_mv_q4_0")]] kernel void matmul_mv<w_q4_0>(
    constant MatmulKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* x [[buffer(2)]], device const uchar* w [[buffer(3)]],
    device const float* bias [[buffer(4)]], uint2 tg [[threadgroup_position_in_grid]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("matmul_tiled_q4_0")]] kernel void matmul_tiled<w_q4_0>(
    constant MatmulKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* x [[buffer(2)]], device const uchar* w [[buffer(3)]],
    device const float* bias [[buffer(4)]], uint2 tg [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]]);

template [[host_name("matmul_mv_q4_1")]] kernel void matmul_mv<w_q4_1>(
    constant MatmulKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* x [[buffer(2)]], device const uchar* w [[buffer(3)]],
    device const float* bias [[buffer(4)]], uint2 tg [[threadgroup_position_in_grid]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("matmul_tiled_q4_1")]] kernel void matmul_tiled<w_q4_1>(
    constant MatmulKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* x [[buffer(2)]], device const uchar* w [[buffer(3)]],
    device const float* bias [[buffer(4)]], uint2 tg [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]]);
