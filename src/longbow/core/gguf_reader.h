// GGUF v2/v3 reader: header, metadata, tensor infos and the data section, all validated
// against the file size before any tensor byte is touched.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "longbow/core/file_map.h"
#include "longbow/core/model_file.h"

namespace longbow {

class GgufFile final : public ModelFile {
 public:
  // Throws std::invalid_argument "[gguf] <path>: ..." for any malformed or unsupported content.
  explicit GgufFile(const std::string& path);
  std::string format() const override { return "gguf"; }
  std::string path() const override { return map_.path(); }
  void drop_pages(const TensorInfo& t) const override { map_.drop_pages(t.data, t.bytes); }
  uint32_t version() const { return version_; }
  size_t alignment() const { return alignment_; }

 private:
  void parse();
  FileMap map_;
  uint32_t version_ = 0;
  size_t alignment_ = 32;
};

// ModelConfig from GGUF metadata (general.architecture llama|mistral); `has_output` tells whether
// a separate output.weight exists. Does not call validate().
// `has_tensor` tells which canonical tensors the file holds: GGUF has no keys for the tied LM head
// or for optional biases, llama.cpp infers them from the tensors present.
ModelConfig config_from_gguf(const std::map<std::string, GgufValue>& md,
                             const std::function<bool(const std::string&)>& has_tensor,
                             const std::string& path);

}  // namespace longbow
