// Token embedding: out[t] = dequantize(table[token_ids[t]]) for every weight dtype.
#include <cmath>
#include <string>

#include "longbow/backend/cpu/cpu_ops.h"

namespace longbow::cpu {

void op_embed(Ctx& c, const EmbedArgs& a) {
  const char* where = "cpu.embed";
  require(a.num_tokens >= 0 && a.dim >= 0 && a.vocab_size >= 0, where,
          "expected non-negative sizes");
  require(std::isfinite(a.scale), where, "expected a finite scale");
  const size_t row_bytes = dtype_row_bytes(a.table_dtype, a.dim);
  const size_t dim = a.dim;
  float* out = view_as<float>(a.out, a.num_tokens * dim, where, "out");  // (num_tokens, dim)
  const int32_t* ids =
      view_as<const int32_t>(a.token_ids, a.num_tokens, where, "token_ids");  // (num_tokens,)
  const auto* table = static_cast<const uint8_t*>(view_ptr(
      a.table, a.vocab_size * row_bytes, where, "table"));  // (vocab_size, dim) table_dtype
  for (int t = 0; t < a.num_tokens; ++t) {
    require(ids[t] >= 0 && ids[t] < a.vocab_size, where, [&] {
      return "token_ids[" + std::to_string(t) + "]: expected 0 <= id < " +
             std::to_string(a.vocab_size) + ", found " + std::to_string(ids[t]);
    });
  }
  const RowKernels& kern = row_kernels();
  c.pool.parallel_for(a.num_tokens, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) {
      kern.dequant_row(a.table_dtype, table + static_cast<size_t>(ids[t]) * row_bytes,
                       out + t * dim, a.dim);
      if (a.scale != 1.0f) {
        for (size_t i = 0; i < dim; ++i) out[t * dim + i] *= a.scale;
      }
    }
  });
}

}  // namespace longbow::cpu
