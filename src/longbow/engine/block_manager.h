// Paged KV block allocator: a fixed pool, block 0 reserved as the null block, reference
// counts, a free queue in LRU order (freed blocks go to the back, allocation takes the front),
// prefix caching by chained hashes of full blocks, and copy-on-write of shared blocks.
//
// Prefix caching (vLLM v1's scheme): once a block is full and its K/V computed, it is registered
// under hash(parent block hash, its token ids). A freed block keeps its hash and stays
// reusable while it sits in the free queue; it is evicted (hash dropped) only when the
// allocator hands it out again. A new request whose tokens start with cached blocks takes them
// (ref count +1, out of the free queue if free) and computes only the rest.
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

namespace longbow::engine {

struct PrefixHit {
  std::vector<int> blocks;       // cached blocks taken, in table order
  std::vector<uint64_t> hashes;  // their chained hashes
};

class BlockManager {
 public:
  // num_blocks includes the null block 0; blocks 1..num_blocks-1 are usable.
  BlockManager(int num_blocks, int block_size, bool enable_prefix_caching = true);

  int block_size() const { return block_size_; }
  int num_blocks() const { return num_blocks_; }
  bool prefix_caching() const { return prefix_caching_; }
  int num_free() const { return static_cast<int>(free_.size()); }
  int num_used() const { return num_blocks_ - 1 - num_free(); }
  // Blocks needed to hold num_tokens tokens.
  int blocks_for(int num_tokens) const { return (num_tokens + block_size_ - 1) / block_size_; }

  // n fresh blocks with reference count 1, or nullopt (nothing changes) when fewer are free.
  // A block taken from the free queue loses its cached hash (eviction).
  std::optional<std::vector<int>> allocate(int n);
  // Grows `table` so it can hold num_tokens tokens; false (table unchanged) if blocks ran out.
  bool ensure_capacity(std::vector<int>& table, int num_tokens);
  // Makes positions [begin, end) of a sequence writable: grows the table to hold `end` tokens
  // and replaces every shared block (ref > 1) in that range by a fresh copy, appending the
  // (src, dst) pairs the device must copy before the write to `copies`. False (nothing
  // changed) when the pool cannot supply the blocks.
  bool prepare_write(std::vector<int>& table, int begin, int end,
                     std::vector<std::pair<int, int>>& copies);
  // Another owner for each block (a forked sequence).
  void share(const std::vector<int>& blocks);
  // Drops one reference of each block, last block first (so a sequence's tail is evicted
  // before its head); blocks reaching zero go to the back of the free queue, keeping their hash.
  // Throws std::logic_error on a double free or an out-of-range id.
  void release(const std::vector<int>& blocks);
  // Shrinks `table` to the blocks that hold num_tokens tokens and drops one reference of each
  // block after them (the rejected tail of a speculative step); a block reaching zero without a
  // cached hash goes to the front of the free queue (reused first, before cached blocks).
  void truncate(std::vector<int>& table, int num_tokens);
  int ref_count(int block_id) const;
  // Free queue order, front first (for tests).
  std::vector<int> free_queue() const { return {free_.begin(), free_.end()}; }

  // ---- prefix caching ----
  // Chained hash of one block's tokens given the previous block's hash (0 for the first).
  static uint64_t hash_block(uint64_t parent, const int* tokens, int n);
  // The cached blocks that `tokens` starts with, limited to max_tokens tokens; read only.
  std::vector<int> match_prefix(const std::vector<int>& tokens, int max_tokens) const;
  // Takes the blocks of match_prefix (ref +1, out of the free queue when free).
  PrefixHit acquire_prefix(const std::vector<int>& tokens, int max_tokens);
  // Registers the full, computed blocks of a sequence not yet registered; `hashes` holds the
  // chained hashes of the sequence's blocks registered so far and is extended.
  void cache_full_blocks(const std::vector<int>& table, const std::vector<int>& tokens,
                         int num_computed, std::vector<uint64_t>& hashes);
  // Hash of a cached block, nullopt when the block is not cached.
  std::optional<uint64_t> block_hash(int block_id) const;
  // Cached block of a hash, or -1.
  int cached_block(uint64_t hash) const;
  int num_cached() const { return static_cast<int>(cached_.size()); }
  uint64_t num_evictions() const { return num_evictions_; }

 private:
  void check_id(int b, const char* what) const;
  void take_free(int b);  // removes a free block from the free queue
  void evict(int b);

  int num_blocks_, block_size_;
  bool prefix_caching_;
  std::vector<int> ref_;
  std::list<int> free_;                             // LRU: front is reused first
  std::vector<std::list<int>::iterator> free_pos_;  // (num_blocks,) position in free_ when ref == 0
  std::vector<uint8_t> has_hash_;                   // (num_blocks,)
  std::vector<uint64_t> hash_;                      // (num_blocks,)
  std::vector<std::vector<int>> block_tokens_;  // (num_blocks, block_size) tokens of cached blocks
  std::unordered_map<uint64_t, int> cached_;    // hash -> block id
  uint64_t num_evictions_ = 0;
};

}  // namespace longbow::engine
