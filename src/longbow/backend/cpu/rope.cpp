// Rotary position embedding (Su et al., RoFormer 2021), in place on q and k; interleaved pairs
// (GGUF) or rotate-half (HF) layouts, partial rotation when rot_dim < head_dim.
#include <cmath>
#include <string>

#include "longbow/backend/cpu/cpu_ops.h"

namespace longbow::cpu {

namespace {
constexpr double TWO_PI = 6.283185307179586476925286766559;
constexpr double INV_TWO_PI = 0.15915494309189533576888376337251;

void rotate_heads(float* x, int num_heads, int head_dim, int rot_dim, bool interleaved,
                  const float* cos_t, const float* sin_t) {
  const int half = rot_dim / 2;
  for (int h = 0; h < num_heads; ++h) {
    float* v = x + static_cast<size_t>(h) * head_dim;
    for (int i = 0; i < half; ++i) {
      const int i0 = interleaved ? 2 * i : i;
      const int i1 = interleaved ? 2 * i + 1 : i + half;
      const float x0 = v[i0], x1 = v[i1];
      v[i0] = x0 * cos_t[i] - x1 * sin_t[i];
      v[i1] = x0 * sin_t[i] + x1 * cos_t[i];
    }
  }
}
}  // namespace

void op_rope(Ctx& c, const RopeArgs& a) {
  const char* where = "cpu.rope";
  require(a.num_tokens >= 0 && a.num_heads >= 0 && a.num_kv_heads >= 0 && a.head_dim > 0, where,
          "expected non-negative sizes and head_dim > 0");
  require(a.rot_dim > 0 && a.rot_dim % 2 == 0 && a.rot_dim <= a.head_dim, where, [&] {
    return "expected an even rot_dim in (0, head_dim=" + std::to_string(a.head_dim) + "], found " +
           std::to_string(a.rot_dim);
  });
  const size_t T = a.num_tokens, D = a.head_dim;
  float* q =
      view_as<float>(a.q, T * a.num_heads * D, where, "q");  // (num_tokens, num_heads, head_dim)
  float* k = view_as<float>(a.k, T * a.num_kv_heads * D, where,
                            "k");  // (num_tokens, num_kv_heads, head_dim)
  const int32_t* pos = view_as<const int32_t>(a.positions, T, where, "positions");  // (num_tokens,)
  const float* inv_freq =
      view_as<const float>(a.inv_freq, a.rot_dim / 2, where, "inv_freq");  // (rot_dim/2,)
  const int half = a.rot_dim / 2;
  c.scratch.ensure(c.pool.num_threads(), static_cast<size_t>(a.rot_dim));
  c.pool.parallel_for(a.num_tokens, [&](int64_t b, int64_t e, int thread_idx) {
    float* cos_t = c.scratch.f32[thread_idx].data();  // (rot_dim/2,)
    float* sin_t = cos_t + half;                      // (rot_dim/2,)
    for (int64_t t = b; t < e; ++t) {
      for (int i = 0; i < half; ++i) {
        // The angle in double (positions reach 10^5 and f32 would lose ~1e-2 rad), reduced to
        // [-pi, pi] in double; sin/cos of the reduced angle in f32 (abs error ~3e-7).
        const double theta = static_cast<double>(pos[t]) * static_cast<double>(inv_freq[i]);
        const float r = static_cast<float>(theta - TWO_PI * std::nearbyint(theta * INV_TWO_PI));
        cos_t[i] = std::cos(r);
        sin_t[i] = std::sin(r);
      }
      rotate_heads(q + t * a.num_heads * D, a.num_heads, a.head_dim, a.rot_dim, a.interleaved,
                   cos_t, sin_t);
      rotate_heads(k + t * a.num_kv_heads * D, a.num_kv_heads, a.head_dim, a.rot_dim, a.interleaved,
                   cos_t, sin_t);
    }
  });
}

}  // namespace longbow::cpu
