"""Every config field and tensor that changes the math is read or refused, never ignored.

HF config.json keys (legacy and transformers 5 `rope_parameters`), GGUF metadata keys and tensors
in the file that the model would not use; one test per field. The numerics of the families are
checked against transformers in test_families_oracle.py (slow).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import tiny_models as tm
from longbow import _core


def _hf(tmp_path, **changes):
    folder = tm.write_hf_model(tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    for k, v in changes.items():
        if v is _DROP:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


_DROP = object()


def _add_tensors(folder, extra: dict[str, np.ndarray]):
    path = folder / "model.safetensors"
    tensors = tm.read_safetensors(path)
    for name, a in extra.items():
        tensors[name] = ("F32", a.shape, a.astype(np.float32).tobytes())
    tm.write_safetensors(path, tensors, metadata={"format": "pt"})


def _engine(path):
    return _core.Engine(str(path), backend="cpu", num_threads=1, max_model_len=64, num_blocks=16)


def test_rope_parameters_transformers5_equals_legacy(tmp_path):
    legacy = {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 128,
    }
    a = _core.ModelFile(str(_hf(tmp_path / "a", rope_theta=500000.0, rope_scaling=legacy))).config
    b = _core.ModelFile(
        str(
            _hf(
                tmp_path / "b",
                rope_theta=_DROP,
                rope_scaling=_DROP,
                rope_parameters={**legacy, "rope_theta": 500000.0},
            )
        )
    ).config
    for c in (a, b):
        assert c.rope_theta == 500000.0
        assert c.rope_scaling.type == "llama3" and c.rope_scaling.factor == 8.0
        assert c.rope_scaling.original_max_position == 128


def test_rope_parameters_default_type(tmp_path):
    c = _core.ModelFile(
        str(
            _hf(
                tmp_path,
                rope_theta=_DROP,
                rope_scaling=_DROP,
                rope_parameters={"rope_type": "default", "rope_theta": 1234.0},
            )
        )
    ).config
    assert c.rope_theta == 1234.0 and c.rope_scaling.type == ""


@pytest.mark.parametrize(
    "params, needle",
    [
        ({"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4, "beta_fast": 32}, "beta_fast"),
        ({"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4}, "yarn"),
        ({"rope_type": "dynamic", "factor": 2.0}, "dynamic"),
        (
            {"rope_type": "longrope", "short_factor": [1.0], "long_factor": [1.0]},
            "(short|long)_factor",
        ),
    ],
)
def test_unsupported_rope_is_refused(tmp_path, params, needle):
    with pytest.raises(ValueError, match=needle):
        _core.ModelFile(str(_hf(tmp_path, rope_scaling=_DROP, rope_parameters=params)))


def test_partial_rotary_factor(tmp_path):
    c = _core.ModelFile(
        str(
            _hf(
                tmp_path,
                rope_scaling=_DROP,
                rope_parameters={
                    "rope_type": "default",
                    "rope_theta": 1e4,
                    "partial_rotary_factor": 0.5,
                },
            )
        )
    ).config
    assert c.rot_dim == c.head_dim // 2


@pytest.mark.parametrize(
    "key, value",
    [
        ("some_new_knob", 3),
        ("attn_logit_softcapping", 50.0),
        ("sliding_window", 8),
        ("quantization_config", {"quant_method": "gptq"}),
        ("hidden_activation", "gelu_pytorch_tanh"),
    ],
)
def test_unknown_config_key_is_refused(tmp_path, key, value):
    with pytest.raises(ValueError, match=key):
        _core.ModelFile(str(_hf(tmp_path, **{key: value})))


def test_unknown_key_with_null_value_is_accepted(tmp_path):
    _core.ModelFile(str(_hf(tmp_path, some_new_knob=None)))


@pytest.mark.parametrize("act", ["gelu", "relu", "gelu_python"])
def test_unsupported_activation_is_refused(tmp_path, act):
    with pytest.raises(ValueError, match=f"hidden_act.*{act}"):
        _core.ModelFile(str(_hf(tmp_path, hidden_act=act)))


def test_attention_bias_needs_all_four_biases(tmp_path):
    folder = _hf(tmp_path, attention_bias=True)
    c = _core.ModelFile(str(folder)).config
    assert c.qkv_bias and c.o_bias and not c.mlp_bias
    with pytest.raises(ValueError, match="missing tensor blk.0.attn_q.bias"):
        _engine(folder)
    d, q, kv = 64, 64, 32
    _add_tensors(
        folder,
        {
            f"model.layers.{i}.self_attn.{p}_proj.bias": np.ones(n)
            for i in range(2)
            for p, n in (("q", q), ("k", kv), ("v", kv))
        },
    )
    with pytest.raises(ValueError, match="missing tensor blk.0.attn_output.bias"):
        _engine(folder)
    _add_tensors(folder, {f"model.layers.{i}.self_attn.o_proj.bias": np.ones(d) for i in range(2)})
    _engine(folder)


def test_mlp_bias_needs_mlp_biases(tmp_path):
    folder = _hf(tmp_path, mlp_bias=True)
    assert _core.ModelFile(str(folder)).config.mlp_bias
    with pytest.raises(ValueError, match="missing tensor blk.0.ffn_gate.bias"):
        _engine(folder)


def test_o_proj_bias_changes_logits(tmp_path):
    """An o_proj bias is applied, not dropped: the logits move by it."""
    base = _hf(tmp_path / "a")
    biased = _hf(tmp_path / "b", attention_bias=True)
    zeros = {
        f"model.layers.{i}.self_attn.{p}_proj.bias": np.zeros(n)
        for i in range(2)
        for p, n in (("q", 64), ("k", 32), ("v", 32))
    }
    _add_tensors(
        biased,
        {
            **zeros,
            **{f"model.layers.{i}.self_attn.o_proj.bias": np.full(64, 0.5) for i in range(2)},
        },
    )
    la = np.array(_engine(base).prompt_logits([1, 5, 9]))
    lb = np.array(_engine(biased).prompt_logits([1, 5, 9]))
    assert np.abs(la - lb).max() > 1e-3
    _add_tensors(
        biased, {f"model.layers.{i}.self_attn.o_proj.bias": np.zeros(64) for i in range(2)}
    )
    np.testing.assert_allclose(
        np.array(_engine(biased).prompt_logits([1, 5, 9])), la, rtol=0, atol=1e-5
    )


def test_unused_tensor_is_refused(tmp_path):
    folder = _hf(tmp_path)
    _add_tensors(folder, {"model.layers.0.self_attn.o_proj.bias": np.ones(64)})
    with pytest.raises(ValueError, match="o_proj.bias is not used"):
        _engine(folder)
    folder2 = _hf(tmp_path / "x")
    _add_tensors(folder2, {"model.extra_projection.weight": np.ones((4, 4))})
    with pytest.raises(ValueError, match="model.extra_projection.weight is not used"):
        _engine(folder2)


def test_cached_rotary_inv_freq_is_accepted(tmp_path):
    folder = _hf(tmp_path)
    _add_tensors(folder, {"model.layers.0.self_attn.rotary_emb.inv_freq": np.ones(8)})
    _engine(folder)


def test_tied_checkpoint_with_a_different_lm_head_is_refused(tmp_path):
    folder = tm.write_hf_model(tmp_path / "m", tie=True)
    _add_tensors(folder, {"lm_head.weight": np.ones((384, 64))})
    with pytest.raises(ValueError, match="differs from the embedding table"):
        _engine(folder)


@pytest.mark.parametrize(
    "model_type, expect",
    [
        ("gpt2", "model_type"),
        ("gemma3", "model_type"),
    ],
)
def test_unknown_model_type(tmp_path, model_type, expect):
    with pytest.raises(ValueError, match=expect):
        _core.ModelFile(str(_hf(tmp_path, model_type=model_type)))


def test_family_configs_are_read(tmp_path):
    """The facts of each family land in the config (the model itself is checked by the oracle)."""
    q2 = _core.ModelFile(
        str(
            _hf(
                tmp_path / "q2",
                model_type="qwen2",
                attention_bias=_DROP,
                mlp_bias=_DROP,
                use_sliding_window=False,
                sliding_window=None,
            )
        )
    ).config
    assert q2.architecture == "qwen2" and q2.qkv_bias and not q2.o_bias and not q2.rope_interleaved
    q3 = _core.ModelFile(
        str(_hf(tmp_path / "q3", model_type="qwen3", mlp_bias=_DROP, head_dim=16))
    ).config
    assert q3.qk_norm and not q3.qkv_bias
    g2 = _core.ModelFile(
        str(
            _hf(
                tmp_path / "g2",
                model_type="gemma2",
                mlp_bias=_DROP,
                hidden_act=_DROP,
                hidden_activation="gelu_pytorch_tanh",
                head_dim=16,
                query_pre_attn_scalar=16,
                attn_logit_softcapping=50.0,
                final_logit_softcapping=30.0,
                sliding_window=4,
                layer_types=["sliding_attention", "full_attention"],
            )
        )
    ).config
    assert g2.activation == "gelu_tanh" and g2.sandwich_norms and g2.norm_weight_offset == 1.0
    assert math.isclose(g2.embedding_scale, 8.0) and math.isclose(g2.attention_scale, 0.25)
    assert g2.attn_logit_softcap == 50.0 and g2.final_logit_softcap == 30.0
    assert g2.sliding_window == 4 and g2.layer_sliding == [True, False]
    names = [n for n, _ in g2.features]
    assert any("sliding-window" in n for n in names) and any("soft-capping" in n for n in names)
    m = _core.ModelFile(
        str(
            _hf(
                tmp_path / "m",
                model_type="mistral",
                attention_bias=_DROP,
                mlp_bias=_DROP,
                sliding_window=4096,
            )
        )
    ).config
    assert m.sliding_window == 4096 and m.layer_sliding == [True, True]


def test_qwen_sliding_window_off_unless_used(tmp_path):
    c = _core.ModelFile(
        str(
            _hf(
                tmp_path,
                model_type="qwen2",
                attention_bias=_DROP,
                mlp_bias=_DROP,
                use_sliding_window=False,
                sliding_window=32,
                max_window_layers=1,
            )
        )
    ).config
    assert c.sliding_window == 0
    c = _core.ModelFile(
        str(
            _hf(
                tmp_path / "b",
                model_type="qwen2",
                attention_bias=_DROP,
                mlp_bias=_DROP,
                use_sliding_window=True,
                sliding_window=32,
                max_window_layers=1,
            )
        )
    ).config
    assert c.sliding_window == 32 and c.layer_sliding == [False, True]


def test_unsupported_feature_is_refused_at_load(tmp_path):
    folder = _hf(
        tmp_path, model_type="mistral", attention_bias=_DROP, mlp_bias=_DROP, sliding_window=8
    )
    features = dict(_core.ModelFile(str(folder)).config.features)
    if not all(features.values()):
        with pytest.raises(ValueError, match="sliding-window attention .* not supported"):
            _engine(folder)


# ---------------------------------------------------------------------------------------------
# GGUF


def test_gguf_unknown_arch_key_is_refused(tmp_path):
    from test_malformed_files import F32, build_gguf, kv, llama_kvs

    path = tmp_path / "x.gguf"
    path.write_bytes(build_gguf(kvs=llama_kvs([kv("llama.attention.new_trick", F32, 2.0)])))
    with pytest.raises(ValueError, match="llama.attention.new_trick"):
        _core.ModelFile(str(path))


def test_gguf_moe_is_refused(tmp_path):
    from test_malformed_files import U32, build_gguf, kv, llama_kvs

    path = tmp_path / "x.gguf"
    path.write_bytes(build_gguf(kvs=llama_kvs([kv("llama.expert_count", U32, 8)])))
    with pytest.raises(ValueError, match="mixture-of-experts"):
        _core.ModelFile(str(path))


def test_gguf_unused_tensor_is_refused(tmp_path):
    from test_malformed_files import build_gguf, f32_tensors

    # A q/k norm is not part of the llama graph: the tensor would change the math if it were used.
    ts = f32_tensors() + [
        {
            "name": "blk.0.attn_q_norm.weight",
            "shape": (16,),
            "type": 0,
            "data": np.ones(16, np.float32).tobytes(),
        }
    ]
    path = tmp_path / "x.gguf"
    path.write_bytes(build_gguf(tensors=ts))
    with pytest.raises(ValueError, match="blk.0.attn_q_norm.weight is not used"):
        _engine(path)


def test_gguf_biases_follow_the_tensors(tmp_path):
    from test_malformed_files import build_gguf, f32_tensors

    bias = {
        "name": "blk.0.attn_output.bias",
        "shape": (64,),
        "type": 0,
        "data": np.full(64, 0.25, np.float32).tobytes(),
    }
    path = tmp_path / "x.gguf"
    path.write_bytes(build_gguf(tensors=[*f32_tensors(), bias]))
    assert _core.ModelFile(str(path)).config.o_bias
    plain = tmp_path / "plain.gguf"
    plain.write_bytes(build_gguf(tensors=f32_tensors()))
    a = np.array(_engine(path).prompt_logits([1, 5]))
    b = np.array(_engine(plain).prompt_logits([1, 5]))
    assert np.abs(a - b).max() > 1e-4
