// Paged KV cache maintenance: kv_write (new K/V rows into their slots, quantized for the block
// types) and copy_blocks (CoW).
#include <cstring>
#include <string>

#include "longbow/backend/cpu/cpu_ops.h"
#include "longbow/backend/cpu/elementwise_kernels.h"
#include "longbow/backend/op_checks.h"
#include "longbow/core/quantize.h"

namespace longbow::cpu {

void op_kv_write(Ctx& c, const KvWriteArgs& a) {
  const char* where = "cpu.kv_write";
  require(a.num_tokens >= 0 && a.num_kv_heads > 0 && a.head_dim > 0 && a.num_slots >= 0, where,
          "expected num_tokens >= 0, num_kv_heads > 0, head_dim > 0, num_slots >= 0");
  check_kv_dtype(a.k_dtype, a.head_dim, std::string(where) + " k_cache");
  check_kv_dtype(a.v_dtype, a.head_dim, std::string(where) + " v_cache");
  const size_t D = a.head_dim, H = a.num_kv_heads;
  const size_t row = H * D;  // values per slot
  // Bytes per slot of each plane.
  const size_t k_slot_bytes = H * kv_row_bytes(a.k_dtype, a.head_dim),
               v_slot_bytes = H * kv_row_bytes(a.v_dtype, a.head_dim);
  const float* k = view_as<const float>(a.k, a.num_tokens * row, where,
                                        "k");  // (num_tokens, num_kv_heads, head_dim)
  const float* v = view_as<const float>(a.v, a.num_tokens * row, where,
                                        "v");  // (num_tokens, num_kv_heads, head_dim)
  // (num_slots, num_kv_heads, head_dim) in k_dtype / v_dtype, slots = num_blocks * block_size
  auto* kc =
      static_cast<uint8_t*>(view_ptr(a.k_cache, a.num_slots * k_slot_bytes, where, "k_cache"));
  auto* vc =
      static_cast<uint8_t*>(view_ptr(a.v_cache, a.num_slots * v_slot_bytes, where, "v_cache"));
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
  // One slot's rows in type t: f16 / f32 as they are; block types quantized per (token, kv head)
  // row.
  auto store = [&](DType t, const float* src, uint8_t* dst) {
    if (t == DType::F16) {
      kern.to_f16(src, reinterpret_cast<uint16_t*>(dst), static_cast<int64_t>(row));
    } else if (t == DType::F32) {
      std::memcpy(dst, src, row * sizeof(float));
    } else {
      const size_t rb = kv_row_bytes(t, a.head_dim);
      for (size_t h = 0; h < H; ++h)
        quantize_row(src + h * D, static_cast<int64_t>(D), t, dst + h * rb);
    }
  };
  c.pool.parallel_for(a.num_tokens, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) {
      if (slots[i] < 0) continue;  // padding token: nothing to store
      const auto slot = static_cast<size_t>(slots[i]);
      store(a.k_dtype, k + i * row, kc + slot * k_slot_bytes);
      store(a.v_dtype, v + i * row, vc + slot * v_slot_bytes);
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
