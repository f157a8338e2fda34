// Metal op encoders for the row-parallel ops: embed, rms_norm, matmul, rope, glu, add, softcap,
// get_rows. Each fills its kargs.h struct, checks every view, picks the grid and encodes.
#include <cmath>
#include <stdexcept>
#include <string>

#include "kargs.h"
#include "longbow/backend/metal/kernel_names.h"
#include "longbow/backend/metal/metal_backend.h"
#include "longbow/backend/op_checks.h"
#include "longbow/core/check.h"

namespace longbow::metal {

namespace {
constexpr uint32_t ROW_THREADS = LONGBOW_ROW_THREADS;
// Below this many rows of x the matrix-vector kernel is used (decode), else the tiled one.
constexpr int MATMUL_TILED_MIN_M = 8;

uint32_t ceil_div(int64_t n, int64_t d) { return static_cast<uint32_t>((n + d - 1) / d); }

uint32_t u32(int64_t v, const std::string& where, const char* what) {
  require(v >= 0 && v <= 0x7fffffff, where,
          std::string(what) + ": expected 0 <= value < 2^31, found " + std::to_string(v));
  return static_cast<uint32_t>(v);
}
}  // namespace

void MetalBackend::embed(const EmbedArgs& a) {
  require_supported(Op::Embed, a.table_dtype, "embed");
  const std::string where = name_ + ".embed";
  require(a.num_tokens >= 0 && a.dim >= 0 && a.vocab_size >= 0, where,
          "expected non-negative sizes");
  const size_t row_bytes = dtype_row_bytes(a.table_dtype, a.dim);
  const size_t T = a.num_tokens, D = a.dim;
  std::vector<Bound> bufs = {
      bind_view(a.out, T * D * 4, "embed", "out"),          // (num_tokens, dim) f32
      bind_view(a.token_ids, T * 4, "embed", "token_ids"),  // (num_tokens,) i32
      bind_view(a.table, static_cast<size_t>(a.vocab_size) * row_bytes, "embed",
                "table")};  // (vocab, dim)
  require(std::isfinite(a.scale), where, "expected a finite scale");
  EmbedKArgs k{a.num_tokens, a.dim, a.vocab_size,
               u32(static_cast<int64_t>(row_bytes), where, "row_bytes"), a.scale};
  encode(kernel_name(Op::Embed, "", a.table_dtype), &k, sizeof k, bufs,
         {ceil_div(D, ROW_THREADS), u32(T, where, "num_tokens"), 1}, {ROW_THREADS, 1, 1});
}

void MetalBackend::rms_norm(const RmsNormArgs& a) {
  const std::string where = name_ + ".rms_norm";
  require(a.num_rows >= 0 && a.dim > 0, where,
          "expected num_rows >= 0 and dim > 0, found " + std::to_string(a.num_rows) + ", " +
              std::to_string(a.dim));
  const size_t n = static_cast<size_t>(a.num_rows) * a.dim;
  std::vector<Bound> bufs = {
      bind_view(a.out, n * 4, "rms_norm", "out"),  // (num_rows, dim)
      bind_view(a.x, n * 4, "rms_norm", "x"),      // (num_rows, dim)
      bind_view(a.weight, static_cast<size_t>(a.dim) * 4, "rms_norm", "weight")};  // (dim,)
  RmsNormKArgs k{a.num_rows, a.dim, a.eps};
  encode(kernel_name(Op::RmsNorm, "", DType::F32), &k, sizeof k, bufs,
         {u32(a.num_rows, where, "num_rows"), 1, 1}, {ROW_THREADS, 1, 1});
}

void MetalBackend::matmul(const MatmulArgs& a) {
  require_supported(Op::Matmul, a.w_dtype, "matmul");
  const std::string where = name_ + ".matmul";
  check_matmul_sizes(a, where);
  if (a.M == 0 || a.N == 0) return;
  const size_t row_bytes = dtype_row_bytes(a.w_dtype, a.K);
  const size_t M = a.M, N = a.N, K = a.K;
  const Bound out = bind_view(a.out, M * N * 4, "matmul", "out");  // (M, N) f32
  std::vector<Bound> bufs = {
      out, bind_view(a.x, M * K * 4, "matmul", "x"),                       // (M, K) f32
      bind_view(a.w, N * row_bytes, "matmul", "w"),                        // (N, K) w_dtype
      a.bias.empty() ? out : bind_view(a.bias, N * 4, "matmul", "bias")};  // (N,) f32
  MatmulKArgs k{a.M,
                a.N,
                a.K,
                u32(static_cast<int64_t>(row_bytes), where, "row_bytes"),
                a.bias.empty() ? 0 : 1,
                a.accumulate ? 1 : 0};
  if (a.M < MATMUL_TILED_MIN_M) {
    encode(kernel_name(Op::Matmul, "mv", a.w_dtype), &k, sizeof k, bufs,
           {ceil_div(a.N, LONGBOW_MV_ROWS), u32(a.M, where, "M"), 1}, {32 * LONGBOW_MV_ROWS, 1, 1});
  } else {
    encode(kernel_name(Op::Matmul, "tiled", a.w_dtype), &k, sizeof k, bufs,
           {ceil_div(a.N, LONGBOW_MM_TILE_N), ceil_div(a.M, LONGBOW_MM_TILE_M), 1},
           {LONGBOW_MM_THREADS, 1, 1});
  }
}

void MetalBackend::rope(const RopeArgs& a) {
  const std::string where = name_ + ".rope";
  check_rope_sizes(a, where);
  const size_t T = a.num_tokens, D = a.head_dim;
  std::vector<Bound> bufs = {
      bind_view(a.q, T * a.num_heads * D * 4, "rope", "q"),     // (T, num_heads, head_dim)
      bind_view(a.k, T * a.num_kv_heads * D * 4, "rope", "k"),  // (T, num_kv_heads, head_dim)
      bind_view(a.positions, T * 4, "rope", "positions"),       // (T,) i32
      bind_view(a.inv_freq, static_cast<size_t>(a.rot_dim / 2) * 4, "rope",
                "inv_freq")};  // (rot_dim/2,)
  RopeKArgs k{a.num_tokens, a.num_heads, a.num_kv_heads,
              a.head_dim,   a.rot_dim,   a.interleaved ? 1 : 0};
  // One thread per (pair, head of q then k, token).
  const uint32_t heads = u32(static_cast<int64_t>(a.num_heads) + a.num_kv_heads, where, "heads");
  const uint32_t half = a.rot_dim / 2, tx = half < 64 ? half : 64;
  encode(kernel_name(Op::Rope, "", DType::F32), &k, sizeof k, bufs,
         {ceil_div(half, tx), heads, u32(T, where, "num_tokens")}, {tx, 1, 1});
}

void MetalBackend::glu(const GluArgs& a) {
  const std::string where = name_ + ".glu";
  require(a.num_rows >= 0 && a.dim >= 0, where, "expected non-negative num_rows and dim");
  const size_t n = static_cast<size_t>(a.num_rows) * a.dim;
  std::vector<Bound> bufs = {bind_view(a.out, n * 4, "glu", "out"),    // (num_rows, dim)
                             bind_view(a.gate, n * 4, "glu", "gate"),  // (num_rows, dim)
                             bind_view(a.up, n * 4, "glu", "up")};     // (num_rows, dim)
  GluKArgs k{u32(static_cast<int64_t>(n), where, "num_rows * dim")};
  encode(kernel_name(Op::Glu, glu_variant(a.act), DType::F32), &k, sizeof k, bufs,
         {ceil_div(n, ROW_THREADS), 1, 1}, {ROW_THREADS, 1, 1});
}

void MetalBackend::add(const AddArgs& a) {
  const std::string where = name_ + ".add";
  require(a.n >= 0, where, "expected n >= 0, found " + std::to_string(a.n));
  const size_t n = static_cast<size_t>(a.n);
  std::vector<Bound> bufs = {bind_view(a.out, n * 4, "add", "out"),  // (n,)
                             bind_view(a.a, n * 4, "add", "a"),      // (n,)
                             bind_view(a.b, n * 4, "add", "b")};     // (n,)
  AddKArgs k{u32(a.n, where, "n")};
  encode(kernel_name(Op::Add, "", DType::F32), &k, sizeof k, bufs,
         {ceil_div(a.n, ROW_THREADS), 1, 1}, {ROW_THREADS, 1, 1});
}

void MetalBackend::softcap(const SoftcapArgs& a) {
  const std::string where = name_ + ".softcap";
  require(a.n >= 0, where, "expected n >= 0, found " + std::to_string(a.n));
  require(a.cap > 0 && std::isfinite(a.cap), where,
          "expected a finite cap > 0, found " + std::to_string(a.cap));
  const size_t n = static_cast<size_t>(a.n);
  std::vector<Bound> bufs = {bind_view(a.out, n * 4, "softcap", "out"),  // (n,)
                             bind_view(a.x, n * 4, "softcap", "x")};     // (n,)
  SoftcapKArgs k{u32(a.n, where, "n"), a.cap};
  encode(kernel_name(Op::Softcap, "", DType::F32), &k, sizeof k, bufs,
         {ceil_div(a.n, ROW_THREADS), 1, 1}, {ROW_THREADS, 1, 1});
}

void MetalBackend::get_rows(const GetRowsArgs& a) {
  const std::string where = name_ + ".get_rows";
  require(a.num_rows >= 0 && a.dim >= 0 && a.num_src_rows >= 0, where,
          "expected non-negative sizes");
  const size_t D = a.dim;
  std::vector<Bound> bufs = {
      bind_view(a.out, a.num_rows * D * 4, "get_rows", "out"),  // (num_rows, dim)
      bind_view(a.x, a.num_src_rows * D * 4, "get_rows", "x"),  // (num_src_rows, dim)
      bind_view(a.rows, static_cast<size_t>(a.num_rows) * 4, "get_rows", "rows")};  // (num_rows,)
  GetRowsKArgs k{a.num_rows, a.dim, a.num_src_rows};
  encode(kernel_name(Op::GetRows, "", DType::F32), &k, sizeof k, bufs,
         {ceil_div(D, ROW_THREADS), u32(a.num_rows, where, "num_rows"), 1}, {ROW_THREADS, 1, 1});
}

}  // namespace longbow::metal
