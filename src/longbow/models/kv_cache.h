// Paged KV cache storage: one device buffer holding every layer's K and V block pools.
#pragma once

#include <memory>

#include "longbow/backend/backend.h"

namespace longbow {

struct KvCacheLayout {
  int num_layers = 0, num_blocks = 0, block_size = 16, num_kv_heads = 0, head_dim = 0;
  DType k_dtype = DType::F16, v_dtype = DType::F16;  // chosen independently
  // Bytes of one block of a plane in type t: block_size * num_kv_heads rows of head_dim values
  // (kv_row_bytes: block types store 32-value groups with their scales).
  size_t block_bytes(DType t) const;
  size_t k_block_bytes() const { return block_bytes(k_dtype); }
  size_t v_block_bytes() const { return block_bytes(v_dtype); }
  // Bytes of one layer's K pool / V pool: num_blocks blocks.
  size_t k_plane_bytes() const { return k_block_bytes() * static_cast<size_t>(num_blocks); }
  size_t v_plane_bytes() const { return v_block_bytes() * static_cast<size_t>(num_blocks); }
  // Bytes of one block in every layer's K and V planes (what a block of the pool costs).
  size_t bytes_per_block() const {
    return (k_block_bytes() + v_block_bytes()) * static_cast<size_t>(num_layers);
  }
  size_t total_bytes() const { return bytes_per_block() * static_cast<size_t>(num_blocks); }
};

class KvCache {
 public:
  // Every layer's K plane (num_layers, num_blocks, block_size, num_kv_heads, head_dim) in
  // layout.k_dtype, then every layer's V plane likewise in layout.v_dtype: the K planes and the V
  // planes are each one run of equal planes (copy_blocks copies each run in one call).
  KvCache(Backend& backend, const KvCacheLayout& layout);
  const KvCacheLayout& layout() const { return layout_; }
  BufView keys(int layer) const {
    return {buffer_.get(), layout_.k_plane_bytes() * static_cast<size_t>(layer)};
  }
  BufView values(int layer) const {
    return {buffer_.get(), v_offset() + layout_.v_plane_bytes() * static_cast<size_t>(layer)};
  }
  BufView all_keys() const { return {buffer_.get(), 0}; }
  BufView all_values() const { return {buffer_.get(), v_offset()}; }

 private:
  size_t v_offset() const {
    return layout_.k_plane_bytes() * static_cast<size_t>(layout_.num_layers);
  }

  KvCacheLayout layout_;
  std::unique_ptr<Buffer> buffer_;
};

}  // namespace longbow
