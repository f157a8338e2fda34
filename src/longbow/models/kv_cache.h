// Paged KV cache storage: one device buffer holding every layer's K and V block pools.
#pragma once

#include <memory>

#include "longbow/backend/backend.h"

namespace longbow {

struct KvCacheLayout {
  int num_layers = 0, num_blocks = 0, block_size = 16, num_kv_heads = 0, head_dim = 0;
  DType dtype = DType::F16;
  // Bytes of one block in one plane: block_size * num_kv_heads rows of head_dim values
  // (kv_row_bytes: block types store 32-value groups with their scales).
  size_t block_bytes() const;
  // Bytes of one plane (one layer's K or V pool): num_blocks * block_bytes.
  size_t plane_bytes() const;
  size_t total_bytes() const { return plane_bytes() * 2 * static_cast<size_t>(num_layers); }
};

class KvCache {
 public:
  // (num_layers, 2, num_blocks, block_size, num_kv_heads, head_dim) in layout.dtype.
  KvCache(Backend& backend, const KvCacheLayout& layout);
  const KvCacheLayout& layout() const { return layout_; }
  BufView keys(int layer) const {
    return {buffer_.get(), plane_bytes_ * (2 * static_cast<size_t>(layer))};
  }
  BufView values(int layer) const {
    return {buffer_.get(), plane_bytes_ * (2 * static_cast<size_t>(layer) + 1)};
  }
  BufView all() const { return {buffer_.get(), 0}; }

 private:
  KvCacheLayout layout_;
  size_t plane_bytes_ = 0;
  std::unique_ptr<Buffer> buffer_;
};

}  // namespace longbow
