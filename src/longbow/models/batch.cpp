#include "longbow/models/batch.h"

#include <stdexcept>
#include <string>
#include <type_traits>

#include "longbow/core/check.h"

namespace longbow {

namespace {
// Messages are strings or callables returning one: per-token checks build no text unless they fail.
constexpr Checker check{"batch"};
}  // namespace

void Batch::validate(int block_size, int num_blocks) const {
  const int T = num_tokens(), S = num_seqs();
  check(T > 0, "empty batch");
  check(positions.size() == token_ids.size(), [&] {
    return "positions has " + std::to_string(positions.size()) +
           " entries, expected num_tokens=" + std::to_string(T);
  });
  check(slot_mapping.size() == token_ids.size(), [&] {
    return "slot_mapping size " + std::to_string(slot_mapping.size()) + " != num_tokens " +
           std::to_string(T);
  });
  check(static_cast<int>(query_start.size()) == S + 1,
        "query_start must have num_seqs + 1 entries");
  check(static_cast<int>(generated_seqs.size()) == S, "generated_seqs must have num_seqs entries");
  for (int32_t g : generated_seqs) check(g == 0 || g == 1, "generated_seqs entries must be 0 or 1");
  check(query_start.front() == 0 && query_start.back() == T,
        "query_start must go from 0 to num_tokens");
  check(
      max_blocks_per_seq > 0 && block_tables.size() == static_cast<size_t>(S) * max_blocks_per_seq,
      "block_tables must be (num_seqs, max_blocks_per_seq)");
  for (int s = 0; s < S; ++s) {
    check(query_start[s] < query_start[s + 1],
          [&] { return "sequence " + std::to_string(s) + " has no tokens"; });
    check(seq_lens[s] >= query_start[s + 1] - query_start[s],
          [&] { return "seq_lens[" + std::to_string(s) + "] too small"; });
    check(seq_lens[s] <= max_blocks_per_seq * block_size, [&] {
      return "seq_lens[" + std::to_string(s) + "]=" + std::to_string(seq_lens[s]) +
             " exceeds its block table";
    });
    for (int t = query_start[s]; t < query_start[s + 1]; ++t) {
      check(positions[t] >= 0 && positions[t] < seq_lens[s],
            [&] { return "position out of range at token " + std::to_string(t); });
    }
  }
  for (int32_t b : block_tables) {
    check(b >= 0 && b < num_blocks,
          [&] { return "block id " + std::to_string(b) + " out of range"; });
  }
  for (int32_t s : slot_mapping) {
    check(s < num_blocks * block_size,
          [&] { return "slot " + std::to_string(s) + " out of range"; });
  }
  for (int32_t r : logits_rows) {
    check(r >= 0 && r < T, [&] { return "logits row " + std::to_string(r) + " out of range"; });
  }
}

}  // namespace longbow
