#include "longbow/engine/block_manager.h"

#include <stdexcept>
#include <string>

namespace longbow::engine {

BlockManager::BlockManager(int num_blocks, int block_size)
    : num_blocks_(num_blocks), block_size_(block_size), ref_(num_blocks > 0 ? num_blocks : 0, 0) {
  if (num_blocks < 2) throw std::invalid_argument("[block_manager] need >= 2 blocks, got " + std::to_string(num_blocks));
  if (block_size <= 0) throw std::invalid_argument("[block_manager] block_size must be > 0");
  for (int b = 1; b < num_blocks; ++b) free_.push_back(b);
}

std::optional<std::vector<int>> BlockManager::allocate(int n) {
  if (n < 0) throw std::invalid_argument("[block_manager] negative block count");
  if (n > num_free()) return std::nullopt;
  std::vector<int> out(n);
  for (int i = 0; i < n; ++i) {
    out[i] = free_.front();
    free_.pop_front();
    ref_[out[i]] = 1;
  }
  return out;
}

bool BlockManager::ensure_capacity(std::vector<int>& table, int num_tokens) {
  const int need = blocks_for(num_tokens) - static_cast<int>(table.size());
  if (need <= 0) return true;
  auto fresh = allocate(need);
  if (!fresh) return false;
  table.insert(table.end(), fresh->begin(), fresh->end());
  return true;
}

void BlockManager::share(const std::vector<int>& blocks) {
  for (int b : blocks) {
    if (b <= 0 || b >= num_blocks_ || ref_[b] == 0) {
      throw std::logic_error("[block_manager] share of unowned block " + std::to_string(b));
    }
    ++ref_[b];
  }
}

void BlockManager::release(const std::vector<int>& blocks) {
  for (int b : blocks) {
    if (b <= 0 || b >= num_blocks_ || ref_[b] == 0) {
      throw std::logic_error("[block_manager] release of unowned block " + std::to_string(b));
    }
    if (--ref_[b] == 0) free_.push_back(b);
  }
}

int BlockManager::ref_count(int block_id) const {
  if (block_id < 0 || block_id >= num_blocks_) throw std::invalid_argument("[block_manager] block id out of range");
  return ref_[block_id];
}

}  // namespace longbow::engine
