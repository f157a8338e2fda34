// One engine step's flattened variable-length batch (DESIGN.md §2), host side.
#pragma once

#include <cstdint>
#include <vector>

namespace longbow {

struct Batch {
  std::vector<int32_t> token_ids;    // (num_tokens,)
  std::vector<int32_t> positions;    // (num_tokens,)
  std::vector<int32_t> query_start;  // (num_seqs + 1,)
  std::vector<int32_t> seq_lens;     // (num_seqs,) context length after this step
  // (num_seqs,) 1: the sequence's tokens are generated ones (a decode or verify step), 0: prompt
  // tokens (AttentionArgs::generated_seqs).
  std::vector<int32_t> generated_seqs;
  std::vector<int32_t> block_tables;  // (num_seqs, max_blocks_per_seq), 0-padded (block 0 is null)
  std::vector<int32_t> slot_mapping;  // (num_tokens,)
  std::vector<int32_t> logits_rows;   // (num_rows,) token indices whose logits are needed
  int max_blocks_per_seq = 0;

  int num_tokens() const { return static_cast<int>(token_ids.size()); }
  int num_seqs() const { return static_cast<int>(seq_lens.size()); }
  int num_rows() const { return static_cast<int>(logits_rows.size()); }
  // Throws std::invalid_argument when the fields are inconsistent (sizes, ranges, ordering).
  void validate(int block_size, int num_blocks) const;
};

}  // namespace longbow
