// A model on disk: memory-mapped tensors from a GGUF file or an HF folder (safetensors),
// plus the model config and, for GGUF, the metadata key/values. Every offset, size, dtype and
// shape is validated at open time; problems raise std::invalid_argument naming file and tensor.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "longbow/core/dtype.h"
#include "longbow/core/model_config.h"

namespace longbow {

struct TensorInfo {
  std::string name;         // canonical (GGUF-style) name, e.g. "blk.3.attn_q.weight"
  std::string source_name;  // name as stored in the file
  std::string file;         // path of the file holding it
  DType dtype = DType::F32;
  std::vector<int64_t> shape;     // row-major, outermost first: a (N, K) weight has N rows of K
  const uint8_t* data = nullptr;  // inside the mapping
  size_t bytes = 0;
  int64_t numel() const;
};

// A GGUF metadata value. Arrays of strings/ints/floats keep their element type.
using GgufValue = std::variant<int64_t, uint64_t, double, bool, std::string, std::vector<int64_t>,
                               std::vector<double>, std::vector<std::string>, std::vector<bool>>;

class ModelFile {
 public:
  virtual ~ModelFile() = default;
  // Opens a .gguf file, a .safetensors file (config.json beside it) or an HF folder.
  static std::unique_ptr<ModelFile> open(const std::string& path);

  virtual std::string format() const = 0;  // "gguf" or "safetensors"
  virtual std::string path() const = 0;
  const ModelConfig& config() const { return config_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // nullptr when absent.
  const TensorInfo* find(const std::string& canonical_name) const;
  // Throws std::invalid_argument "[<path>] missing tensor <name>" when absent.
  const TensorInfo& get(const std::string& canonical_name) const;
  // Drops the resident file pages of tensor t (whole pages inside it) once its data has been
  // copied elsewhere; reading t.data later is still valid (the pages come back from the file).
  virtual void drop_pages(const TensorInfo& t) const = 0;
  // GGUF key/values (empty for safetensors).
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }

 protected:
  ModelConfig config_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, GgufValue> metadata_;
};

}  // namespace longbow
