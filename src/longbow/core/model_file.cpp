// ModelFile: format dispatch, lookup and the Llama tensor-shape checks shared by all formats.
#include "longbow/core/model_file.h"

#include <cstring>
#include <stdexcept>

#include "longbow/core/file_map.h"
#include "longbow/core/gguf_reader.h"
#include "longbow/core/safetensors_reader.h"

namespace longbow {

namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// True when the file starts with the GGUF magic.
bool has_gguf_magic(const std::string& path) {
  FileMap m(path, "model");
  return m.size() >= 4 && std::memcmp(m.data(), "GGUF", 4) == 0;
}

// Checks every standard Llama tensor exists with the shape the config implies.
void check_llama_tensors(const ModelFile& mf) {
  const ModelConfig& c = mf.config();
  const int64_t D = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  const int64_t q_rows = int64_t{c.num_heads} * c.head_dim, kv_rows = int64_t{c.num_kv_heads} * c.head_dim;
  auto expect = [&](const std::string& name, std::vector<int64_t> shape) {
    const TensorInfo* t = mf.find(name);
    if (t == nullptr) {
      throw std::invalid_argument("[" + mf.path() + "] missing tensor " + name + " (expected shape " + shape_text(shape) + ")");
    }
    if (t->shape != shape) {
      throw std::invalid_argument("[" + t->file + "] tensor " + name + " (" + t->source_name + "): expected shape " +
                                  shape_text(shape) + " from the config, found " + shape_text(t->shape));
    }
  };
  expect("token_embd.weight", {V, D});
  expect("output_norm.weight", {D});
  if (mf.find("output.weight") != nullptr) expect("output.weight", {V, D});
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    expect(b + "attn_norm.weight", {D});
    expect(b + "attn_q.weight", {q_rows, D});
    expect(b + "attn_k.weight", {kv_rows, D});
    expect(b + "attn_v.weight", {kv_rows, D});
    expect(b + "attn_output.weight", {D, q_rows});
    expect(b + "ffn_norm.weight", {D});
    expect(b + "ffn_gate.weight", {F, D});
    expect(b + "ffn_up.weight", {F, D});
    expect(b + "ffn_down.weight", {D, F});
  }
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
  if (t == nullptr) throw std::invalid_argument("[" + path() + "] missing tensor " + canonical_name);
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
    throw std::invalid_argument("[model] " + path +
                                ": expected a .gguf file, a .safetensors file or an HF model folder");
  }
  mf->config().validate(mf->path());
  check_llama_tensors(*mf);
  return mf;
}

}  // namespace longbow
