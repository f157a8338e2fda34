// safetensors reader: one file, a folder with model.safetensors, or a sharded folder with
// model.safetensors.index.json. Tensor names are mapped to canonical GGUF-style names and the
// config comes from config.json (+ generation_config.json) beside the weights.
#pragma once

#include <string>
#include <vector>

#include "longbow/core/file_map.h"
#include "longbow/core/json.h"
#include "longbow/core/model_file.h"

namespace longbow {

class SafetensorsModel final : public ModelFile {
 public:
  // Throws std::invalid_argument "[safetensors] <file>: ..." for malformed content.
  explicit SafetensorsModel(const std::string& path);
  std::string format() const override { return "safetensors"; }
  std::string path() const override { return path_; }
  void drop_pages(const TensorInfo& t) const override {
    for (const FileMap& m : maps_) {
      if (m.drop_pages(t.data, t.bytes)) return;
    }
  }

 private:
  // Maps one .safetensors file, validates its header and appends its tensors.
  // `expected` (sharded case) lists the source names the index assigns to this shard.
  void add_file(const std::string& file, const std::vector<std::string>* expected);
  void add_tensor(TensorInfo t);
  std::string path_;  // the folder (or the single file given)
  std::string arch_;  // registry name, from config.json (tensor names depend on it)
  std::vector<FileMap> maps_;
};

// ModelConfig from an HF config.json (+ generation_config.json in `dir` when present). Refuses
// keys that are not understood. Does not call validate().
ModelConfig config_from_hf(const std::string& dir);

// Reads a whole small text file (config/index JSON); std::invalid_argument if missing.
std::string read_text_file(const std::string& path, const char* where);

}  // namespace longbow
