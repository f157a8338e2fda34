// Model files: ModelFile (GGUF / safetensors), ModelConfig, tensor infos and GGUF metadata.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstring>

#include "bindings.h"
#include "longbow/core/model_file.h"
#include "longbow/models/features.h"

namespace py = pybind11;

namespace longbow::bindings {

namespace {

py::object gguf_value_to_py(const GgufValue& v) {
  return std::visit(
      [](const auto& x) -> py::object {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::vector<bool>>) {
          py::list l;
          for (bool b : x) l.append(py::bool_(b));
          return l;
        } else if constexpr (std::is_same_v<T, std::string>) {
          // Metadata strings may hold arbitrary bytes; decode leniently.
          return py::reinterpret_steal<py::object>(
              PyUnicode_DecodeUTF8(x.data(), static_cast<Py_ssize_t>(x.size()), "replace"));
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          py::list l;
          for (const std::string& s : x) {
            l.append(py::reinterpret_steal<py::object>(
                PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace")));
          }
          return l;
        } else {
          return py::cast(x);
        }
      },
      v);
}

py::dict tensor_info_dict(const TensorInfo& t) {
  py::dict d;
  d["name"] = t.name;
  d["dtype"] = dtype_name(t.dtype);
  d["shape"] = py::tuple(py::cast(t.shape));
  d["file"] = t.file;
  d["source_name"] = t.source_name;
  d["nbytes"] = t.bytes;
  return d;
}

}  // namespace

void bind_weights(py::module_& m) {
  py::class_<RopeScaling>(m, "RopeScaling", "RoPE scaling parameters (type '' means none).")
      .def_readonly("type", &RopeScaling::type)
      .def_readonly("factor", &RopeScaling::factor)
      .def_readonly("low_freq_factor", &RopeScaling::low_freq_factor)
      .def_readonly("high_freq_factor", &RopeScaling::high_freq_factor)
      .def_readonly("original_max_position", &RopeScaling::original_max_position);

  py::class_<ModelConfig>(m, "ModelConfig",
                          "Hyper-parameters of a decoder model (any supported family).")
      .def_readonly("architecture", &ModelConfig::architecture)
      .def_readonly("vocab_size", &ModelConfig::vocab_size)
      .def_readonly("hidden_size", &ModelConfig::hidden_size)
      .def_readonly("intermediate_size", &ModelConfig::intermediate_size)
      .def_readonly("num_layers", &ModelConfig::num_layers)
      .def_readonly("num_heads", &ModelConfig::num_heads)
      .def_readonly("num_kv_heads", &ModelConfig::num_kv_heads)
      .def_readonly("head_dim", &ModelConfig::head_dim)
      .def_readonly("rot_dim", &ModelConfig::rot_dim)
      .def_readonly("max_position", &ModelConfig::max_position)
      .def_readonly("rms_eps", &ModelConfig::rms_eps)
      .def_readonly("rope_theta", &ModelConfig::rope_theta)
      .def_readonly("rope_scaling", &ModelConfig::rope_scaling)
      .def_readonly("tie_embeddings", &ModelConfig::tie_embeddings)
      .def_readonly("rope_interleaved", &ModelConfig::rope_interleaved)
      .def_readonly("bos_token_id", &ModelConfig::bos_token_id)
      .def_readonly("eos_token_ids", &ModelConfig::eos_token_ids)
      .def_property_readonly("activation",
                             [](const ModelConfig& c) { return activation_name(c.activation); })
      .def_readonly("qkv_bias", &ModelConfig::qkv_bias)
      .def_readonly("o_bias", &ModelConfig::o_bias)
      .def_readonly("mlp_bias", &ModelConfig::mlp_bias)
      .def_readonly("qk_norm", &ModelConfig::qk_norm)
      .def_readonly("sandwich_norms", &ModelConfig::sandwich_norms)
      .def_readonly("norm_weight_offset", &ModelConfig::norm_weight_offset)
      .def_readonly("embedding_scale", &ModelConfig::embedding_scale)
      .def_readonly("attention_scale", &ModelConfig::attention_scale)
      .def_readonly("attn_logit_softcap", &ModelConfig::attn_logit_softcap)
      .def_readonly("final_logit_softcap", &ModelConfig::final_logit_softcap)
      .def_readonly("sliding_window", &ModelConfig::sliding_window)
      .def_property_readonly("layer_sliding",
                             [](const ModelConfig& c) {
                               std::vector<bool> v;
                               for (int l = 0; l < c.num_layers; ++l)
                                 v.push_back(c.layer_uses_window(l));
                               return v;
                             })
      .def_readonly("rope_theta_sliding", &ModelConfig::rope_theta_sliding)
      .def_property_readonly(
          "features",
          [](const ModelConfig& c) {
            std::vector<std::pair<std::string, bool>> out;
            for (const models::Feature& f : models::model_features(c))
              out.emplace_back(f.name, f.supported);
            return out;
          },
          "[(feature, supported)] beyond the plain Llama graph; an unsupported one makes loading "
          "fail.");

  m.def(
      "architectures",
      [] {
        std::vector<std::pair<std::string, std::vector<std::string>>> out;
        for (const ArchFacts& a : architectures()) {
          std::vector<std::string> types(a.hf_model_types.begin(), a.hf_model_types.end());
          out.emplace_back(std::string(a.name), types);
        }
        return out;
      },
      "[(architecture, [HF model_type, ...])] of the supported model families.");

  // shared_ptr holder so other bindings (Engine) can share an opened file with C++ owners.
  py::class_<ModelFile, std::shared_ptr<ModelFile>>(
      m, "ModelFile", "A memory-mapped, validated model (GGUF file or HF safetensors folder).")
      .def(py::init([](const std::string& path) {
             return std::shared_ptr<ModelFile>(ModelFile::open(path));
           }),
           py::arg("path"),
           "Opens and validates a .gguf file, a .safetensors file or an HF folder; ValueError when "
           "malformed.")
      .def_property_readonly("format", &ModelFile::format, "'gguf' or 'safetensors'.")
      .def_property_readonly("path", &ModelFile::path)
      .def_property_readonly("config", &ModelFile::config, py::return_value_policy::copy)
      .def(
          "tensor_names",
          [](const ModelFile& mf) {
            std::vector<std::string> names;
            for (const TensorInfo& t : mf.tensors()) names.push_back(t.name);
            return names;
          },
          "Canonical (GGUF-style) names of all tensors, in file order.")
      .def(
          "tensor_info",
          [](const ModelFile& mf, const std::string& name) {
            return tensor_info_dict(mf.get(name));
          },
          py::arg("name"), "dict(name, dtype, shape, file, source_name, nbytes) of a tensor.")
      .def(
          "tensor_bytes",
          [](const ModelFile& mf, const std::string& name) {
            const TensorInfo& t = mf.get(name);
            py::array_t<uint8_t> out(static_cast<py::ssize_t>(t.bytes));
            if (t.bytes > 0) std::memcpy(out.mutable_data(), t.data, t.bytes);
            return out;
          },
          py::arg("name"), "A copy of the tensor's raw bytes as a uint8 numpy array (for tests).")
      .def(
          "metadata",
          [](const ModelFile& mf) {
            py::dict d;
            for (const auto& [k, v] : mf.metadata()) d[py::str(k)] = gguf_value_to_py(v);
            return d;
          },
          "GGUF metadata as a dict (empty for safetensors).");
}

}  // namespace longbow::bindings
