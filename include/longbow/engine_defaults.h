// Engine settings' defaults, in one place: the engine's EngineConfig, the public C++ API's
// GeneratorOptions and the Python bindings (hence LLM, the CLI and the server) all take them
// from here.
#pragma once

#include <cstddef>

namespace longbow::defaults {

inline constexpr const char* BACKEND = "cpu";
inline constexpr const char* KV_DTYPE = "f16";
inline constexpr bool KV_ROTATION = false;  // Hadamard rotation of q and k per head (kv_rotation)
inline constexpr int MAX_NUM_SEQS = 64;     // sequences in one step
inline constexpr int MAX_NUM_BATCHED_TOKENS = 512;  // tokens in one step (prefill chunk budget)
inline constexpr size_t KV_CACHE_BYTES = size_t{256} << 20;  // KV pool when num_blocks is not given

// Speculative decoding.
inline constexpr int NUM_SPECULATIVE_TOKENS = 4;  // most draft tokens per step (k adapts below it)
inline constexpr int NGRAM_MIN = 2;               // prompt lookup: shortest n-gram matched
inline constexpr int NGRAM_MAX = 4;               // and longest
// Running sequences above which none speculates: measured on the CPU with
// bench/bench_speculative.py (aggregate tok/s on vs off, 2 threads, two runs: n-gram 1.37-1.45x at
// 1, 1.23x at 2, 1.29x at 3, 0.94-0.95x at 4, 0.82-0.85x at 16; self-draft F16 1.30-1.51x,
// 1.25x, 1.12x, 0.90-1.00x, 0.71x).
inline constexpr int SPECULATIVE_MAX_BATCH = 3;
// Who runs the MLP block: "custom" (ours). Every token's result is then the same bits whatever the
// batch (batched = single, speculative verify = plain decoding); "auto" may switch to the vendor
// library by token count, trading that for speed where the vendor measures faster.
inline constexpr const char* MLP = "custom";
inline constexpr const char* DRAFT_QUANTIZE =
    "q4_1";  // weights of the self-draft (speculative "self")

}  // namespace longbow::defaults
