#include "longbow/models/weight_loader.h"

#include <cstring>
#include <stdexcept>

#include "longbow/core/quantize.h"
#include "longbow/core/text.h"

namespace longbow::models {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

WeightLoader::WeightLoader(std::shared_ptr<const ModelFile> file, Backend& backend,
                           std::optional<DType> quantize)
    : file_(std::move(file)), backend_(backend), quantize_(quantize) {
  if (quantize_ && !dtype_is_quantized(*quantize_)) {
    throw std::invalid_argument(
        std::string("[model] quantize: expected q8_0, q4_0 or q4_1, found ") +
        dtype_name(*quantize_));
  }
}

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
  if (!dtype_is_float(t.dtype)) {
    throw std::invalid_argument("[model] " + file_->path() + ": tensor " + name + " is " +
                                dtype_name(t.dtype) + ", expected f32, f16 or bf16 for a vector");
  }
  std::vector<float> f(static_cast<size_t>(count));
  float_row_to_f32(t.data + dtype_row_bytes(t.dtype, begin), t.dtype, count, f.data());
  for (float& x : f) x += offset;
  return upload_f32(f);
}

WeightRef WeightLoader::matmul(const std::string& name, int rows, int cols, int row_begin,
                               int num_rows) {
  const TensorInfo& t = take(name, {rows, cols});
  const bool quantize = quantize_ && dtype_is_float(t.dtype);
  const DType dtype = quantize ? *quantize_ : t.dtype;
  if (!backend_.supports(Op::Matmul, dtype)) {
    throw std::invalid_argument("[model] backend " + backend_.name() + " has no matmul for " +
                                dtype_name(dtype) + " weights (tensor " + name + " in " + t.file +
                                ")");
  }
  if (quantize && cols % QK != 0) {
    throw std::invalid_argument(
        "[model] cannot quantize tensor " + name + " in " + t.file + " to " + dtype_name(dtype) +
        ": its rows of " + std::to_string(cols) + " are not a multiple of " + std::to_string(QK));
  }
  const bool slice = num_rows > 0;
  if (!slice) num_rows = rows;
  WeightRef ref;
  ref.dtype = dtype;
  ref.rows = num_rows;
  ref.cols = cols;
  if (quantize) {
    owned_.push_back(quantized_weight(t, row_begin, num_rows, cols));
    if (!slice) file_->drop_pages(t);
  } else {
    const uint8_t* src = t.data + static_cast<size_t>(row_begin) * dtype_row_bytes(t.dtype, cols);
    owned_.push_back(backend_.matmul_weight(src, t.dtype, num_rows, cols));
    // A backend that copied the data (the CPU packs quantized weights) no longer reads the file
    // pages: give them back so the weights are resident once, not twice. Slices of a fused tensor
    // keep the pages (the other parts may still be wrapped in place).
    if (!slice && owned_.back()->host_ptr() != static_cast<const void*>(t.data))
      file_->drop_pages(t);
  }
  ref.view = {owned_.back().get(), 0};
  return ref;
}

std::unique_ptr<Buffer> WeightLoader::quantized_weight(const TensorInfo& t, int row_begin,
                                                       int num_rows, int cols) {
  const DType to = *quantize_;
  const size_t src_row = dtype_row_bytes(t.dtype, cols), dst_row = dtype_row_bytes(to, cols);
  // Quantized rows in a buffer of the backend's, handed to matmul_weight: a backend that packs
  // them copies, one that keeps them as they are reads this buffer (kept with the weight).
  std::unique_ptr<Buffer> rows = backend_.alloc(std::max<size_t>(dst_row * num_rows, 4));
  auto* dst = static_cast<uint8_t*>(rows->host_ptr());
  std::vector<float> f(static_cast<size_t>(cols));
  for (int r = 0; r < num_rows; ++r) {
    float_row_to_f32(t.data + (row_begin + r) * src_row, t.dtype, cols, f.data());
    quantize_row(f.data(), cols, to, dst + r * dst_row);
  }
  std::unique_ptr<Buffer> weight = backend_.matmul_weight(dst, to, num_rows, cols);
  if (weight->host_ptr() == dst) owned_.push_back(std::move(rows));
  return weight;
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
