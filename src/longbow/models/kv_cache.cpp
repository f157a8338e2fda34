#include "longbow/models/kv_cache.h"

#include <stdexcept>
#include <string>

#include "longbow/backend/op_checks.h"

namespace longbow {

size_t KvCacheLayout::block_bytes() const {
  return static_cast<size_t>(block_size) * num_kv_heads * kv_row_bytes(dtype, head_dim);
}

size_t KvCacheLayout::plane_bytes() const {
  return block_bytes() * static_cast<size_t>(num_blocks);
}

KvCache::KvCache(Backend& backend, const KvCacheLayout& layout) : layout_(layout) {
  check_kv_dtype(layout.dtype, layout.head_dim, "kv_cache");
  if (layout.num_blocks < 2 || layout.block_size <= 0) {
    throw std::invalid_argument(
        "[kv_cache] need at least 2 blocks (block 0 is the null block), found " +
        std::to_string(layout.num_blocks));
  }
  if (!backend.supports(Op::KvWrite, layout.dtype) ||
      !backend.supports(Op::Attention, layout.dtype)) {
    throw std::invalid_argument("[kv_cache] backend " + backend.name() + " does not support a " +
                                dtype_name(layout.dtype) + " KV cache");
  }
  plane_bytes_ = layout.plane_bytes();
  buffer_ = backend.alloc(layout.total_bytes());
}

}  // namespace longbow
