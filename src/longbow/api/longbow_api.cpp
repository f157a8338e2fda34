// The public C++ API (include/longbow/longbow.h): a thin facade over ModelFile and Engine.
#include "longbow/longbow.h"

#include "longbow/backend/op_checks.h"
#include "longbow/core/model_file.h"
#include "longbow/engine/engine.h"

namespace longbow {

std::shared_ptr<Model> Model::load(const std::string& path) {
  auto m = std::make_shared<Model>();
  m->file_ = ModelFile::open(path);
  m->path_ = path;
  const ModelConfig& c = m->file_->config();
  m->info_ = {c.architecture, c.vocab_size,   c.hidden_size,  c.num_layers,   c.num_heads,
              c.num_kv_heads, c.max_position, c.bos_token_id, c.eos_token_ids};
  return m;
}

Generator::Generator(std::shared_ptr<Model> model, const GeneratorOptions& o)
    : model_(std::move(model)) {
  if (!model_) throw std::invalid_argument("[longbow] Generator needs a model");
  engine::EngineConfig c;
  c.backend = o.backend;
  c.num_threads = o.num_threads;
  const KvDtypes kv = kv_dtypes_from_names(o.kv_dtype, o.k_dtype, o.v_dtype, "longbow");
  c.k_dtype = kv.k, c.v_dtype = kv.v;
  c.kv_rotation = o.kv_rotation;
  c.max_num_seqs = o.max_num_seqs;
  c.max_num_batched_tokens = o.max_num_batched_tokens;
  c.max_model_len = o.max_model_len;
  c.quantize = o.quantize;
  c.speculative = o.speculative;
  c.draft_model = o.draft_model;
  c.draft_quantize = o.draft_quantize;
  c.num_speculative_tokens = o.num_speculative_tokens;
  c.mlp = mlp_path_from_name(o.mlp);
  engine_ = std::make_unique<engine::Engine>(model_->file_, c);
}

Generator::~Generator() = default;

void Generator::submit(const std::string& request_id, const std::vector<int>& prompt,
                       const GenerationOptions& o) {
  engine_->add_request(request_id, prompt, o);
}

std::vector<Token> Generator::step() {
  std::vector<Token> out;
  for (const engine::TokenOutput& t : engine_->step()) {
    out.push_back({t.request_id, t.token_id, t.logprob, t.finished,
                   engine::finish_reason_name(t.finish_reason), t.top_logprobs});
  }
  return out;
}

bool Generator::abort(const std::string& request_id) { return engine_->abort(request_id); }

void Generator::set_allowed_tokens(const std::string& request_id, int sample_idx,
                                   const std::vector<uint32_t>& mask) {
  engine_->set_allowed_tokens(request_id, sample_idx, mask);
}

bool Generator::clear_allowed_tokens(const std::string& request_id, int sample_idx) {
  return engine_->clear_allowed_tokens(request_id, sample_idx);
}

bool Generator::has_work() const { return engine_->has_unfinished(); }

std::vector<int> Generator::generate(const std::vector<int>& prompt, const GenerationOptions& o) {
  const std::string id = "__generate_" + std::to_string(next_id_++);
  submit(id, prompt, o);
  std::vector<int> ids;
  bool done = false;
  while (!done && has_work()) {
    for (const Token& t : step()) {
      if (t.request_id != id) continue;
      if (t.id >= 0) ids.push_back(t.id);
      done = done || t.finished;
    }
  }
  return ids;
}

}  // namespace longbow
