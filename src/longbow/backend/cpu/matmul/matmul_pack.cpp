// Repacking of row-major weights into 16-row panels (layouts in matmul_kernels.h): Q4_0/Q4_1/Q8_0
// blocks interleaved, F32/F16/BF16 elements k-major. Done once per weight when the model is
// loaded; every value keeps its bits, only their order changes (plus zero rows padding the last
// panel).
#include <cstring>
#include <stdexcept>
#include <string>

#include "longbow/backend/cpu/matmul/matmul_kernels.h"

namespace longbow::cpu {

void throw_not_block_quant(DType t) {
  throw std::invalid_argument(
      std::string("[cpu.matmul] expected Q4_0, Q4_1 or Q8_0 weights, found ") + dtype_name(t));
}

void throw_not_float_weight(DType t) {
  throw std::invalid_argument(
      std::string("[cpu.matmul] expected F32, F16 or BF16 weights, found ") + dtype_name(t));
}

namespace {

// Float panels: panel p is (K, 16), element (k, r) = row 16 p + r, column k. E: the element's
// storage type (float, or uint16_t bits of f16 / bf16).
template <typename E>
void pack_float_panels(const E* src, int64_t N, int64_t K, int64_t p0, int64_t p1, E* dst) {
  for (int64_t p = p0; p < p1; ++p) {
    E* panel = dst + static_cast<size_t>(p) * PANEL_ROWS * K;  // (K, 16)
    std::memset(panel, 0, sizeof(E) * PANEL_ROWS * K);
    for (int r = 0; r < PANEL_ROWS && p * PANEL_ROWS + r < N; ++r) {
      const E* row = src + static_cast<size_t>(p * PANEL_ROWS + r) * K;
      for (int64_t k = 0; k < K; ++k) panel[k * PANEL_ROWS + r] = row[k];
    }
  }
}

}  // namespace

void pack_panels(DType t, const void* rows, int64_t N, int64_t K, int64_t p0, int64_t p1,
                 void* dst) {
  if (t == DType::F32) {
    return pack_float_panels(static_cast<const float*>(rows), N, K, p0, p1,
                             static_cast<float*>(dst));
  }
  if (t == DType::F16 || t == DType::BF16) {
    return pack_float_panels(static_cast<const uint16_t*>(rows), N, K, p0, p1,
                             static_cast<uint16_t*>(dst));
  }
  if (!is_block_quant(t)) {
    throw std::invalid_argument(std::string("[cpu.matmul_weight] expected Q4_0, Q4_1, Q8_0, F32, "
                                            "F16 or BF16 to pack, found ") +
                                dtype_name(t));
  }
  const int64_t nb = K / QK;
  const size_t row_bytes = dtype_row_bytes(t, K);
  const auto* src = static_cast<const uint8_t*>(rows);
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t p = p0; p < p1; ++p) {
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* blk = out + static_cast<size_t>(p * nb + b) * panel_block_bytes(t);
      std::memset(blk, 0, panel_block_bytes(t));
      for (int r = 0; r < PANEL_ROWS; ++r) {
        const int64_t n = p * PANEL_ROWS + r;
        if (n >= N) break;  // padding rows stay zero
        const uint8_t* row = src + static_cast<size_t>(n) * row_bytes;
        if (t == DType::Q8_0) {
          const auto& in = reinterpret_cast<const BlockQ8_0*>(row)[b];
          auto& pk = *reinterpret_cast<PanelQ8*>(blk);
          pk.d[r] = in.d;
          for (int j = 0; j < QK / 2; ++j) {
            pk.qs[32 * j + 2 * r] = in.qs[2 * j];
            pk.qs[32 * j + 2 * r + 1] = in.qs[2 * j + 1];
          }
        } else {
          auto& pk = *reinterpret_cast<PanelQ4*>(blk);
          const uint8_t* qs;
          if (t == DType::Q4_1) {
            const auto& in = reinterpret_cast<const BlockQ4_1*>(row)[b];
            pk.d[r] = in.d, pk.m[r] = in.m, qs = in.qs;
          } else {
            const auto& in = reinterpret_cast<const BlockQ4_0*>(row)[b];
            pk.d[r] = in.d, qs = in.qs;
          }
          for (int t8 = 0; t8 < QK / 4; ++t8) {
            pk.qs[32 * t8 + 2 * r] = qs[2 * t8];
            pk.qs[32 * t8 + 2 * r + 1] = qs[2 * t8 + 1];
          }
        }
      }
    }
  }
}

}  // namespace longbow::cpu
