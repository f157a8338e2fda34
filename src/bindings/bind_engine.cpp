// Engine, SamplingParams and BlockManager bindings.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstring>

#include "bindings.h"
#include "longbow/backend/op_checks.h"
#include "longbow/engine/engine.h"

namespace py = pybind11;

namespace longbow::bindings {

namespace {

AttentionVariant attention_from(const std::string& name) {
  if (name == "auto") return AttentionVariant::Auto;
  if (name == "split") return AttentionVariant::Split;
  if (name == "fused") return AttentionVariant::FusedDecode;
  if (name == "flash") return AttentionVariant::FlashPrefill;
  throw std::invalid_argument(
      "[engine] expected attention 'auto', 'split', 'fused' or 'flash', found '" + name + "'");
}

// A mask argument of Engine.set_allowed_tokens as words: a 1-D buffer of uint32 (a numpy uint32
// array, array.array('I'), ...), any stride.
std::vector<uint32_t> mask_words(const std::string& request_id, const py::object& obj) {
  const std::string where = "[engine] set_allowed_tokens: request '" + request_id + "': ";
  const auto found = [&] {
    if (py::hasattr(obj, "dtype")) return "dtype " + py::str(obj.attr("dtype")).cast<std::string>();
    return "a " + py::str(py::type::of(obj).attr("__name__")).cast<std::string>();
  };
  if (!PyObject_CheckBuffer(obj.ptr())) {
    throw std::invalid_argument(where + "expected a 1-D uint32 array (numpy.uint32), found " +
                                found());
  }
  const py::buffer_info info = py::reinterpret_borrow<py::buffer>(obj).request();
  if (!info.item_type_is_equivalent_to<uint32_t>()) {
    throw std::invalid_argument(where + "expected a 1-D uint32 array (numpy.uint32), found " +
                                found());
  }
  if (info.ndim != 1) {
    throw std::invalid_argument(where + "expected a 1-D uint32 array, found " +
                                std::to_string(info.ndim) + " dimensions");
  }
  std::vector<uint32_t> words(static_cast<size_t>(info.shape[0]));
  const auto* base = static_cast<const char*>(info.ptr);
  for (size_t i = 0; i < words.size(); ++i) {
    std::memcpy(&words[i], base + static_cast<py::ssize_t>(i) * info.strides[0], sizeof(uint32_t));
  }
  return words;
}

}  // namespace

void bind_engine(py::module_& m) {
  using namespace longbow::engine;

  // The fields in declaration order; FIELDS lists them so that Python's SamplingParams copies
  // (and tests that it declares) every one.
  py::class_<SamplingParams> sampling(m, "EngineSamplingParams",
                                      "A request's sampling settings (longbow/sampling_params.h): "
                                      "the defaults and range checks of every surface.");
  sampling.def(py::init<>())
      .def("validate", &SamplingParams::validate, py::arg("vocab_size") = 0,
           "Raises ValueError '[sampling] <field> ...' for the first bad field; vocab_size 0 = "
           "stop_token_ids not bounded yet.");
  std::vector<std::string> fields;
  const auto field = [&](const char* name, auto member) {
    sampling.def_readwrite(name, member);
    fields.emplace_back(name);
  };
  field("n", &SamplingParams::n);
  field("max_tokens", &SamplingParams::max_tokens);
  field("min_tokens", &SamplingParams::min_tokens);
  field("temperature", &SamplingParams::temperature);
  field("top_k", &SamplingParams::top_k);
  field("top_p", &SamplingParams::top_p);
  field("min_p", &SamplingParams::min_p);
  field("repetition_penalty", &SamplingParams::repetition_penalty);
  field("presence_penalty", &SamplingParams::presence_penalty);
  field("frequency_penalty", &SamplingParams::frequency_penalty);
  field("seed", &SamplingParams::seed);
  field("stop_token_ids", &SamplingParams::stop_token_ids);
  field("ignore_eos", &SamplingParams::ignore_eos);
  field("top_logprobs", &SamplingParams::top_logprobs);
  field("speculative", &SamplingParams::speculative);
  sampling.attr("FIELDS") = py::tuple(py::cast(fields));
  m.attr("MAX_TOP_LOGPROBS") = MAX_TOP_LOGPROBS;

  py::class_<BlockManager>(
      m, "BlockManager",
      "Paged KV block allocator (block 0 is the null block): ref counts, LRU free "
      "queue, prefix caching by chained block hashes, copy-on-write.")
      .def(py::init<int, int, bool>(), py::arg("num_blocks"), py::arg("block_size"),
           py::arg("enable_prefix_caching") = true)
      .def_property_readonly("num_blocks", &BlockManager::num_blocks)
      .def_property_readonly("block_size", &BlockManager::block_size)
      .def_property_readonly("num_free", &BlockManager::num_free)
      .def_property_readonly("num_used", &BlockManager::num_used)
      .def_property_readonly("num_cached", &BlockManager::num_cached)
      .def_property_readonly("num_evictions", &BlockManager::num_evictions)
      .def("allocate", &BlockManager::allocate, py::arg("n"),
           "n fresh blocks, or None when fewer are free.")
      .def(
          "ensure_capacity",
          [](BlockManager& bm, std::vector<int> table,
             int num_tokens) -> std::optional<std::vector<int>> {
            if (!bm.ensure_capacity(table, num_tokens)) return std::nullopt;
            return table;
          },
          py::arg("table"), py::arg("num_tokens"), "The grown table, or None (nothing changed).")
      .def(
          "prepare_write",
          [](BlockManager& bm, std::vector<int> table, int begin, int end) -> py::object {
            std::vector<std::pair<int, int>> copies;
            if (!bm.prepare_write(table, begin, end, copies)) return py::none();
            return py::make_tuple(table, copies);
          },
          py::arg("table"), py::arg("begin"), py::arg("end"),
          "(new table, [(src, dst) copies]) making positions [begin, end) writable, or None.")
      .def("share", &BlockManager::share, py::arg("blocks"))
      .def("release", &BlockManager::release, py::arg("blocks"))
      .def("ref_count", &BlockManager::ref_count, py::arg("block_id"))
      .def("free_queue", &BlockManager::free_queue)
      .def_static(
          "hash_block",
          [](uint64_t parent, const std::vector<int>& tokens) {
            return BlockManager::hash_block(parent, tokens.data(), static_cast<int>(tokens.size()));
          },
          py::arg("parent"), py::arg("tokens"))
      .def("match_prefix", &BlockManager::match_prefix, py::arg("tokens"), py::arg("max_tokens"))
      .def(
          "acquire_prefix",
          [](BlockManager& bm, const std::vector<int>& tokens, int max_tokens) {
            PrefixHit h = bm.acquire_prefix(tokens, max_tokens);
            return py::make_tuple(h.blocks, h.hashes);
          },
          py::arg("tokens"), py::arg("max_tokens"),
          "(blocks, hashes) of the cached prefix, now owned.")
      .def(
          "cache_full_blocks",
          [](BlockManager& bm, const std::vector<int>& table, const std::vector<int>& tokens,
             int num_computed, std::vector<uint64_t> hashes) {
            bm.cache_full_blocks(table, tokens, num_computed, hashes);
            return hashes;
          },
          py::arg("table"), py::arg("tokens"), py::arg("num_computed"), py::arg("hashes"),
          "Registers full computed blocks; returns the extended hash list.")
      .def("block_hash", &BlockManager::block_hash, py::arg("block_id"))
      .def("cached_block", &BlockManager::cached_block, py::arg("hash"));

  // Keyword defaults come from EngineConfig (include/longbow/engine_defaults.h); Python's LLM, the
  // CLI and the server leave unset settings to these.
  const EngineConfig defaults;
  m.attr("ENGINE_DEFAULTS") = py::dict(
      py::arg("backend") = defaults.backend, py::arg("num_threads") = defaults.num_threads,
      py::arg("kv_dtype") = std::string(longbow::defaults::KV_DTYPE), py::arg("k_dtype") = "",
      py::arg("v_dtype") = "", py::arg("kv_rotation") = defaults.kv_rotation,
      py::arg("block_size") = defaults.block_size, py::arg("num_blocks") = defaults.num_blocks,
      py::arg("kv_cache_bytes") = defaults.kv_cache_bytes,
      py::arg("max_num_seqs") = defaults.max_num_seqs,
      py::arg("max_num_batched_tokens") = defaults.max_num_batched_tokens,
      py::arg("max_model_len") = defaults.max_model_len, py::arg("attention") = "auto",
      py::arg("enable_prefix_caching") = defaults.enable_prefix_caching,
      py::arg("quantize") = defaults.quantize, py::arg("speculative") = defaults.speculative,
      py::arg("draft_model") = defaults.draft_model,
      py::arg("draft_quantize") = defaults.draft_quantize,
      py::arg("num_speculative_tokens") = defaults.num_speculative_tokens,
      py::arg("ngram_min") = defaults.ngram_min, py::arg("ngram_max") = defaults.ngram_max,
      py::arg("speculative_max_batch") = defaults.speculative_max_batch,
      py::arg("mlp") = longbow::defaults::MLP);
  py::class_<Engine>(m, "Engine",
                     "The C++ engine: scheduler, paged KV cache, model runner and sampler.")
      .def(py::init([](const std::string& model_path, const std::string& backend, int num_threads,
                       const std::string& kv_dtype, const std::string& k_dtype,
                       const std::string& v_dtype, bool kv_rotation, int block_size, int num_blocks,
                       size_t kv_cache_bytes, int max_num_seqs, int max_num_batched_tokens,
                       int max_model_len, const std::string& attention, bool enable_prefix_caching,
                       const std::string& quantize, const std::string& speculative,
                       const std::string& draft_model, const std::string& draft_quantize,
                       int num_speculative_tokens, int ngram_min, int ngram_max,
                       int speculative_max_batch, const std::string& mlp) {
             EngineConfig c;
             c.backend = backend;
             c.num_threads = num_threads;
             // The names' dtypes (aliases q8, q4); the engine checks that they are KV cache types.
             const KvDtypes kv = kv_dtypes_from_names(kv_dtype, k_dtype, v_dtype, "engine");
             c.k_dtype = kv.k, c.v_dtype = kv.v;
             c.kv_rotation = kv_rotation;
             c.block_size = block_size;
             c.num_blocks = num_blocks;
             if (kv_cache_bytes > 0) c.kv_cache_bytes = kv_cache_bytes;
             c.max_num_seqs = max_num_seqs;
             c.max_num_batched_tokens = max_num_batched_tokens;
             c.max_model_len = max_model_len;
             c.attention = attention_from(attention);
             c.enable_prefix_caching = enable_prefix_caching;
             c.quantize = quantize;
             c.speculative = speculative;
             c.draft_model = draft_model;
             c.draft_quantize = draft_quantize;
             c.num_speculative_tokens = num_speculative_tokens;
             c.ngram_min = ngram_min;
             c.ngram_max = ngram_max;
             c.speculative_max_batch = speculative_max_batch;
             c.mlp = mlp_path_from_name(mlp);
             std::shared_ptr<const ModelFile> file = ModelFile::open(model_path);
             return std::make_unique<Engine>(file, c);
           }),
           py::arg("model_path"), py::arg("backend") = defaults.backend,
           py::arg("num_threads") = defaults.num_threads,
           py::arg("kv_dtype") = longbow::defaults::KV_DTYPE, py::arg("k_dtype") = "",
           py::arg("v_dtype") = "", py::arg("kv_rotation") = defaults.kv_rotation,
           py::arg("block_size") = defaults.block_size, py::arg("num_blocks") = defaults.num_blocks,
           py::arg("kv_cache_bytes") = 0, py::arg("max_num_seqs") = defaults.max_num_seqs,
           py::arg("max_num_batched_tokens") = defaults.max_num_batched_tokens,
           py::arg("max_model_len") = defaults.max_model_len, py::arg("attention") = "auto",
           py::arg("enable_prefix_caching") = defaults.enable_prefix_caching,
           py::arg("quantize") = defaults.quantize, py::arg("speculative") = defaults.speculative,
           py::arg("draft_model") = defaults.draft_model,
           py::arg("draft_quantize") = defaults.draft_quantize,
           py::arg("num_speculative_tokens") = defaults.num_speculative_tokens,
           py::arg("ngram_min") = defaults.ngram_min, py::arg("ngram_max") = defaults.ngram_max,
           py::arg("speculative_max_batch") = defaults.speculative_max_batch,
           py::arg("mlp") = longbow::defaults::MLP, py::call_guard<py::gil_scoped_release>())
      .def(
          "mlp_report", [](Engine& e) { return e.backend().mlp_report(); },
          "How the backend runs the MLP block: its path and, for auto, every measured shape with "
          "both paths' times and the pick.")
      .def("add_request", &Engine::add_request, py::arg("request_id"), py::arg("prompt_token_ids"),
           py::arg("params"), "Queue a request of prompt token ids.")
      .def(
          "step",
          [](Engine& e) {
            std::vector<TokenOutput> outs;
            {
              py::gil_scoped_release release;
              outs = e.step();
            }
            py::list result;
            for (const auto& t : outs) {
              result.append(py::make_tuple(
                  t.request_id, t.token_id, t.logprob, t.finished,
                  finish_reason_name(t.finish_reason), t.sample_idx, t.top_logprobs,
                  py::make_tuple(t.num_verify_steps, t.num_draft_tokens, t.num_accepted_tokens)));
            }
            return result;
          },
          "Run one iteration; returns [(request_id, token_id, logprob, finished, finish_reason, "
          "sample_idx, top_logprobs, (verify_steps, draft_tokens, accepted_tokens))]; top_logprobs "
          "is "
          "[(token_id, logprob)], most likely first, empty unless the request asked for some; "
          "the last triple counts the sample's speculative decoding so far.")
      .def("abort", &Engine::abort, py::arg("request_id"), py::arg("sample_idx") = -1,
           "Abort a request (every sample, or one); False if it was not running.")
      .def(
          "set_allowed_tokens",
          [](Engine& e, const std::string& request_id, int sample_index, const py::object& mask) {
            e.set_allowed_tokens(request_id, sample_index, mask_words(request_id, mask));
          },
          py::arg("request_id"), py::arg("sample_index"), py::arg("mask"),
          "Structured output: the tokens allowed for the NEXT token of sample sample_index of a "
          "request. mask: 1-D uint32 array of ceil(vocab_size / 32) words, bit t % 32 of word "
          "t // 32 set = token t allowed. Applies to one token, then is cleared (set a fresh one "
          "before each step); kept while the sample is in prefill, not forked yet or preempted; "
          "a sample with a pending mask gets no speculative draft tokens. Logprobs stay those of "
          "the unmasked logits. Raises ValueError naming the request for an unknown request, a "
          "sample index out of range or finished, a wrong dtype, shape or word count, bits at or "
          "beyond vocab_size, or a mask allowing no token.")
      .def("clear_allowed_tokens", &Engine::clear_allowed_tokens, py::arg("request_id"),
           py::arg("sample_index"),
           "Drop the pending mask of a request's sample; False if it had none (or is finished). "
           "Raises ValueError for an unknown request or a sample index out of range.")
      .def("has_unfinished", &Engine::has_unfinished)
      .def("set_eos_token_ids", &Engine::set_eos_token_ids)
      .def_property_readonly("eos_token_ids", &Engine::eos_token_ids)
      .def_property_readonly("backend_name", [](Engine& e) { return e.backend().name(); })
      .def_property_readonly("num_blocks", [](const Engine& e) { return e.config().num_blocks; })
      .def_property_readonly("max_model_len",
                             [](const Engine& e) { return e.config().max_model_len; })
      .def_property_readonly("block_size", [](const Engine& e) { return e.config().block_size; })
      .def_property_readonly("context_per_token", &Engine::context_per_token,
                             "Prefill chunks cost 1 + position / this per token (scheduler).")
      .def_property_readonly("max_num_seqs",
                             [](const Engine& e) { return e.config().max_num_seqs; })
      .def_property_readonly("enable_prefix_caching",
                             [](const Engine& e) { return e.config().enable_prefix_caching; })
      .def("stats",
           [](const Engine& e) {
             EngineStats s = e.stats();
             py::dict d;
             d["num_running"] = s.num_running;
             d["num_waiting"] = s.num_waiting;
             d["num_blocks_total"] = s.num_blocks_total;
             d["num_blocks_used"] = s.num_blocks_used;
             d["num_blocks_free"] = s.num_blocks_free;
             d["kv_utilization"] = s.kv_utilization;
             d["num_preemptions"] = s.num_preemptions;
             d["num_blocks_cached"] = s.num_blocks_cached;
             d["prefix_cache_queries"] = s.prefix_cache_queries;
             d["prefix_cache_hits"] = s.prefix_cache_hits;
             d["prefix_cache_hit_rate"] = s.prefix_cache_hit_rate;
             d["num_cow_copies"] = s.num_cow_copies;
             d["num_evictions"] = s.num_evictions;
             d["mean_step_tokens"] = s.mean_step_tokens;
             d["last_step_tokens"] = s.last_step_tokens;
             d["last_step_seqs"] = s.last_step_seqs;
             d["num_steps"] = s.num_steps;
             d["num_verify_steps"] = s.num_verify_steps;
             d["num_draft_tokens"] = s.num_draft_tokens;
             d["num_accepted_tokens"] = s.num_accepted_tokens;
             d["acceptance_rate"] = s.acceptance_rate;
             d["mean_accepted_length"] = s.mean_accepted_length;
             return d;
           })
      .def(
          "prompt_logits",
          [](Engine& e, const std::vector<int>& prompt, int first) -> py::array {
            std::vector<float> logits;
            {
              py::gil_scoped_release release;
              logits = e.prompt_logits(prompt, first);
            }
            const auto vocab = static_cast<py::ssize_t>(e.model_config().vocab_size);
            if (first < 0) return py::array_t<float>(vocab, logits.data());
            const auto rows = static_cast<py::ssize_t>(logits.size()) / vocab;
            return py::array_t<float>({rows, vocab}, logits.data());
          },
          py::arg("prompt_token_ids"), py::arg("first") = -1,
          "Logits of the last prompt token (vocab_size,) float32; with first >= 0, of prompt "
          "positions first.. (n - first, vocab_size).");
}

}  // namespace longbow::bindings
