#include "longbow/models/weight_loader.h"

#include <cstring>
#include <stdexcept>

#include "longbow/core/text.h"

namespace longbow::models {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

WeightLoader::WeightLoader(std::shared_ptr<const ModelFile> file, Backend& backend)
    : file_(std::move(file)), backend_(backend) {}

const TensorInfo& WeightLoader::take(const std::string& name, const std::vector<int64_t>& shape) {
  const TensorInfo* t = file_->find(name);
  if (t == nullptr) {
    throw std::invalid_argument("[" + file_->path() + "] missing tensor " + name +
                                " (expected shape " + shape_text(shape) + ")");
  }
  if (t->shape != shape) {
    throw std::invalid_argument("[" + t->file + "] tensor " + name + " (" + t->source_name +
                                "): expected shape " + shape_text(shape) +
                                " from the config, found " + shape_text(t->shape));
  }
  used_.insert(name);
  return *t;
}

WeightRef WeightLoader::upload_f32(const std::vector<float>& v) {
  owned_.push_back(backend_.alloc(v.size() * sizeof(float)));
  backend_.upload({owned_.back().get(), 0}, v.data(), v.size() * sizeof(float));
  WeightRef ref;
  ref.dtype = DType::F32;
  ref.rows = 1;
  ref.cols = static_cast<int>(v.size());
  ref.view = {owned_.back().get(), 0};
  return ref;
}

WeightRef WeightLoader::vector(const std::string& name, int n, float offset, int begin, int count) {
  const TensorInfo& t = take(name, {n});
  if (count <= 0) count = n - begin;
  std::vector<float> f(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    const size_t j = static_cast<size_t>(begin + i);
    switch (t.dtype) {
      case DType::F32: std::memcpy(&f[i], t.data + 4 * j, 4); break;
      case DType::F16: {
        uint16_t h;
        std::memcpy(&h, t.data + 2 * j, 2);
        f[i] = f16_to_f32(h);
        break;
      }
      case DType::BF16: {
        uint16_t h;
        std::memcpy(&h, t.data + 2 * j, 2);
        f[i] = bf16_to_f32(h);
        break;
      }
      default:
        throw std::invalid_argument("[model] " + file_->path() + ": tensor " + name + " is " +
                                    dtype_name(t.dtype) +
                                    ", expected f32, f16 or bf16 for a vector");
    }
    f[i] += offset;
  }
  return upload_f32(f);
}

WeightRef WeightLoader::matmul(const std::string& name, int rows, int cols, int row_begin,
                               int num_rows) {
  const TensorInfo& t = take(name, {rows, cols});
  if (!backend_.supports(Op::Matmul, t.dtype)) {
    throw std::invalid_argument("[model] backend " + backend_.name() + " has no matmul for " +
                                dtype_name(t.dtype) + " weights (tensor " + name + " in " + t.file +
                                ")");
  }
  const bool slice = num_rows > 0;
  if (!slice) num_rows = rows;
  const uint8_t* src = t.data + static_cast<size_t>(row_begin) * dtype_row_bytes(t.dtype, cols);
  WeightRef ref;
  ref.dtype = t.dtype;
  ref.rows = num_rows;
  ref.cols = cols;
  owned_.push_back(backend_.matmul_weight(src, t.dtype, num_rows, cols));
  // A backend that copied the data (the CPU packs quantized weights) no longer reads the file
  // pages: give them back so the weights are resident once, not twice. Slices of a fused tensor
  // keep the pages (the other parts may still be wrapped in place).
  if (!slice && owned_.back()->host_ptr() != static_cast<const void*>(t.data)) file_->drop_pages(t);
  ref.view = {owned_.back().get(), 0};
  return ref;
}

WeightRef WeightLoader::embedding(const std::string& name, int rows, int cols) {
  const TensorInfo& t = take(name, {rows, cols});
  if (!backend_.supports(Op::Embed, t.dtype)) {
    throw std::invalid_argument(std::string("[model] backend ") + backend_.name() +
                                " cannot embed from " + dtype_name(t.dtype) + " tensor " + name);
  }
  owned_.push_back(backend_.wrap_host(t.data, t.bytes));
  WeightRef ref;
  ref.dtype = t.dtype;
  ref.rows = rows;
  ref.cols = cols;
  ref.view = {owned_.back().get(), 0};
  return ref;
}

void WeightLoader::refuse_unused() const {
  for (const TensorInfo& t : file_->tensors()) {
    if (used_.count(t.name)) continue;
    // Old PyTorch checkpoints save RoPE's cached inverse frequencies; they follow from the config.
    const std::string cached = "rotary_emb.inv_freq";
    const std::string& s = t.source_name;
    if (s.size() >= cached.size() &&
        s.compare(s.size() - cached.size(), cached.size(), cached) == 0)
      continue;
    throw std::invalid_argument(
        "[model] " + t.file + ": tensor " + printable(t.source_name) +
        " is not used by longbow's " + file_->config().architecture +
        " model (it may change the model's output; refusing rather than ignoring it)");
  }
}

}  // namespace longbow::models
