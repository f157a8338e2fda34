// Paged KV block allocator: a fixed pool, block 0 reserved as the null block, reference
// counts, and a free queue in LRU order (freed blocks go to the back, allocation takes the front).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

namespace longbow::engine {

class BlockManager {
 public:
  // num_blocks includes the null block 0; blocks 1..num_blocks-1 are usable.
  BlockManager(int num_blocks, int block_size);

  int block_size() const { return block_size_; }
  int num_blocks() const { return num_blocks_; }
  int num_free() const { return static_cast<int>(free_.size()); }
  int num_used() const { return num_blocks_ - 1 - num_free(); }
  // Blocks needed to hold num_tokens tokens.
  int blocks_for(int num_tokens) const { return (num_tokens + block_size_ - 1) / block_size_; }

  // n fresh blocks with reference count 1, or nullopt (nothing changes) when fewer are free.
  std::optional<std::vector<int>> allocate(int n);
  // Grows `table` so it can hold num_tokens tokens; false (table unchanged) if blocks ran out.
  bool ensure_capacity(std::vector<int>& table, int num_tokens);
  // Another owner for each block (e.g. a forked sequence).
  void share(const std::vector<int>& blocks);
  // Drops one reference of each block; blocks reaching zero go to the back of the free queue.
  // Throws std::logic_error on a double free or an out-of-range id.
  void release(const std::vector<int>& blocks);
  int ref_count(int block_id) const;
  // Free queue order, front first (for tests).
  std::vector<int> free_queue() const { return {free_.begin(), free_.end()}; }

 private:
  int num_blocks_, block_size_;
  std::vector<int> ref_;
  std::deque<int> free_;
};

}  // namespace longbow::engine
