// longbow — the public C++ API for embedding the engine in native apps.
//
//   auto model = longbow::Model::load("SmolLM2-135M-Instruct.Q4_1.gguf");
//   longbow::Generator gen(model, {.backend = "cpu"});
//   gen.submit("r1", {1, 504, 2365}, {.max_tokens = 16});
//   while (gen.has_work())
//     for (const longbow::Token& t : gen.step()) std::printf("%s: %d\n", t.request_id.c_str(),
//     t.id);
//
// Errors: bad input throws std::invalid_argument; I/O or device failure std::runtime_error.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "longbow/engine_defaults.h"
#include "longbow/sampling_params.h"

namespace longbow {

class ModelFile;
namespace engine {
class Engine;
}

// Hyper-parameters a host app typically needs.
struct ModelInfo {
  std::string architecture;
  int vocab_size = 0, hidden_size = 0, num_layers = 0, num_heads = 0, num_kv_heads = 0;
  int max_position = 0;
  int bos_token_id = -1;
  std::vector<int> eos_token_ids;
};

// A memory-mapped model (GGUF file or Hugging Face folder), validated on load.
class Model {
 public:
  static std::shared_ptr<Model> load(const std::string& path);
  const ModelInfo& info() const { return info_; }
  const std::string& path() const { return path_; }

 private:
  friend class Generator;
  std::shared_ptr<const ModelFile> file_;
  ModelInfo info_;
  std::string path_;
};

struct GeneratorOptions {
  std::string backend = defaults::BACKEND;  // "cpu", "metal", "metal-sim" or "auto"
  int num_threads = 0;                      // 0 = all cores
  // "f16", "f32", or on the CPU "q8_0" / "q4_0" / "q4_1" (32-value groups with f16 scales; "q8"
  // and "q4" name q8_0 and q4_1): K and V; k_dtype / v_dtype, when set, choose one plane's type.
  std::string kv_dtype = defaults::KV_DTYPE;
  std::string k_dtype, v_dtype;
  bool kv_rotation = defaults::KV_ROTATION;  // Hadamard rotation of q and k (quantized K cache)
  int max_num_seqs = defaults::MAX_NUM_SEQS;
  int max_num_batched_tokens = defaults::MAX_NUM_BATCHED_TOKENS;
  int max_model_len = 0;  // 0 = the model's context length
  std::string quantize;   // "" or "q8_0" / "q4_0" / "q4_1": float weights quantized at load
  // Speculative decoding: "" (off), "ngram" (prompt lookup), "draft" (draft_model, a smaller
  // model with the same vocabulary) or "self" (float weights quantized to draft_quantize draft);
  // same output distribution, faster when drafts are accepted.
  std::string speculative;
  std::string draft_model;
  std::string draft_quantize = defaults::DRAFT_QUANTIZE;
  // Who runs the MLP block: "custom" (ours, default: a token's result never depends on the
  // batch), "auto" (per shape, the faster of ours and the vendor library's as measured on this
  // machine) or "vendor" (CPU: BLAS; Metal: MPSGraph; float weights only).
  std::string mlp = defaults::MLP;
  int num_speculative_tokens = defaults::NUM_SPECULATIVE_TOKENS;
};

// A request's sampling settings: the engine's SamplingParams (defaults and validation there).
using GenerationOptions = SamplingParams;

struct Token {
  std::string request_id;
  int id = -1;           // -1 when an aborted request is reported
  float logprob = 0.0f;  // log-softmax of the raw logits (before penalties and temperature)
  bool finished = false;
  std::string finish_reason;                        // "stop", "length", "abort" or ""
  std::vector<std::pair<int, float>> top_logprobs;  // (id, logprob), most likely first
};

// Continuous-batching generator over token ids: submit requests any time, step to advance all.
class Generator {
 public:
  Generator(std::shared_ptr<Model> model, const GeneratorOptions& options = {});
  ~Generator();
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  void submit(const std::string& request_id, const std::vector<int>& prompt_token_ids,
              const GenerationOptions& options = {});
  // One engine iteration: the tokens produced (one per running request that sampled).
  std::vector<Token> step();
  bool abort(const std::string& request_id);
  // Structured output: the tokens allowed for the next token of sample `sample_idx` of a request,
  // ceil(vocab_size / 32) words, bit t % 32 of word t / 32 set = token t allowed; applies to that
  // one token, then is cleared (set a fresh mask before each step). Throws std::invalid_argument
  // for an unknown request, a sample out of range or finished, or a malformed or empty mask.
  void set_allowed_tokens(const std::string& request_id, int sample_idx,
                          const std::vector<uint32_t>& mask);
  // Drops a pending mask; false if there was none.
  bool clear_allowed_tokens(const std::string& request_id, int sample_idx);
  bool has_work() const;
  // Runs one request to completion (other queued requests advance too); returns its token ids.
  std::vector<int> generate(const std::vector<int>& prompt_token_ids,
                            const GenerationOptions& options = {});

 private:
  std::shared_ptr<Model> model_;
  std::unique_ptr<engine::Engine> engine_;
  uint64_t next_id_ = 0;
};

// Backends compiled into this build and usable here.
std::vector<std::string> available_backends();

}  // namespace longbow
