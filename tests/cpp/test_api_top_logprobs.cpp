// The public C++ API reports top logprobs: runs one greedy request through longbow::Generator and
// prints, per generated token, "id logprob" then its (id logprob) top entries, one token a line.
// tests/test_native_api.py compares the lines with the Python API.
//
//   test_api_top_logprobs MODEL NUM_TOKENS TOP_K ID [ID ...]
//
// LONGBOW_TEST_SPECULATIVE=ngram|self runs it with speculative decoding (same output).
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include <longbow/longbow.h>

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s MODEL NUM_TOKENS TOP_K ID [ID ...]\n", argv[0]);
    return 2;
  }
  try {
    auto model = longbow::Model::load(argv[1]);
    longbow::GenerationOptions opts;
    opts.max_tokens = std::stoi(argv[2]);
    opts.top_logprobs = std::stoi(argv[3]);
    opts.ignore_eos = true;
    std::vector<int> prompt;
    for (int i = 4; i < argc; ++i) prompt.push_back(std::stoi(argv[i]));
    const char* spec = std::getenv("LONGBOW_TEST_SPECULATIVE");
    longbow::Generator gen(model, {.backend = "cpu",
                                   .num_threads = 2,
                                   .kv_dtype = "f16",
                                   .max_model_len = 256,
                                   .speculative = spec ? spec : ""});
    gen.submit("r", prompt, opts);
    while (gen.has_work()) {
      for (const longbow::Token& t : gen.step()) {
        if (t.id < 0) continue;
        std::printf("%d %.6f", t.id, t.logprob);
        for (const auto& [id, lp] : t.top_logprobs) std::printf(" %d %.6f", id, lp);
        std::printf("\n");
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
