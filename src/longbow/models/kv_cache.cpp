#include "longbow/models/kv_cache.h"

#include <stdexcept>
#include <string>

#include "longbow/backend/op_checks.h"

namespace longbow {

size_t KvCacheLayout::block_bytes(DType t) const {
  return static_cast<size_t>(block_size) * num_kv_heads * kv_row_bytes(t, head_dim);
}

KvCache::KvCache(Backend& backend, const KvCacheLayout& layout) : layout_(layout) {
  check_kv_dtype(layout.k_dtype, layout.head_dim, "kv_cache k_dtype");
  check_kv_dtype(layout.v_dtype, layout.head_dim, "kv_cache v_dtype");
  if (layout.num_blocks < 2 || layout.block_size <= 0) {
    throw std::invalid_argument(
        "[kv_cache] need at least 2 blocks (block 0 is the null block), found " +
        std::to_string(layout.num_blocks));
  }
  if (!backend.supports_kv_cache(layout.k_dtype, layout.v_dtype)) {
    const std::string k = dtype_name(layout.k_dtype), v = dtype_name(layout.v_dtype);
    throw std::invalid_argument("[kv_cache] backend " + backend.name() + " does not support a " +
                                (k == v ? k : k + " K / " + v + " V") + " KV cache");
  }
  buffer_ = backend.alloc(layout.total_bytes());
}

}  // namespace longbow
