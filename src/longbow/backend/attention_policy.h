// The attention variant rule every backend follows, written once: which sequences of a batch run
// the decode path and which the prefill path, and the decode stage selected by the environment.
// The Metal kernels apply the same rule on the device (attn_is_decode in metal/attention_paged.h,
// with the same LONGBOW_ATTN_DECODE_MAX_QUERY from metal/kargs.h).
#pragma once

#include "longbow/backend/backend.h"

namespace longbow {

// Whether a sequence with num_query > 0 query tokens runs the decode kernels under `variant`:
// FusedDecode always, FlashPrefill never, Split never (it has one path), Auto when its queries
// are generated tokens (`generated`: a decode step, or a speculative verify step of any length, so
// each row is computed exactly as plain decoding computes it) or num_query <=
// LONGBOW_ATTN_DECODE_MAX_QUERY (prompt tokens).
bool attention_is_decode(AttentionVariant variant, int num_query, bool generated);

// LONGBOW_ATTN_DECODE_STAGE=1|2 (default 2): the decode kernels' roadmap stage (1: one pass per
// token, 2: flash-decoding key splits merged after); read once. `where` names the backend in the
// error for a bad value.
int attention_decode_stage(const char* where);

}  // namespace longbow
