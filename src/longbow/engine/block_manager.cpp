#include "longbow/engine/block_manager.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace longbow::engine {

namespace {
// splitmix64 finalizer: a cheap, well-mixed 64-bit step.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
}  // namespace

BlockManager::BlockManager(int num_blocks, int block_size, bool enable_prefix_caching)
    : num_blocks_(num_blocks), block_size_(block_size), prefix_caching_(enable_prefix_caching) {
  if (num_blocks < 2) {
    throw std::invalid_argument("[block_manager] expected num_blocks >= 2, got " +
                                std::to_string(num_blocks));
  }
  if (block_size <= 0) {
    throw std::invalid_argument("[block_manager] expected block_size > 0, got " +
                                std::to_string(block_size));
  }
  ref_.assign(num_blocks, 0);
  free_pos_.resize(num_blocks);
  has_hash_.assign(num_blocks, 0);
  hash_.assign(num_blocks, 0);
  block_tokens_.resize(num_blocks);
  for (int b = 1; b < num_blocks; ++b) free_pos_[b] = free_.insert(free_.end(), b);
}

void BlockManager::check_id(int b, const char* what) const {
  if (b <= 0 || b >= num_blocks_ || ref_[b] == 0) {
    throw std::logic_error(std::string("[block_manager] ") + what +
                           ": expected an owned block in [1, " + std::to_string(num_blocks_) +
                           "), found " + std::to_string(b) +
                           (b > 0 && b < num_blocks_ ? " (free)" : " (out of range)"));
  }
}

void BlockManager::take_free(int b) {
  free_.erase(free_pos_[b]);
  free_pos_[b] = free_.end();
}

void BlockManager::evict(int b) {
  if (!has_hash_[b]) return;
  auto it = cached_.find(hash_[b]);
  if (it != cached_.end() && it->second == b) cached_.erase(it);
  has_hash_[b] = 0;
  block_tokens_[b].clear();
  ++num_evictions_;
}

std::optional<std::vector<int>> BlockManager::allocate(int n) {
  if (n < 0)
    throw std::invalid_argument("[block_manager] expected a block count >= 0, got " +
                                std::to_string(n));
  if (n > num_free()) return std::nullopt;
  std::vector<int> out(n);
  for (int i = 0; i < n; ++i) {
    const int b = free_.front();
    take_free(b);
    evict(b);
    ref_[b] = 1;
    out[i] = b;
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

bool BlockManager::prepare_write(std::vector<int>& table, int begin, int end,
                                 std::vector<std::pair<int, int>>& copies) {
  if (begin < 0 || end < begin) {
    throw std::invalid_argument(
        "[block_manager] prepare_write: expected 0 <= begin <= end, found [" +
        std::to_string(begin) + ", " + std::to_string(end) + ")");
  }
  if (begin == end) return true;
  const int have = static_cast<int>(table.size());
  const int last = std::min(blocks_for(end), have);  // existing blocks touched: [begin/bs, last)
  std::vector<int> shared;                           // table indices to copy
  for (int i = begin / block_size_; i < last; ++i) {
    check_id(table[i], "prepare_write");
    if (ref_[table[i]] > 1) shared.push_back(i);
  }
  const int grow = std::max(0, blocks_for(end) - have);
  auto fresh = allocate(static_cast<int>(shared.size()) + grow);
  if (!fresh) return false;
  size_t k = 0;
  for (int i : shared) {
    const int dst = (*fresh)[k++];
    copies.emplace_back(table[i], dst);
    --ref_[table[i]];  // still owned by the others (ref was > 1)
    table[i] = dst;
  }
  table.insert(table.end(), fresh->begin() + static_cast<long>(k), fresh->end());
  return true;
}

void BlockManager::share(const std::vector<int>& blocks) {
  for (int b : blocks) check_id(b, "share");
  for (int b : blocks) ++ref_[b];
}

void BlockManager::release(const std::vector<int>& blocks) {
  // Validate first so a bad call changes nothing (counting repeats within the list).
  std::unordered_map<int, int> drops;
  for (int b : blocks) {
    check_id(b, "release");
    if (++drops[b] > ref_[b]) {
      throw std::logic_error("[block_manager] release: block " + std::to_string(b) + " released " +
                             std::to_string(drops[b]) + " times but has " +
                             std::to_string(ref_[b]) + " owners");
    }
  }
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
    if (--ref_[*it] == 0) free_pos_[*it] = free_.insert(free_.end(), *it);
  }
}

void BlockManager::truncate(std::vector<int>& table, int num_tokens) {
  if (num_tokens < 0) {
    throw std::invalid_argument("[block_manager] truncate: expected num_tokens >= 0, found " +
                                std::to_string(num_tokens));
  }
  const size_t keep = static_cast<size_t>(blocks_for(num_tokens));
  if (table.size() <= keep) return;
  for (size_t i = keep; i < table.size(); ++i) check_id(table[i], "truncate");
  for (size_t i = table.size(); i-- > keep;) {
    const int b = table[i];
    if (--ref_[b] == 0) {
      free_pos_[b] = has_hash_[b] ? free_.insert(free_.end(), b) : free_.insert(free_.begin(), b);
    }
  }
  table.resize(keep);
}

int BlockManager::ref_count(int block_id) const {
  if (block_id < 0 || block_id >= num_blocks_) {
    throw std::invalid_argument("[block_manager] expected a block id in [0, " +
                                std::to_string(num_blocks_) + "), found " +
                                std::to_string(block_id));
  }
  return ref_[block_id];
}

uint64_t BlockManager::hash_block(uint64_t parent, const int* tokens, int n) {
  uint64_t h = mix(parent ^ 0x6c6f6e67626f77ull);
  for (int i = 0; i < n; ++i) h = mix(h ^ static_cast<uint32_t>(tokens[i]));
  return h == 0 ? 1 : h;  // 0 means "no parent"
}

std::vector<int> BlockManager::match_prefix(const std::vector<int>& tokens, int max_tokens) const {
  std::vector<int> out;
  if (!prefix_caching_) return out;
  const int n_full = std::min(static_cast<int>(tokens.size()), max_tokens) / block_size_;
  uint64_t parent = 0;
  for (int i = 0; i < n_full; ++i) {
    const int* t = tokens.data() + static_cast<size_t>(i) * block_size_;
    parent = hash_block(parent, t, block_size_);
    auto it = cached_.find(parent);
    if (it == cached_.end()) break;
    const std::vector<int>& stored = block_tokens_[it->second];
    if (!std::equal(stored.begin(), stored.end(), t)) break;  // a hash collision: treat as a miss
    out.push_back(it->second);
  }
  return out;
}

PrefixHit BlockManager::acquire_prefix(const std::vector<int>& tokens, int max_tokens) {
  PrefixHit hit;
  hit.blocks = match_prefix(tokens, max_tokens);
  for (int b : hit.blocks) {
    if (ref_[b] == 0) take_free(b);
    ++ref_[b];
    hit.hashes.push_back(hash_[b]);
  }
  return hit;
}

void BlockManager::cache_full_blocks(const std::vector<int>& table, const std::vector<int>& tokens,
                                     int num_computed, std::vector<uint64_t>& hashes) {
  if (!prefix_caching_) return;
  const int n_full = std::min({num_computed, static_cast<int>(tokens.size())}) / block_size_;
  if (n_full > static_cast<int>(table.size())) {
    throw std::logic_error("[block_manager] cache_full_blocks: " + std::to_string(n_full) +
                           " full blocks but the table has " + std::to_string(table.size()));
  }
  for (int i = static_cast<int>(hashes.size()); i < n_full; ++i) {
    const int* t = tokens.data() + static_cast<size_t>(i) * block_size_;
    const uint64_t h = hash_block(i == 0 ? 0 : hashes[i - 1], t, block_size_);
    hashes.push_back(h);
    const int b = table[i];
    check_id(b, "cache_full_blocks");
    if (has_hash_[b] || cached_.count(h)) continue;  // already cached (here or in a twin block)
    has_hash_[b] = 1;
    hash_[b] = h;
    block_tokens_[b].assign(t, t + block_size_);
    cached_[h] = b;
  }
}

std::optional<uint64_t> BlockManager::block_hash(int block_id) const {
  ref_count(block_id);  // range check
  if (!has_hash_[block_id]) return std::nullopt;
  return hash_[block_id];
}

int BlockManager::cached_block(uint64_t hash) const {
  auto it = cached_.find(hash);
  return it == cached_.end() ? -1 : it->second;
}

}  // namespace longbow::engine
