// Rotary position embedding (Su et al., RoFormer 2021), in place on q and k: one thread per
// (rotated pair, head, token); heads [0, num_heads) are q's, the rest k's. Interleaved pairs
// (GGUF) or rotate-half (HF); partial rotation when rot_dim < head_dim.
#include <metal_stdlib>
#include "kargs.h"
using namespace metal;

kernel void rope_f32(constant RopeKArgs& args [[buffer(0)]],
                     device float* q [[buffer(1)]],  // (num_tokens, num_heads, head_dim)
                     device float* k [[buffer(2)]],  // (num_tokens, num_kv_heads, head_dim)
                     device const int* positions [[buffer(3)]],   // (num_tokens,)
                     device const float* inv_freq [[buffer(4)]],  // (rot_dim / 2,)
                     uint3 gid [[thread_position_in_grid]]) {
  const uint half_rot = uint(args.rot_dim) / 2, i = gid.x, h = gid.y, t = gid.z;
  if (i >= half_rot || t >= uint(args.num_tokens)) return;
  const uint H = uint(args.num_heads), D = uint(args.head_dim);
  device float* v =
      h < H ? q + (ulong(t) * H + h) * D : k + (ulong(t) * uint(args.num_kv_heads) + (h - H)) * D;
  // The angle pos * inv_freq as an exact sum hi + lo (two-product with fma): positions reach 1e5
  // and a rounded f32 product would be off by ~1e-2 rad; the CPU reference uses doubles.
  const float p = float(positions[t]), f = inv_freq[i];
  const float hi = p * f;
  const float lo = fma(p, f, -hi);
  const float c0 = cos(hi), s0 = sin(hi);
  const float c = c0 - s0 * lo, s = s0 + c0 * lo;
  const uint i0 = args.interleaved != 0 ? 2 * i : i;
  const uint i1 = args.interleaved != 0 ? 2 * i + 1 : i + half_rot;
  const float x0 = v[i0], x1 = v[i1];
  v[i0] = x0 * c - x1 * s;
  v[i1] = x0 * s + x1 * c;
}
