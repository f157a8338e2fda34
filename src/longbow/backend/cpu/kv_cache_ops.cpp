// Paged KV cache maintenance: kv_write (new K/V rows into their slots) and copy_blocks (CoW).
#include <cstring>
#include <string>

#include "longbow/backend/cpu/cpu_ops.h"
#include "longbow/backend/cpu/elementwise_kernels.h"

namespace longbow::cpu {

void op_kv_write(Ctx& c, const KvWriteArgs& a) {
  const char* where = "cpu.kv_write";
  require(a.num_tokens >= 0 && a.num_kv_heads > 0 && a.head_dim > 0 && a.num_slots >= 0, where,
          "expected num_tokens >= 0, num_kv_heads > 0, head_dim > 0, num_slots >= 0");
  const bool f16 = a.cache_dtype == DType::F16;
  require(f16 || a.cache_dtype == DType::F32, where, [&] {
    return std::string("expected cache dtype f32 or f16, found ") + dtype_name(a.cache_dtype);
  });
  const size_t row = static_cast<size_t>(a.num_kv_heads) * a.head_dim;  // elements per slot
  const size_t esize = f16 ? 2 : 4;
  const float* k = view_as<const float>(a.k, a.num_tokens * row, where,
                                        "k");  // (num_tokens, num_kv_heads, head_dim)
  const float* v = view_as<const float>(a.v, a.num_tokens * row, where,
                                        "v");  // (num_tokens, num_kv_heads, head_dim)
  // (num_slots, num_kv_heads, head_dim) cache_dtype, slots = num_blocks * block_size
  auto* kc =
      static_cast<uint8_t*>(view_ptr(a.k_cache, a.num_slots * row * esize, where, "k_cache"));
  auto* vc =
      static_cast<uint8_t*>(view_ptr(a.v_cache, a.num_slots * row * esize, where, "v_cache"));
  const int32_t* slots =
      view_as<const int32_t>(a.slot_mapping, a.num_tokens, where, "slot_mapping");  // (num_tokens,)
  for (int t = 0; t < a.num_tokens; ++t) {
    require(slots[t] < a.num_slots, where, [&] {
      return "slot_mapping[" + std::to_string(t) +
             "]: expected < num_slots=" + std::to_string(a.num_slots) +
             " (or < 0 to skip), found " + std::to_string(slots[t]);
    });
  }
  const EltKernels& kern = elt_kernels();
  c.pool.parallel_for(a.num_tokens, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) {
      if (slots[t] < 0) continue;  // padding token: nothing to store
      const size_t dst = static_cast<size_t>(slots[t]) * row;
      const float* ks = k + t * row;
      const float* vs = v + t * row;
      if (f16) {
        kern.to_f16(ks, reinterpret_cast<uint16_t*>(kc) + dst, static_cast<int64_t>(row));
        kern.to_f16(vs, reinterpret_cast<uint16_t*>(vc) + dst, static_cast<int64_t>(row));
      } else {
        std::memcpy(reinterpret_cast<float*>(kc) + dst, ks, row * sizeof(float));
        std::memcpy(reinterpret_cast<float*>(vc) + dst, vs, row * sizeof(float));
      }
    }
  });
}

void op_copy_blocks(Ctx& c, const CopyBlocksArgs& a) {
  const char* where = "cpu.copy_blocks";
  require(a.num_pairs >= 0 && a.num_planes >= 0 && a.num_blocks >= 0, where,
          "expected non-negative sizes");
  const size_t plane_bytes = static_cast<size_t>(a.num_blocks) * a.block_bytes;
  // (num_planes, num_blocks, block_bytes)
  auto* cache =
      static_cast<uint8_t*>(view_ptr(a.cache, a.num_planes * plane_bytes, where, "cache"));
  const int32_t* pairs = view_as<const int32_t>(a.pairs, 2 * static_cast<size_t>(a.num_pairs),
                                                where, "pairs");  // (num_pairs, 2)
  for (int i = 0; i < 2 * a.num_pairs; ++i) {
    require(pairs[i] >= 0 && pairs[i] < a.num_blocks, where, [&] {
      return "pairs[" + std::to_string(i / 2) + "]: expected block ids in [0, " +
             std::to_string(a.num_blocks) + "), found " + std::to_string(pairs[i]);
    });
  }
  c.pool.parallel_for(a.num_planes, [&](int64_t b, int64_t e, int) {
    for (int64_t p = b; p < e; ++p) {
      uint8_t* plane = cache + p * plane_bytes;
      for (int i = 0; i < a.num_pairs; ++i) {
        const int src = pairs[2 * i], dst = pairs[2 * i + 1];
        if (src != dst)
          std::memcpy(plane + dst * a.block_bytes, plane + src * a.block_bytes, a.block_bytes);
      }
    }
  });
}

}  // namespace longbow::cpu
