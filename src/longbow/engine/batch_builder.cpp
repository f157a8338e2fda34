#include "longbow/engine/batch_builder.h"

#include <algorithm>

namespace longbow::engine {

int BatchBuilder::add(std::span<const int> ids, int first_pos, const std::vector<int>& table,
                      bool generated) {
  const int start = batch_.num_tokens();
  for (size_t i = 0; i < ids.size(); ++i) {
    const int p = first_pos + static_cast<int>(i);
    batch_.token_ids.push_back(ids[i]);
    batch_.positions.push_back(p);
    batch_.slot_mapping.push_back(table[p / block_size_] * block_size_ + p % block_size_);
  }
  batch_.query_start.push_back(batch_.num_tokens());
  batch_.seq_lens.push_back(first_pos + static_cast<int>(ids.size()));
  batch_.generated_seqs.push_back(generated ? 1 : 0);
  tables_.push_back(&table);
  return start;
}

void BatchBuilder::add_logits_row(int token_index, int count) {
  for (int r = 0; r < count; ++r) batch_.logits_rows.push_back(token_index);
}

Batch BatchBuilder::finish() {
  batch_.max_blocks_per_seq = 1;
  for (const auto* t : tables_) {
    batch_.max_blocks_per_seq = std::max(batch_.max_blocks_per_seq, static_cast<int>(t->size()));
  }
  batch_.block_tables.assign(tables_.size() * static_cast<size_t>(batch_.max_blocks_per_seq), 0);
  for (size_t s = 0; s < tables_.size(); ++s) {
    std::copy(tables_[s]->begin(), tables_[s]->end(),
              batch_.block_tables.begin() + static_cast<long>(s * batch_.max_blocks_per_seq));
  }
  return std::move(batch_);
}

}  // namespace longbow::engine
