// Turns a ModelFile's tensors into backend buffers for any model family: shape checks against the
// config, f32 copies of vectors, matmul weights through Backend::matmul_weight (row slices of
// fused tensors too), optionally quantized at load, and a final check that every tensor of the file
// was used.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "longbow/backend/backend.h"
#include "longbow/core/model_file.h"

namespace longbow::models {

struct WeightRef {
  BufView view;
  DType dtype = DType::F32;
  int rows = 0, cols = 0;  // (rows, cols) = (N, K) for a matmul weight
  bool empty() const { return view.empty(); }
};

class WeightLoader {
 public:
  // quantize: when set (q8_0, q4_0 or q4_1), float matmul weights are quantized to it as they
  // load; weights the file already stores quantized are kept as they are.
  WeightLoader(std::shared_ptr<const ModelFile> file, Backend& backend,
               std::optional<DType> quantize = std::nullopt);

  bool has(const std::string& name) const { return file_->find(name) != nullptr; }
  // A (rows, cols) matmul weight; rows [row_begin, row_begin + num_rows) of it when num_rows > 0
  // (one part of a fused tensor such as Phi-3's qkv_proj).
  WeightRef matmul(const std::string& name, int rows, int cols, int row_begin = 0,
                   int num_rows = 0);
  // A (n,) vector as f32 plus `offset` (norm weights, biases); slice [begin, begin + count) when
  // count > 0.
  WeightRef vector(const std::string& name, int n, float offset = 0.0f, int begin = 0,
                   int count = 0);
  // A (rows, cols) embedding table, wrapped in place.
  WeightRef embedding(const std::string& name, int rows, int cols);
  // Marks a tensor as consumed without loading it (read directly from the file by the caller).
  const TensorInfo& take(const std::string& name, const std::vector<int64_t>& shape);
  // Throws std::invalid_argument naming the first tensor of the file no model part used: a tensor
  // longbow does not understand may change the math.
  void refuse_unused() const;
  // The buffers made so far; they must live as long as the model.
  std::vector<std::unique_ptr<Buffer>>& buffers() { return owned_; }

 private:
  WeightRef upload_f32(const std::vector<float>& v);
  // rows [row_begin, row_begin + num_rows) of float tensor t quantized to *quantize_.
  std::unique_ptr<Buffer> quantized_weight(const TensorInfo& t, int row_begin, int num_rows,
                                           int cols);

  std::shared_ptr<const ModelFile> file_;
  Backend& backend_;
  std::optional<DType> quantize_;
  std::set<std::string> used_;
  std::vector<std::unique_ptr<Buffer>> owned_;
};

// "(4, 64)" / "(64,)".
std::string shape_text(const std::vector<int64_t>& shape);

}  // namespace longbow::models
