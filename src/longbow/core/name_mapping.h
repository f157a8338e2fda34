// Hugging Face tensor names -> canonical GGUF-style names used by the models.
#pragma once

#include <string>

namespace longbow {

// "model.layers.3.self_attn.q_proj.weight" -> "blk.3.attn_q.weight". The mapping depends on the
// architecture (registry name): Gemma's post_attention_layernorm is a norm after attention, not
// the MLP's input norm. Unknown names are returned unchanged; the model refuses tensors it does
// not use.
std::string canonical_tensor_name(const std::string& hf_name, const std::string& arch);

}  // namespace longbow
