// longbow._core.ops: run ONE backend op on numpy arrays, for tests (any backend by name).
// Each call allocates device buffers, uploads, runs the op, synchronizes and downloads.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "bindings.h"
#include "longbow/backend/backend.h"
#include "longbow/backend/cpu/attention/attention_common.h"
#include "longbow/backend/cpu/cpu_ops.h"
#include "longbow/backend/op_checks.h"
#include "longbow/core/check.h"
#include "philox.h"

namespace py = pybind11;

namespace longbow::bindings {

namespace {

using F32 = py::array_t<float, py::array::c_style | py::array::forcecast>;
using I32 = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;
using U32 = py::array_t<uint32_t, py::array::c_style | py::array::forcecast>;

// Backends are created once per name and kept for the life of the process.
Backend& get_backend(const std::string& name) {
  static auto* cache = new std::map<std::string, std::unique_ptr<Backend>>();
  auto it = cache->find(name);
  if (it == cache->end()) it = cache->emplace(name, create_backend(name)).first;
  return *it->second;
}

constexpr Checker check{"ops"};

std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (i) s += ", ";
    s += std::to_string(a.shape(i));
  }
  return s + (a.ndim() == 1 ? ",)" : ")");
}

void check_shape(const py::array& a, std::vector<py::ssize_t> expected, const char* what) {
  bool ok = a.ndim() == static_cast<py::ssize_t>(expected.size());
  for (size_t i = 0; ok && i < expected.size(); ++i)
    ok = expected[i] < 0 || a.shape(i) == expected[i];
  if (!ok) {
    std::string e = "(";
    for (size_t i = 0; i < expected.size(); ++i) {
      if (i) e += ", ";
      e += expected[i] < 0 ? std::string("*") : std::to_string(expected[i]);
    }
    throw std::invalid_argument(std::string("[ops] ") + what + ": expected shape " + e +
                                (expected.size() == 1 ? ",)" : ")") + ", found " + shape_str(a));
  }
}

// A device buffer holding a copy of a numpy array (at least 4 bytes so views are never empty).
struct Dev {
  std::unique_ptr<Buffer> buf;
  size_t bytes = 0;
  BufView view() const { return {buf.get(), 0}; }
};

Dev to_dev(Backend& be, const py::array& a) {
  py::array c = py::array::ensure(a, py::array::c_style);
  Dev d;
  d.bytes = static_cast<size_t>(c.nbytes());
  d.buf = be.alloc(std::max<size_t>(d.bytes, 4));
  if (d.bytes) be.upload(d.view(), c.data(), d.bytes);
  return d;
}

Dev new_dev(Backend& be, size_t bytes) { return {be.alloc(std::max<size_t>(bytes, 4)), bytes}; }

template <typename T>
py::array_t<T> from_dev(Backend& be, const Dev& d, std::vector<py::ssize_t> shape) {
  py::array_t<T> out(shape);
  be.synchronize();
  if (out.nbytes()) be.download(out.mutable_data(), d.view(), static_cast<size_t>(out.nbytes()));
  return out;
}

py::array raw_from_dev(Backend& be, const Dev& d, const py::array& like) {
  py::array out(like.dtype(), std::vector<py::ssize_t>(like.shape(), like.shape() + like.ndim()));
  be.synchronize();
  if (out.nbytes()) be.download(out.mutable_data(), d.view(), static_cast<size_t>(out.nbytes()));
  return out;
}

// A KV cache array: (num_blocks, block_size, num_kv_heads, head_dim) float32 / float16, or uint8
// (..., kv_row_bytes) rows of the block type `block_dtype` names (q8_0, q4_0, q4_1). Checks the
// shape and returns the cache type.
DType cache_dtype_of(const py::array& a, const std::optional<std::string>& block_dtype,
                     int num_kv_heads, int head_dim, const char* what) {
  DType t;
  if (a.dtype().is(py::dtype::of<uint8_t>())) {
    check(block_dtype.has_value(), std::string(what) +
                                       ": a uint8 cache needs its block type (cache_dtype, "
                                       "k_cache_dtype or v_cache_dtype: q8_0, q4_0 or q4_1)");
    t = dtype_from_name(*block_dtype, what);
    check(is_kv_block_dtype(t), std::string(what) + ": expected a block type q8_0, q4_0 or q4_1");
    check_kv_dtype(t, head_dim, "ops");
    check_shape(a, {-1, -1, num_kv_heads, static_cast<py::ssize_t>(kv_row_bytes(t, head_dim))},
                what);
    return t;
  }
  check(!block_dtype.has_value(), std::string(what) + ": a block type name is for uint8 caches");
  if (a.dtype().is(py::dtype::of<float>())) {
    t = DType::F32;
  } else if (a.dtype().is(py::dtype("float16"))) {
    t = DType::F16;
  } else {
    throw std::invalid_argument(std::string("[ops] ") + what +
                                ": expected float32, float16 or uint8, found " +
                                std::string(py::str(a.dtype())));
  }
  check_shape(a, {-1, -1, num_kv_heads, head_dim}, what);
  return t;
}

// The (K, V) types of a call's two cache arrays: the block-type names of uint8 caches are
// k_cache_dtype / v_cache_dtype, each defaulting to cache_dtype (both planes).
struct CacheDtypeNames {
  std::optional<std::string> both, k, v;
};
KvDtypes cache_dtypes_of(const py::array& k_cache, const py::array& v_cache,
                         const CacheDtypeNames& n, int num_kv_heads, int head_dim) {
  const DType k = cache_dtype_of(k_cache, n.k ? n.k : n.both, num_kv_heads, head_dim, "k_cache");
  const DType v = cache_dtype_of(v_cache, n.v ? n.v : n.both, num_kv_heads, head_dim, "v_cache");
  check(v_cache.shape(0) == k_cache.shape(0) && v_cache.shape(1) == k_cache.shape(1),
        "v_cache: expected the (num_blocks, block_size) of k_cache");
  return {k, v};
}

// Device copies of one attention call's inputs and its AttentionArgs (shapes checked).
struct AttnCall {
  Dev dq, dkc, dvc, dbt, dqs, dsl, dp, dout;
  AttentionArgs args;
  AttnCall(Backend& be, const F32& q, const py::array& k_cache, const py::array& v_cache,
           const I32& block_tables, const I32& query_start, const I32& seq_lens,
           const I32& positions, float scale, const CacheDtypeNames& cache_dtypes = {}) {
    check_shape(q, {-1, -1, -1}, "q");
    const int T = static_cast<int>(q.shape(0)), H = static_cast<int>(q.shape(1)),
              D = static_cast<int>(q.shape(2));
    check_shape(k_cache, {-1, -1, -1, -1}, "k_cache");
    const int Hkv = static_cast<int>(k_cache.shape(2));
    const KvDtypes dt = cache_dtypes_of(k_cache, v_cache, cache_dtypes, Hkv, D);
    check_shape(block_tables, {-1, -1}, "block_tables");
    const int S = static_cast<int>(block_tables.shape(0));
    check_shape(query_start, {S + 1}, "query_start");
    check_shape(seq_lens, {S}, "seq_lens");
    check_shape(positions, {T}, "positions");
    dq = to_dev(be, q), dkc = to_dev(be, k_cache), dvc = to_dev(be, v_cache),
    dbt = to_dev(be, block_tables);
    dqs = to_dev(be, query_start), dsl = to_dev(be, seq_lens), dp = to_dev(be, positions);
    dout = new_dev(be, static_cast<size_t>(T) * H * D * 4);
    AttentionArgs& a = args;
    a.out = dout.view(), a.q = dq.view(), a.k_cache = dkc.view(), a.v_cache = dvc.view();
    a.block_tables = dbt.view(), a.query_start = dqs.view(), a.seq_lens = dsl.view(),
    a.positions = dp.view();
    a.k_dtype = dt.k, a.v_dtype = dt.v, a.num_tokens = T, a.num_seqs = S, a.num_heads = H;
    a.num_kv_heads = static_cast<int>(k_cache.shape(2)), a.head_dim = D;
    a.block_size = static_cast<int>(k_cache.shape(1)),
    a.max_blocks_per_seq = static_cast<int>(block_tables.shape(1));
    a.num_blocks = static_cast<int>(k_cache.shape(0)), a.scale = scale;
  }
};

AttentionVariant variant_from_name(const std::string& v) {
  if (v == "auto") return AttentionVariant::Auto;
  if (v == "split") return AttentionVariant::Split;
  if (v == "fused_decode") return AttentionVariant::FusedDecode;
  if (v == "flash_prefill") return AttentionVariant::FlashPrefill;
  throw std::invalid_argument(
      "[ops] attention variant: expected auto, split, fused_decode or flash_prefill, found '" + v +
      "'");
}

}  // namespace

// One SampleRowParams from a dict; its "penalty_tokens" and "ban_tokens" lists are appended to
// `flat`.
SampleRowParams row_params(const py::dict& d, std::vector<int32_t>& flat) {
  static const char* known[] = {"temperature",
                                "top_k",
                                "top_p",
                                "min_p",
                                "repetition_penalty",
                                "presence_penalty",
                                "frequency_penalty",
                                "seed",
                                "counter",
                                "penalty_tokens",
                                "ban_tokens",
                                "top_logprobs",
                                "stream",
                                "probs_row",
                                "draft_row",
                                "draft_token",
                                "mask_row"};
  for (auto item : d) {
    const std::string key = py::str(item.first);
    bool ok = false;
    for (const char* k : known) ok = ok || key == k;
    check(ok,
          "sample params: unknown key '" + key +
              "' (expected temperature, top_k, top_p, min_p, repetition_penalty, presence_penalty, "
              "frequency_penalty, seed, counter, penalty_tokens, ban_tokens, top_logprobs, stream, "
              "probs_row, draft_row, draft_token, mask_row)");
  }
  auto get = [&](const char* k, auto def) {
    return d.contains(k) ? d[k].cast<decltype(def)>() : def;
  };
  SampleRowParams p;
  p.temperature = get("temperature", 0.0f);
  p.top_k = get("top_k", int32_t{0});
  p.top_p = get("top_p", 1.0f);
  p.min_p = get("min_p", 0.0f);
  p.repetition_penalty = get("repetition_penalty", 1.0f);
  p.presence_penalty = get("presence_penalty", 0.0f);
  p.frequency_penalty = get("frequency_penalty", 0.0f);
  const uint64_t seed = get("seed", uint64_t{0});
  p.seed_lo = static_cast<uint32_t>(seed), p.seed_hi = static_cast<uint32_t>(seed >> 32);
  p.counter = get("counter", uint32_t{0});
  p.num_top_logprobs = get("top_logprobs", int32_t{0});
  p.stream = get("stream", uint32_t{0});
  p.probs_row = get("probs_row", int32_t{-1});
  p.draft_row = get("draft_row", int32_t{-1});
  p.draft_token = get("draft_token", int32_t{-1});
  p.mask_row = get("mask_row", int32_t{-1});
  const auto toks = get("penalty_tokens", std::vector<int32_t>{});
  p.penalty_start = static_cast<int32_t>(flat.size());
  p.penalty_count = static_cast<int32_t>(toks.size());
  flat.insert(flat.end(), toks.begin(), toks.end());
  const auto bans = get("ban_tokens", std::vector<int32_t>{});
  p.ban_start = static_cast<int32_t>(flat.size());
  p.ban_count = static_cast<int32_t>(bans.size());
  flat.insert(flat.end(), bans.begin(), bans.end());
  return p;
}

void bind_ops(py::module_& m) {
  py::module_ ops =
      m.def_submodule("ops", "Single backend ops on numpy arrays (test entry points).");

  ops.def(
      "matmul",
      [](const std::string& backend, F32 x, py::array w, const std::string& w_dtype, int N, int K,
         std::optional<F32> bias, std::optional<F32> accumulate_into) {
        Backend& be = get_backend(backend);
        check_shape(x, {-1, K}, "x");
        const int M = static_cast<int>(x.shape(0));
        const DType wt = dtype_from_name(w_dtype, "ops.matmul");
        check(N >= 0 && K >= 0, "matmul: expected non-negative N and K, found " +
                                    std::to_string(N) + ", " + std::to_string(K));
        const size_t wbytes = static_cast<size_t>(N) * dtype_row_bytes(wt, K);
        check(static_cast<size_t>(w.nbytes()) == wbytes,
              "w: expected " + std::to_string(wbytes) + " bytes for (" + std::to_string(N) + ", " +
                  std::to_string(K) + ") " + w_dtype + ", found " + std::to_string(w.nbytes()));
        // The weight goes through matmul_weight like a model's (the CPU packs quantized ones);
        // wc stays alive for the call in case the backend wraps it.
        py::array wc = py::array::ensure(w, py::array::c_style);
        std::unique_ptr<Buffer> wbuf = be.matmul_weight(wc.data(), wt, N, K);
        Dev dx = to_dev(be, x), db, dout;
        if (bias) {
          check_shape(*bias, {N}, "bias");
          db = to_dev(be, *bias);
        }
        if (accumulate_into) {
          check_shape(*accumulate_into, {M, N}, "accumulate_into");
          dout = to_dev(be, *accumulate_into);
        } else {
          dout = new_dev(be, static_cast<size_t>(M) * N * 4);
        }
        MatmulArgs a;
        a.out = dout.view(), a.x = dx.view(), a.w = {wbuf.get(), 0},
        a.bias = bias ? db.view() : BufView{};
        a.w_dtype = wt, a.M = M, a.N = N, a.K = K, a.accumulate = accumulate_into.has_value();
        be.matmul(a);
        return from_dev<float>(be, dout, {M, N});
      },
      py::arg("backend"), py::arg("x"), py::arg("w"), py::arg("w_dtype"), py::arg("N"),
      py::arg("K"), py::arg("bias") = py::none(), py::arg("accumulate_into") = py::none(),
      "out (M, N) = x (M, K) @ w.T (+ bias) (+ accumulate_into); w is raw bytes of (N, K) in "
      "w_dtype.");

  ops.def(
      "embed",
      [](const std::string& backend, I32 ids, py::array table, const std::string& dtype,
         int vocab_size, int dim, float scale) {
        Backend& be = get_backend(backend);
        check_shape(ids, {-1}, "token_ids");
        const DType t = dtype_from_name(dtype, "ops.embed");
        const size_t tbytes = static_cast<size_t>(vocab_size) * dtype_row_bytes(t, dim);
        check(static_cast<size_t>(table.nbytes()) == tbytes,
              "table: expected " + std::to_string(tbytes) + " bytes, found " +
                  std::to_string(table.nbytes()));
        const int T = static_cast<int>(ids.shape(0));
        Dev di = to_dev(be, ids), dt = to_dev(be, table),
            dout = new_dev(be, static_cast<size_t>(T) * dim * 4);
        EmbedArgs a;
        a.out = dout.view(), a.token_ids = di.view(), a.table = dt.view(), a.table_dtype = t;
        a.num_tokens = T, a.dim = dim, a.vocab_size = vocab_size, a.scale = scale;
        be.embed(a);
        return from_dev<float>(be, dout, {T, dim});
      },
      py::arg("backend"), py::arg("token_ids"), py::arg("table"), py::arg("dtype"),
      py::arg("vocab_size"), py::arg("dim"), py::arg("scale") = 1.0f,
      "out (T, dim) = scale * dequantized rows of table (vocab_size, dim) in dtype.");

  ops.def(
      "rms_norm",
      [](const std::string& backend, F32 x, F32 weight, float eps) {
        Backend& be = get_backend(backend);
        check_shape(x, {-1, -1}, "x");
        const int R = static_cast<int>(x.shape(0)), D = static_cast<int>(x.shape(1));
        check_shape(weight, {D}, "weight");
        Dev dx = to_dev(be, x), dw = to_dev(be, weight),
            dout = new_dev(be, static_cast<size_t>(R) * D * 4);
        RmsNormArgs a;
        a.out = dout.view(), a.x = dx.view(), a.weight = dw.view();
        a.num_rows = R, a.dim = D, a.eps = eps;
        be.rms_norm(a);
        return from_dev<float>(be, dout, {R, D});
      },
      py::arg("backend"), py::arg("x"), py::arg("weight"), py::arg("eps") = 1e-5f,
      "rms_norm(x) * weight, row by row.");

  ops.def(
      "rope",
      [](const std::string& backend, F32 q, F32 k, I32 positions, F32 inv_freq, bool interleaved) {
        Backend& be = get_backend(backend);
        check_shape(q, {-1, -1, -1}, "q");
        const int T = static_cast<int>(q.shape(0)), H = static_cast<int>(q.shape(1)),
                  D = static_cast<int>(q.shape(2));
        check_shape(k, {T, -1, D}, "k");
        check_shape(positions, {T}, "positions");
        check_shape(inv_freq, {-1}, "inv_freq");
        const int Hkv = static_cast<int>(k.shape(1)), rot = 2 * static_cast<int>(inv_freq.shape(0));
        Dev dq = to_dev(be, q), dk = to_dev(be, k), dp = to_dev(be, positions),
            df = to_dev(be, inv_freq);
        RopeArgs a;
        a.q = dq.view(), a.k = dk.view(), a.positions = dp.view(), a.inv_freq = df.view();
        a.num_tokens = T, a.num_heads = H, a.num_kv_heads = Hkv, a.head_dim = D, a.rot_dim = rot;
        a.interleaved = interleaved;
        be.rope(a);
        return py::make_tuple(from_dev<float>(be, dq, {T, H, D}),
                              from_dev<float>(be, dk, {T, Hkv, D}));
      },
      py::arg("backend"), py::arg("q"), py::arg("k"), py::arg("positions"), py::arg("inv_freq"),
      py::arg("interleaved"), "Rotated (q, k); rot_dim = 2 * len(inv_freq).");

  ops.def(
      "kv_write",
      [](const std::string& backend, F32 k, F32 v, py::array k_cache, py::array v_cache,
         I32 slot_mapping, std::optional<std::string> cache_dtype,
         std::optional<std::string> k_cache_dtype, std::optional<std::string> v_cache_dtype) {
        Backend& be = get_backend(backend);
        check_shape(k, {-1, -1, -1}, "k");
        const int T = static_cast<int>(k.shape(0)), Hkv = static_cast<int>(k.shape(1)),
                  D = static_cast<int>(k.shape(2));
        check_shape(v, {T, Hkv, D}, "v");
        const KvDtypes dt =
            cache_dtypes_of(k_cache, v_cache, {cache_dtype, k_cache_dtype, v_cache_dtype}, Hkv, D);
        check_shape(slot_mapping, {T}, "slot_mapping");
        Dev dk = to_dev(be, k), dv = to_dev(be, v), dkc = to_dev(be, k_cache),
            dvc = to_dev(be, v_cache), ds = to_dev(be, slot_mapping);
        KvWriteArgs a;
        a.k = dk.view(), a.v = dv.view(), a.k_cache = dkc.view(), a.v_cache = dvc.view(),
        a.slot_mapping = ds.view();
        a.k_dtype = dt.k, a.v_dtype = dt.v, a.num_tokens = T, a.num_kv_heads = Hkv, a.head_dim = D;
        a.num_slots = static_cast<int>(k_cache.shape(0) * k_cache.shape(1));
        be.kv_write(a);
        return py::make_tuple(raw_from_dev(be, dkc, k_cache), raw_from_dev(be, dvc, v_cache));
      },
      py::arg("backend"), py::arg("k"), py::arg("v"), py::arg("k_cache"), py::arg("v_cache"),
      py::arg("slot_mapping"), py::arg("cache_dtype") = py::none(),
      py::arg("k_cache_dtype") = py::none(), py::arg("v_cache_dtype") = py::none(),
      "Updated (k_cache, v_cache), caches (num_blocks, block_size, num_kv_heads, head_dim) f32 or "
      "f16, or uint8 (..., row bytes) rows of a block type (q8_0, q4_0, q4_1) named by "
      "k_cache_dtype / v_cache_dtype, each defaulting to cache_dtype.");

  ops.def(
      "attention",
      [](const std::string& backend, F32 q, py::array k_cache, py::array v_cache, I32 block_tables,
         I32 query_start, I32 seq_lens, I32 positions, float scale, const std::string& variant,
         int sliding_window, float logit_softcap, std::optional<I32> generated_seqs,
         std::optional<std::string> cache_dtype, std::optional<std::string> k_cache_dtype,
         std::optional<std::string> v_cache_dtype) {
        Backend& be = get_backend(backend);
        AttnCall call(be, q, k_cache, v_cache, block_tables, query_start, seq_lens, positions,
                      scale, {cache_dtype, k_cache_dtype, v_cache_dtype});
        call.args.variant = variant_from_name(variant);
        call.args.sliding_window = sliding_window, call.args.logit_softcap = logit_softcap;
        Dev dgen;
        if (generated_seqs) {
          check_shape(*generated_seqs, {call.args.num_seqs}, "generated_seqs");
          dgen = to_dev(be, *generated_seqs);
          call.args.generated_seqs = dgen.view();
        }
        be.attention(call.args);
        return from_dev<float>(be, call.dout,
                               {call.args.num_tokens, call.args.num_heads, call.args.head_dim});
      },
      py::arg("backend"), py::arg("q"), py::arg("k_cache"), py::arg("v_cache"),
      py::arg("block_tables"), py::arg("query_start"), py::arg("seq_lens"), py::arg("positions"),
      py::arg("scale"), py::arg("variant") = "split", py::arg("sliding_window") = 0,
      py::arg("logit_softcap") = 0.0f, py::arg("generated_seqs") = py::none(),
      py::arg("cache_dtype") = py::none(), py::arg("k_cache_dtype") = py::none(),
      py::arg("v_cache_dtype") = py::none(),
      "Paged causal attention over a varlen batch; out (T, H, D). sliding_window W > 0: position p "
      "sees keys "
      "p - W < j <= p; logit_softcap c > 0: scores s -> c * tanh(s / c) (0 = off for both). "
      "generated_seqs (S,) i32: 1 where a sequence's queries are generated tokens (auto then "
      "decodes them at any count).");

  ops.def(
      "attention_timed",
      [](const std::string& backend, F32 q, py::array k_cache, py::array v_cache, I32 block_tables,
         I32 query_start, I32 seq_lens, I32 positions, float scale,
         const std::vector<std::string>& variants, int repeats, int sliding_window,
         float logit_softcap) {
        check(repeats >= 1,
              "attention_timed: expected repeats >= 1, found " + std::to_string(repeats));
        Backend& be = get_backend(backend);
        AttnCall call(be, q, k_cache, v_cache, block_tables, query_start, seq_lens, positions,
                      scale);
        call.args.sliding_window = sliding_window, call.args.logit_softcap = logit_softcap;
        std::vector<AttentionVariant> vs;
        for (const auto& v : variants) vs.push_back(variant_from_name(v));
        std::vector<std::vector<double>> secs(vs.size());
        for (int rep = 0; rep < repeats; ++rep) {  // alternate the variants within each repeat
          for (size_t i = 0; i < vs.size(); ++i) {
            call.args.variant = vs[i];
            const auto t0 = std::chrono::steady_clock::now();
            be.attention(call.args);
            be.synchronize();
            secs[i].push_back(
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
          }
        }
        py::dict out;
        for (size_t i = 0; i < vs.size(); ++i) out[py::str(variants[i])] = secs[i];
        return out;
      },
      py::arg("backend"), py::arg("q"), py::arg("k_cache"), py::arg("v_cache"),
      py::arg("block_tables"), py::arg("query_start"), py::arg("seq_lens"), py::arg("positions"),
      py::arg("scale"), py::arg("variants"), py::arg("repeats"), py::arg("sliding_window") = 0,
      py::arg("logit_softcap") = 0.0f,
      "Bench entry: uploads once, runs the attention variants alternately `repeats` times; "
      "returns {variant: [seconds per call]}.");

  ops.def(
      "attention_split_phases",
      [](F32 q, py::array k_cache, py::array v_cache, I32 block_tables, I32 query_start,
         I32 seq_lens, I32 positions, float scale, int num_threads) {
        Backend& be = get_backend("cpu");
        AttnCall call(be, q, k_cache, v_cache, block_tables, query_start, seq_lens, positions,
                      scale);
        const cpu::AttentionPhaseTimes t = cpu::profile_attention_split(call.args, num_threads);
        py::dict out;
        out["scores"] = t.scores, out["softmax"] = t.softmax, out["values"] = t.values,
        out["wall"] = t.wall;
        return out;
      },
      py::arg("q"), py::arg("k_cache"), py::arg("v_cache"), py::arg("block_tables"),
      py::arg("query_start"), py::arg("seq_lens"), py::arg("positions"), py::arg("scale"),
      py::arg("num_threads") = 0,
      "Profile of the CPU split baseline: seconds per phase (scores, softmax, values) summed over "
      "threads, "
      "and wall seconds.");

  ops.def(
      "mlp",
      [](F32 x, py::array w_gate, py::array w_up, py::array w_down, const std::string& dtype, int F,
         const std::string& path, int num_threads, int reps, const std::string& backend) {
        check_shape(x, {-1, -1}, "x");
        const int M = static_cast<int>(x.shape(0)), D = static_cast<int>(x.shape(1));
        const DType wt = dtype_from_name(dtype, "ops.mlp");
        check(F >= 0 && reps >= 1, "mlp: expected F >= 0 and reps >= 1");
        // A backend of its own: the path is a backend option.
        std::unique_ptr<Backend> be =
            create_backend(backend, BackendOptions{num_threads, mlp_path_from_name(path)});
        auto weight = [&](py::array& w, int N, int K, const char* what) {
          const size_t bytes = static_cast<size_t>(N) * dtype_row_bytes(wt, K);
          check(static_cast<size_t>(w.nbytes()) == bytes,
                std::string(what) + ": expected " + std::to_string(bytes) + " bytes of (" +
                    std::to_string(N) + ", " + std::to_string(K) + ") " + dtype + ", found " +
                    std::to_string(w.nbytes()));
          w = py::array::ensure(w, py::array::c_style);
          return be->matmul_weight(w.data(), wt, N, K);
        };
        auto wg = weight(w_gate, F, D, "w_gate"), wu = weight(w_up, F, D, "w_up"),
             wd = weight(w_down, D, F, "w_down");
        const size_t mf = static_cast<size_t>(M) * F * 4;
        Dev dx = to_dev(*be, x), dg = new_dev(*be, mf), du = new_dev(*be, mf),
            dout = new_dev(*be, static_cast<size_t>(M) * D * 4);
        MlpArgs a;
        a.out = dout.view(), a.x = dx.view(), a.gate = dg.view(), a.up = du.view();
        a.w_gate = {wg.get(), 0}, a.w_up = {wu.get(), 0}, a.w_down = {wd.get(), 0};
        a.gate_dtype = a.up_dtype = a.down_dtype = wt;
        a.M = M, a.D = D, a.F = F;
        double best = 1e300;
        {
          py::gil_scoped_release release;
          for (int r = 0; r < reps; ++r) {
            const auto t0 = std::chrono::steady_clock::now();
            be->mlp(a);
            be->synchronize();
            best = std::min(
                best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
          }
        }
        return py::make_tuple(from_dev<float>(*be, dout, {M, D}), best, be->mlp_report());
      },
      py::arg("x"), py::arg("w_gate"), py::arg("w_up"), py::arg("w_down"), py::arg("dtype"),
      py::arg("F"), py::arg("path") = "custom", py::arg("num_threads") = 0, py::arg("reps") = 1,
      py::arg("backend") = "cpu",
      "The MLP block, SiLU: (out (M, D), best seconds of reps, mlp_report lines) for x (M, D) and "
      "raw weights w_gate, w_up (F, D) and w_down (D, F) in dtype, on a new `backend` (num_threads "
      "CPU threads) whose MLP path is `path` (auto, custom or vendor).");

  ops.def(
      "glu",
      [](const std::string& backend, F32 gate, F32 up, const std::string& act) {
        Backend& be = get_backend(backend);
        check_shape(gate, {-1, -1}, "gate");
        const int R = static_cast<int>(gate.shape(0)), D = static_cast<int>(gate.shape(1));
        check_shape(up, {R, D}, "up");
        Dev dg = to_dev(be, gate), du = to_dev(be, up),
            dout = new_dev(be, static_cast<size_t>(R) * D * 4);
        GluArgs a;
        a.out = dout.view(), a.gate = dg.view(), a.up = du.view(), a.num_rows = R, a.dim = D;
        if (act == "silu") {
          a.act = Activation::Silu;
        } else if (act == "gelu_tanh") {
          a.act = Activation::GeluTanh;
        } else {
          throw std::invalid_argument("[ops.glu] act: expected 'silu' or 'gelu_tanh', found '" +
                                      act + "'");
        }
        be.glu(a);
        return from_dev<float>(be, dout, {R, D});
      },
      py::arg("backend"), py::arg("gate"), py::arg("up"), py::arg("act") = "silu",
      "act(gate) * up, (M, F) f32; act 'silu' (SwiGLU) or 'gelu_tanh' (GeGLU).");

  ops.def(
      "softcap",
      [](const std::string& backend, F32 x, float cap) {
        Backend& be = get_backend(backend);
        check_shape(x, {-1}, "x");
        const int64_t n = x.shape(0);
        Dev dx = to_dev(be, x), dout = new_dev(be, static_cast<size_t>(n) * 4);
        SoftcapArgs a;
        a.out = dout.view(), a.x = dx.view(), a.n = n, a.cap = cap;
        be.softcap(a);
        return from_dev<float>(be, dout, {n});
      },
      py::arg("backend"), py::arg("x"), py::arg("cap"), "cap * tanh(x / cap), (n,) f32.");

  ops.def(
      "add",
      [](const std::string& backend, F32 x, F32 y) {
        Backend& be = get_backend(backend);
        check_shape(x, {-1}, "a");
        check_shape(y, {x.shape(0)}, "b");
        const int64_t n = x.shape(0);
        Dev da = to_dev(be, x), db = to_dev(be, y), dout = new_dev(be, static_cast<size_t>(n) * 4);
        AddArgs a;
        a.out = dout.view(), a.a = da.view(), a.b = db.view(), a.n = n;
        be.add(a);
        return from_dev<float>(be, dout, {static_cast<py::ssize_t>(n)});
      },
      py::arg("backend"), py::arg("a"), py::arg("b"), "a + b over 1-D f32 arrays.");

  ops.def(
      "get_rows",
      [](const std::string& backend, F32 x, I32 rows) {
        Backend& be = get_backend(backend);
        check_shape(x, {-1, -1}, "x");
        check_shape(rows, {-1}, "rows");
        const int R = static_cast<int>(rows.shape(0)), D = static_cast<int>(x.shape(1));
        Dev dx = to_dev(be, x), dr = to_dev(be, rows),
            dout = new_dev(be, static_cast<size_t>(R) * D * 4);
        GetRowsArgs a;
        a.out = dout.view(), a.x = dx.view(), a.rows = dr.view(), a.num_rows = R, a.dim = D;
        a.num_src_rows = static_cast<int>(x.shape(0));
        be.get_rows(a);
        return from_dev<float>(be, dout, {R, D});
      },
      py::arg("backend"), py::arg("x"), py::arg("rows"), "x[rows] for x (num_src_rows, dim) f32.");

  ops.def(
      "copy_blocks",
      [](const std::string& backend, py::array cache, I32 pairs) {
        Backend& be = get_backend(backend);
        check(cache.ndim() >= 3,
              "cache: expected shape (num_planes, num_blocks, ...), found " + shape_str(cache));
        check_shape(pairs, {-1, 2}, "pairs");
        const int planes = static_cast<int>(cache.shape(0)),
                  blocks = static_cast<int>(cache.shape(1));
        const size_t block_bytes =
            blocks == 0 || planes == 0
                ? 0
                : static_cast<size_t>(cache.nbytes()) / (static_cast<size_t>(planes) * blocks);
        Dev dc = to_dev(be, cache), dp = to_dev(be, pairs);
        CopyBlocksArgs a;
        a.cache = dc.view(), a.pairs = dp.view(), a.num_pairs = static_cast<int>(pairs.shape(0));
        a.num_planes = planes, a.num_blocks = blocks, a.block_bytes = block_bytes;
        be.copy_blocks(a);
        return raw_from_dev(be, dc, cache);
      },
      py::arg("backend"), py::arg("cache"), py::arg("pairs"),
      "cache (num_planes, num_blocks, ...) with block src copied onto dst for each (src, dst) "
      "pair.");

  ops.def(
      "philox_uniform",
      [](uint64_t seed, uint32_t counter) {
        return uniform_from_philox(static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                                   counter);
      },
      py::arg("seed"), py::arg("counter"),
      "The uniform in [0, 1) the sampler draws for (64-bit seed, counter).");
  ops.def(
      "philox4x32_10",
      [](std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key) {
        const Philox4x32 w =
            philox4x32_10({counter[0], counter[1], counter[2], counter[3]}, key[0], key[1]);
        return std::array<uint32_t, 4>{w.w0, w.w1, w.w2, w.w3};
      },
      py::arg("counter"), py::arg("key"), "Raw Philox 4x32-10 block (4 words).");

  ops.def(
      "sample",
      [](const std::string& backend, F32 logits, const std::vector<py::dict>& params, int max_top,
         std::optional<F32> probs, std::optional<U32> allowed) -> py::tuple {
        Backend& be = get_backend(backend);
        check_shape(logits, {-1, -1}, "logits");
        const int R = static_cast<int>(logits.shape(0)), V = static_cast<int>(logits.shape(1));
        check(static_cast<int>(params.size()) == R, "params: expected one dict per logits row (" +
                                                        std::to_string(R) + "), found " +
                                                        std::to_string(params.size()));
        std::vector<int32_t> flat;
        std::vector<SampleRowParams> rows;
        for (const auto& d : params) rows.push_back(row_params(d, flat));
        Dev dl = to_dev(be, logits), dp = new_dev(be, rows.size() * sizeof(SampleRowParams)),
            dt = new_dev(be, flat.size() * 4), dids = new_dev(be, static_cast<size_t>(R) * 4),
            dlp = new_dev(be, static_cast<size_t>(R) * 4);
        // (R, max_top) each; an out-of-range max_top is passed on for the op to reject.
        const size_t top_elems =
            static_cast<size_t>(R) * std::clamp(max_top, 0, SampleArgs::MAX_TOP);
        Dev dti = new_dev(be, top_elems * 4), dtl = new_dev(be, top_elems * 4);
        if (!rows.empty()) be.upload(dp.view(), rows.data(), rows.size() * sizeof(SampleRowParams));
        if (!flat.empty()) be.upload(dt.view(), flat.data(), flat.size() * 4);
        SampleArgs a;
        a.out_ids = dids.view(), a.out_logprobs = dlp.view(), a.logits = dl.view(),
        a.params = dp.view();
        a.penalty_tokens = dt.view(), a.num_rows = R, a.vocab_size = V;
        a.out_top_ids = dti.view(), a.out_top_logprobs = dtl.view(), a.max_top = max_top;
        Dev dprobs;
        int P = 0;
        if (probs) {
          check_shape(*probs, {-1, V}, "probs");
          P = static_cast<int>(probs->shape(0));
          dprobs = to_dev(be, *probs);
          a.probs = dprobs.view(), a.num_probs_rows = P;
        }
        Dev dmask;
        if (allowed) {
          check_shape(*allowed, {-1, -1}, "allowed");
          dmask = to_dev(be, *allowed);
          a.allowed = dmask.view(), a.num_mask_rows = static_cast<int>(allowed->shape(0));
          a.mask_words = static_cast<int>(allowed->shape(1));
        }
        be.sample(a);
        py::list out;
        out.append(from_dev<int32_t>(be, dids, {R}));
        out.append(from_dev<float>(be, dlp, {R}));
        if (max_top != 0) {
          out.append(from_dev<int32_t>(be, dti, {R, max_top}));
          out.append(from_dev<float>(be, dtl, {R, max_top}));
        }
        if (probs) out.append(from_dev<float>(be, dprobs, {P, V}));
        return py::tuple(out);
      },
      py::arg("backend"), py::arg("logits"), py::arg("params"), py::arg("max_top") = 0,
      py::arg("probs") = py::none(), py::arg("allowed") = py::none(),
      "(ids (R,) i32, logprobs (R,) f32) for logits (R, V); params: one dict per row with keys "
      "temperature, "
      "top_k, top_p, min_p, repetition_penalty, presence_penalty, frequency_penalty, seed (u64), "
      "counter, "
      "penalty_tokens (list), ban_tokens (list of ids that cannot be drawn), top_logprobs "
      "(0..max_top). "
      "With max_top > 0 also (top_ids (R, max_top) i32, top_logprobs (R, max_top) f32). "
      "Speculative rows: keys stream, probs_row (write the row's distribution), draft_row and "
      "draft_token (rejection-sample a draft against a distribution) index probs (P, V) f32, "
      "whose contents after the call are returned last. allowed (M, ceil(V / 32)) u32: "
      "allowed-token masks, row r uses mask_row (key; -1 = none).");

  ops.def(
      "cpu_simd", [] { return std::string(cpu::row_kernels().name); },
      "Row kernels the cpu backend uses: 'avx2' or 'scalar' (LONGBOW_CPU_SIMD=scalar forces "
      "scalar).");
}

}  // namespace longbow::bindings
