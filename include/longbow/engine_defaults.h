// Engine settings' defaults, in one place: the engine's EngineConfig, the public C++ API's
// GeneratorOptions and the Python bindings (hence LLM, the CLI and the server) all take them
// from here.
#pragma once

#include <cstddef>

namespace longbow::defaults {

inline constexpr const char* BACKEND = "cpu";
inline constexpr const char* KV_DTYPE = "f16";
inline constexpr int MAX_NUM_SEQS = 64;             // sequences in one step
inline constexpr int MAX_NUM_BATCHED_TOKENS = 512;  // tokens in one step (prefill chunk budget)
inline constexpr size_t KV_CACHE_BYTES = size_t{256} << 20;  // KV pool when num_blocks is not given

// Speculative decoding.
inline constexpr int NUM_SPECULATIVE_TOKENS = 4;  // most draft tokens per step (k adapts below it)
inline constexpr int NGRAM_MIN = 2;               // prompt lookup: shortest n-gram matched
inline constexpr int NGRAM_MAX = 4;               // and longest
inline constexpr int SPECULATIVE_MAX_BATCH = 8;   // running sequences above which none speculates
inline constexpr const char* DRAFT_QUANTIZE =
    "q4_1";  // weights of the self-draft (speculative "self")

}  // namespace longbow::defaults
