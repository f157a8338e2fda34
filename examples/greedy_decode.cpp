// Example: embed longbow in a native app. Loads a GGUF (or HF folder) and decodes greedily from
// token ids given on the command line, printing the generated ids.
//
//   greedy_decode MODEL NUM_TOKENS ID [ID ...]
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include <longbow/longbow.h>

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s MODEL NUM_TOKENS ID [ID ...]\n", argv[0]);
    return 2;
  }
  try {
    auto model = longbow::Model::load(argv[1]);
    longbow::GenerationOptions opts;
    opts.max_tokens = std::stoi(argv[2]);
    opts.ignore_eos = true;
    std::vector<int> prompt;
    for (int i = 3; i < argc; ++i) prompt.push_back(std::stoi(argv[i]));

    longbow::Generator gen(model, {.backend = "cpu", .num_threads = 0, .kv_dtype = "f16"});
    for (int id : gen.generate(prompt, opts)) std::printf("%d ", id);
    std::printf("\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
