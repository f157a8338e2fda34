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

}  // namespace longbow::defaults
