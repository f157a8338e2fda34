// ModelFile: format dispatch and lookup. Tensor shapes are checked by the model that uses them.
#include "longbow/core/model_file.h"

#include <cstring>
#include <stdexcept>

#include "longbow/core/file_map.h"
#include "longbow/core/gguf_reader.h"
#include "longbow/core/safetensors_reader.h"

namespace longbow {

namespace {

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// True when the file starts with the GGUF magic.
bool has_gguf_magic(const std::string& path) {
  FileMap m(path, "model");
  return m.size() >= 4 && std::memcmp(m.data(), "GGUF", 4) == 0;
}

}  // namespace

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const TensorInfo* ModelFile::find(const std::string& canonical_name) const {
  auto it = index_.find(canonical_name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& ModelFile::get(const std::string& canonical_name) const {
  const TensorInfo* t = find(canonical_name);
  if (t == nullptr)
    throw std::invalid_argument("[" + path() + "] missing tensor " + canonical_name);
  return *t;
}

std::unique_ptr<ModelFile> ModelFile::open(const std::string& path) {
  std::unique_ptr<ModelFile> mf;
  if (is_directory(path)) {
    mf = std::make_unique<SafetensorsModel>(path);
  } else if (!is_regular_file(path)) {
    throw std::invalid_argument("[model] " + path + ": no such file or folder");
  } else if (ends_with(path, ".gguf") || has_gguf_magic(path)) {
    mf = std::make_unique<GgufFile>(path);
  } else if (ends_with(path, ".safetensors")) {
    mf = std::make_unique<SafetensorsModel>(path);
  } else {
    throw std::invalid_argument(
        "[model] " + path + ": expected a .gguf file, a .safetensors file or an HF model folder");
  }
  mf->config().validate(mf->path());
  return mf;
}

}  // namespace longbow
