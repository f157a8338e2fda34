// Elementwise ops: silu_mul (SwiGLU gate), add, get_rows. One thread per output element.
#include <metal_stdlib>
#include "kargs.h"
using namespace metal;

kernel void silu_mul_f32(constant SiluMulKArgs& args [[buffer(0)]],
                         device float* out [[buffer(1)]],         // (num_rows, dim)
                         device const float* gate [[buffer(2)]],  // (num_rows, dim)
                         device const float* up [[buffer(3)]],    // (num_rows, dim)
                         uint i [[thread_position_in_grid]]) {
  if (i >= args.n) return;
  const float g = gate[i];
  out[i] = g / (1.0f + exp(-g)) * up[i];
}

kernel void add_f32(constant AddKArgs& args [[buffer(0)]],
                    device float* out [[buffer(1)]],      // (n,)
                    device const float* a [[buffer(2)]],  // (n,)
                    device const float* b [[buffer(3)]],  // (n,)
                    uint i [[thread_position_in_grid]]) {
  if (i >= args.n) return;
  out[i] = a[i] + b[i];
}

// Rows outside [0, num_src_rows) give a zero row (the host validates rows it uploads).
kernel void get_rows_f32(constant GetRowsKArgs& args [[buffer(0)]],
                         device float* out [[buffer(1)]],       // (num_rows, dim)
                         device const float* x [[buffer(2)]],   // (num_src_rows, dim)
                         device const int* rows [[buffer(3)]],  // (num_rows,)
                         uint2 gid [[thread_position_in_grid]]) {
  uint i = gid.x, r = gid.y;
  if (i >= uint(args.dim) || r >= uint(args.num_rows)) return;
  int src = rows[r];
  float v = 0.0f;
  if (src >= 0 && src < args.num_src_rows) v = x[ulong(src) * args.dim + i];
  out[ulong(r) * args.dim + i] = v;
}
