// Elementwise ops: glu (SwiGLU and GeGLU gates), add, softcap, get_rows. One thread per output
// element.
#include <metal_stdlib>
#include "kargs.h"
using namespace metal;

kernel void glu_silu_f32(constant GluKArgs& args [[buffer(0)]],
                         device float* out [[buffer(1)]],         // (num_rows, dim)
                         device const float* gate [[buffer(2)]],  // (num_rows, dim)
                         device const float* up [[buffer(3)]],    // (num_rows, dim)
                         uint i [[thread_position_in_grid]]) {
  if (i >= args.n) return;
  const float g = gate[i];
  out[i] = g / (1.0f + exp(-g)) * up[i];
}

// GELU, tanh approximation: 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))).
kernel void glu_gelu_tanh_f32(constant GluKArgs& args [[buffer(0)]],
                              device float* out [[buffer(1)]],         // (num_rows, dim)
                              device const float* gate [[buffer(2)]],  // (num_rows, dim)
                              device const float* up [[buffer(3)]],    // (num_rows, dim)
                              uint i [[thread_position_in_grid]]) {
  if (i >= args.n) return;
  const float g = gate[i];
  out[i] = 0.5f * g * (1.0f + tanh(0.7978845608028654f * (g + 0.044715f * g * g * g))) * up[i];
}

kernel void softcap_f32(constant SoftcapKArgs& args [[buffer(0)]],
                        device float* out [[buffer(1)]],      // (n,)
                        device const float* x [[buffer(2)]],  // (n,)
                        uint i [[thread_position_in_grid]]) {
  if (i >= args.n) return;
  out[i] = args.cap * tanh(x[i] / args.cap);
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
