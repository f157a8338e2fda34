// Architecture name -> model factory. Every family in core/architecture.h is a variation of the
// shared decoder; a family whose graph differs gets its own Model class and a row here.
#include <functional>
#include <map>
#include <stdexcept>

#include "longbow/models/decoder.h"

namespace longbow::models {

namespace {
using Factory = std::function<std::unique_ptr<Model>(std::shared_ptr<const ModelFile>, Backend&,
                                                     const LoadOptions&)>;

std::unique_ptr<Model> make_decoder(std::shared_ptr<const ModelFile> file, Backend& backend,
                                    const LoadOptions& options) {
  return std::make_unique<Decoder>(std::move(file), backend, options);
}

const std::map<std::string, Factory>& factories() {
  static const std::map<std::string, Factory> table = {
      {"llama", make_decoder},  {"mistral", make_decoder}, {"qwen2", make_decoder},
      {"qwen3", make_decoder},  {"phi3", make_decoder},    {"gemma2", make_decoder},
      {"gemma3", make_decoder},
  };
  return table;
}
}  // namespace

std::unique_ptr<Model> create_model(std::shared_ptr<const ModelFile> file, Backend& backend,
                                    const LoadOptions& options) {
  if (!file) throw std::invalid_argument("[model] no model file");
  const std::string& arch = file->config().architecture;
  auto it = factories().find(arch);
  if (it == factories().end()) {
    throw std::invalid_argument("[model] " + file->path() + ": no model for architecture '" + arch +
                                "' (supported: " + arch_names() + ")");
  }
  return it->second(std::move(file), backend, options);
}

}  // namespace longbow::models
