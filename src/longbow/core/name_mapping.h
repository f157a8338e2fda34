// Hugging Face Llama tensor names -> canonical GGUF-style names used by the models.
#pragma once

#include <string>

namespace longbow {

// "model.layers.3.self_attn.q_proj.weight" -> "blk.3.attn_q.weight"; unknown names are returned
// unchanged (they are kept under their source name and ignored by the model).
std::string canonical_tensor_name(const std::string& hf_name);

}  // namespace longbow
