// Builds one forward's flattened varlen Batch from sequences' tokens and block tables (used by
// the engine for the target model and by the draft-model proposer).
#pragma once

#include <span>
#include <vector>

#include "longbow/models/batch.h"

namespace longbow::engine {

class BatchBuilder {
 public:
  explicit BatchBuilder(int block_size) : block_size_(block_size) { batch_.query_start = {0}; }

  // Appends tokens `ids` of one sequence at positions [first_pos, first_pos + ids.size()); the
  // block table must hold them; `generated`: they are generated tokens, not prompt tokens (see
  // Batch::generated_seqs). Returns the batch index of the sequence's first new token.
  int add(std::span<const int> ids, int first_pos, const std::vector<int>& block_table,
          bool generated);
  // Asks for the logits of batch token `token_index`, `count` times (a row per fork sample).
  void add_logits_row(int token_index, int count = 1);
  // The batch, block tables padded to the longest table.
  Batch finish();

 private:
  int block_size_;
  Batch batch_;
  std::vector<const std::vector<int>*> tables_;
};

}  // namespace longbow::engine
