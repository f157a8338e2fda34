// The sample op's per-row parameters for a sequence's next tokens, shared by the engine (target
// rows) and the draft-model proposer (draft rows), so a draft samples under the request's exact
// filters, penalties and banned ids.
#pragma once

#include <cstdint>
#include <vector>

#include "longbow/backend/backend.h"
#include "longbow/engine/sequence.h"

namespace longbow::engine {

// Appends to `out` the ids the sampler must not draw for generated token number `num_generated`
// (from 1) of seq: its stop and end-of-sequence ids while fewer than min_tokens are generated.
void append_banned_ids(const Sequence& seq, int num_generated, const std::vector<int>& eos_ids,
                       int vocab_size, std::vector<int32_t>& out);

// The row that samples generated token seq.num_generated() + j, i.e. after seq's tokens and its
// draft tokens 0..j-1 (j = 0: the next token): the request's filters and Philox key, counter
// num_generated + j, stream TOKEN; its penalty and banned-id slices are appended to `tokens`.
SampleRowParams sample_row_params(const Sequence& seq, int j, const std::vector<int>& eos_ids,
                                  int vocab_size, std::vector<int32_t>& tokens);

// Gives `p`, the row sampling seq's next token, seq's allowed-token mask if it has one: appends
// its words to `masks` ((rows, mask_words) u32) and sets p.mask_row. The row's banned ids (in
// `tokens`) yield to the mask when they would leave no allowed token (e.g. a grammar that must end
// before min_tokens): the row then drops its bans.
void add_mask_row(const Sequence& seq, const std::vector<int32_t>& tokens, SampleRowParams& p,
                  std::vector<uint32_t>& masks);

}  // namespace longbow::engine
