"""ModelFile round trips: tiny HF folders and GGUF files written by tiny_models.py are read back
with the right names, shapes, dtypes, bytes, config and metadata."""

from __future__ import annotations

import json
import os
import shutil
import struct

import numpy as np
import pytest

import tiny_models as tm
from longbow import _core

DEFAULT = dict(vocab=384, hidden=64, layers=2, heads=4, kv_heads=2, ffn=128)


def expected_names(layers: int, tie: bool) -> set[str]:
    names = {"token_embd.weight", "output_norm.weight"}
    if not tie:
        names.add("output.weight")
    for i in range(layers):
        names |= {f"blk.{i}.{p}.weight" for p in tm._LAYER_NAMES}
    return names


def check_config(c, *, vocab, hidden, layers, heads, kv_heads, ffn, tie=False, head_dim=None):
    assert (c.vocab_size, c.hidden_size, c.num_layers) == (vocab, hidden, layers)
    assert (c.num_heads, c.num_kv_heads, c.intermediate_size) == (heads, kv_heads, ffn)
    assert c.head_dim == (head_dim or hidden // heads)
    assert c.rot_dim == c.head_dim
    assert c.tie_embeddings == tie
    assert c.bos_token_id == tm.BOS_ID
    assert sorted(c.eos_token_ids) == sorted([tm.EOS_ID, tm.EOT_ID])
    assert c.max_position == 256
    assert c.rope_theta == pytest.approx(10000.0)
    assert c.rms_eps == pytest.approx(1e-5)
    assert c.rope_scaling.type == ""
    assert c.architecture == "llama"


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("sharded", [False, True])
def test_hf_round_trip(tiny_model_factory, dtype, sharded):
    folder = tiny_model_factory("hf", dtype=dtype, sharded=sharded, seed=3)
    mf = _core.ModelFile(str(folder))
    assert mf.format == "safetensors"
    assert mf.path == str(folder)
    check_config(mf.config, **DEFAULT)
    assert not mf.config.rope_interleaved
    assert mf.metadata() == {}
    weights = tm.tiny_weights(seed=3, **DEFAULT)
    assert set(mf.tensor_names()) == expected_names(2, tie=False) == set(weights)
    files = set()
    for name, a in weights.items():
        info = mf.tensor_info(name)
        assert info["dtype"] == dtype
        assert info["shape"] == a.shape
        assert info["source_name"] == tm.hf_name(name)
        assert info["nbytes"] == a.size * (4 if dtype == "f32" else 2)
        files.add(os.path.basename(info["file"]))
        assert mf.tensor_bytes(name).tobytes() == tm.tensor_bytes(a, dtype)
    assert len(files) == (2 if sharded else 1)


def test_hf_single_safetensors_file_and_tied(tiny_model_factory):
    folder = tiny_model_factory("hf", tie=True, kv_heads=1)
    mf = _core.ModelFile(str(folder / "model.safetensors"))
    check_config(mf.config, **{**DEFAULT, "kv_heads": 1}, tie=True)
    assert "output.weight" not in mf.tensor_names()


def test_hf_lm_head_absent_but_untied_is_refused(tmp_path):
    # transformers would run such a folder with a randomly initialised lm_head: refuse it.
    folder = tm.write_hf_model(tmp_path / "m", tie=True)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["tie_word_embeddings"] = False
    (folder / "config.json").write_text(json.dumps(cfg))
    assert not _core.ModelFile(str(folder)).config.tie_embeddings
    with pytest.raises(
        ValueError, match="missing tensor output.weight .*tie_word_embeddings is false"
    ):
        _core.Engine(str(folder), backend="cpu")


def test_hf_config_fields(tmp_path):
    folder = tm.write_hf_model(tmp_path / "m", heads=4, kv_heads=4, head_dim=32, hidden=64)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 128,
        },
        rope_theta=500000.0,
        rms_norm_eps=1e-6,
        eos_token_id=[2, 7],
        max_position_embeddings=1024,
    )
    del cfg["num_key_value_heads"]  # defaults to num_attention_heads
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "generation_config.json").unlink()
    c = _core.ModelFile(str(folder)).config
    assert (c.head_dim, c.num_kv_heads, c.max_position) == (32, 4, 1024)
    assert c.rope_scaling.type == "llama3"
    assert c.rope_scaling.factor == 8.0 and c.rope_scaling.original_max_position == 128
    assert c.rope_theta == 500000.0 and c.rms_eps == pytest.approx(1e-6)
    assert c.eos_token_ids == [2, 7]


def test_hf_tokenizer_files(tiny_hf_model):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tiny_hf_model / "tokenizer.json"))
    assert tok.get_vocab_size() == DEFAULT["vocab"]
    for i, s in enumerate(tm.SPECIAL_TOKENS):
        assert tok.token_to_id(s) == i
    ids = tok.encode("The quick brown fox").ids
    assert tok.decode(ids) == "The quick brown fox"
    tcfg = json.loads((tiny_hf_model / "tokenizer_config.json").read_text())
    assert "<|im_start|>" in tcfg["chat_template"]


@pytest.mark.parametrize("weight_dtype", ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1"])
def test_gguf_round_trip(tiny_model_factory, weight_dtype):
    path = tiny_model_factory("gguf", weight_dtype=weight_dtype, seed=5)
    mf = _core.ModelFile(str(path))
    assert mf.format == "gguf"
    check_config(mf.config, **DEFAULT)
    assert mf.config.rope_interleaved
    weights = tm.tiny_weights(seed=5, **DEFAULT)
    assert set(mf.tensor_names()) == set(weights)
    for name, a in weights.items():
        info = mf.tensor_info(name)
        stored = a
        if name.endswith("attn_q.weight"):
            stored = tm.permute_qk(a, DEFAULT["heads"])
        elif name.endswith("attn_k.weight"):
            stored = tm.permute_qk(a, DEFAULT["kv_heads"])
        dt = "f32" if a.ndim == 1 else weight_dtype
        assert info["dtype"] == dt, name
        assert info["shape"] == a.shape
        assert info["source_name"] == name
        raw = mf.tensor_bytes(name)
        assert raw.size == info["nbytes"]
        assert raw.tobytes() == tm.tensor_bytes(stored, dt), name


def test_gguf_metadata(tiny_gguf_model):
    md = _core.ModelFile(str(tiny_gguf_model)).metadata()
    assert md["general.architecture"] == "llama"
    assert md["llama.block_count"] == 2 and isinstance(md["llama.block_count"], int)
    assert md["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(1e-5)
    assert md["tokenizer.ggml.model"] == "gpt2"
    tokens = md["tokenizer.ggml.tokens"]
    assert len(tokens) == DEFAULT["vocab"] and tokens[:3] == tm.SPECIAL_TOKENS
    assert md["tokenizer.ggml.token_type"][:3] == [3, 3, 3]
    assert all(isinstance(m, str) and " " in m for m in md["tokenizer.ggml.merges"])
    assert md["tokenizer.ggml.add_bos_token"] is False
    assert md["tokenizer.chat_template"] == tm.CHAT_TEMPLATE


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("alignment", [None, 64])
def test_gguf_versions_and_alignment(tmp_path, version, alignment):
    path = tm.write_gguf_model(
        tmp_path / "m.gguf", version=version, alignment=alignment, weight_dtype="q8_0"
    )
    assert struct.unpack("<I", path.read_bytes()[4:8])[0] == version
    mf = _core.ModelFile(str(path))
    w = tm.tiny_weights(**DEFAULT)
    assert mf.tensor_bytes("blk.1.ffn_down.weight").tobytes() == tm.tensor_bytes(
        w["blk.1.ffn_down.weight"], "q8_0"
    )
    if alignment:
        assert mf.metadata()["general.alignment"] == alignment


@pytest.mark.parametrize("heads,kv_heads", [(4, 4), (3, 1), (6, 2), (4, 1)])
def test_gqa_ratios_both_formats(tiny_model_factory, heads, kv_heads):
    hidden = 96 if heads in (3, 6) else 64
    knobs = dict(heads=heads, kv_heads=kv_heads, hidden=hidden)
    for fmt in ("hf", "gguf"):
        mf = _core.ModelFile(str(tiny_model_factory(fmt, **knobs)))
        dh = hidden // heads
        assert mf.tensor_info("blk.0.attn_k.weight")["shape"] == (kv_heads * dh, hidden)
        assert (mf.config.num_heads, mf.config.num_kv_heads) == (heads, kv_heads)


def test_same_model_in_both_formats(tiny_model_factory):
    """The f32 GGUF holds the HF weights with Q/K rows permuted per head (and nothing else)."""
    hf = _core.ModelFile(str(tiny_model_factory("hf", seed=9)))
    gg = _core.ModelFile(str(tiny_model_factory("gguf", seed=9)))
    for name in hf.tensor_names():
        a = np.frombuffer(hf.tensor_bytes(name).tobytes(), np.float32).reshape(
            hf.tensor_info(name)["shape"]
        )
        b = np.frombuffer(gg.tensor_bytes(name).tobytes(), np.float32).reshape(
            gg.tensor_info(name)["shape"]
        )
        if name.endswith("attn_q.weight"):
            a = tm.permute_qk(a, 4)
        elif name.endswith("attn_k.weight"):
            a = tm.permute_qk(a, 2)
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_permute_pairs_halves():
    # one head of dim 4: rows [r0, r1 | r2, r3] (halves) -> [r0, r2, r1, r3] (pairs)
    w = np.arange(8, dtype=np.float32).reshape(4, 2)
    np.testing.assert_array_equal(tm.permute_qk(w, 1)[:, 0], [0, 4, 2, 6])


def test_as_stored_rounding():
    w = tm.tiny_weights(**DEFAULT)
    s = tm.as_stored(w, "q4_0", "gguf")
    assert s["output_norm.weight"] is not w["output_norm.weight"]
    np.testing.assert_array_equal(s["output_norm.weight"], w["output_norm.weight"])
    err = np.abs(s["blk.0.ffn_up.weight"] - w["blk.0.ffn_up.weight"]).max()
    assert 0 < err < 0.2
    b = tm.as_stored(w, "bf16", "hf")["output_norm.weight"]
    assert np.all((b.view(np.uint32) & 0xFFFF) == 0)


def test_unknown_tensors_kept_under_source_name(tmp_path):
    folder = tm.write_hf_model(tmp_path / "m")
    st = folder / "model.safetensors"
    mf = _core.ModelFile(str(folder))
    entries = {
        mf.tensor_info(n)["source_name"]: (
            "F32",
            mf.tensor_info(n)["shape"],
            mf.tensor_bytes(n).tobytes(),
        )
        for n in mf.tensor_names()
    }
    entries["model.layers.0.self_attn.rotary_emb.inv_freq"] = (
        "F32",
        (8,),
        np.ones(8, np.float32).tobytes(),
    )
    del mf
    tm.write_safetensors(st, entries)
    mf = _core.ModelFile(str(folder))
    assert "model.layers.0.self_attn.rotary_emb.inv_freq" in mf.tensor_names()


def test_folder_copy_is_independent_of_original(tmp_path, tiny_hf_model):
    """Tensor bytes are served from the mapping of the opened folder."""
    copy = shutil.copytree(tiny_hf_model, tmp_path / "copy")
    mf = _core.ModelFile(str(copy))
    assert mf.tensor_info("token_embd.weight")["file"].startswith(str(copy))


def test_missing_path_is_value_error(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        _core.ModelFile(str(tmp_path / "nope.gguf"))
    with pytest.raises(ValueError, match="neither model.safetensors"):
        _core.ModelFile(str(tmp_path))


@pytest.mark.slow
def test_real_smollm2_gguf():
    path = os.environ.get("LONGBOW_TEST_GGUF")
    if not path or not os.path.isfile(path):
        pytest.skip("set LONGBOW_TEST_GGUF to the SmolLM2-135M-Instruct GGUF")
    mf = _core.ModelFile(path)
    c = mf.config
    assert (c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.vocab_size) == (
        30,
        576,
        9,
        3,
        49152,
    )
    assert c.tie_embeddings and c.rope_interleaved
    assert c.head_dim == 64 and c.intermediate_size == 1536
    assert mf.tensor_info("token_embd.weight")["shape"] == (49152, 576)
    assert len(mf.metadata()["tokenizer.ggml.tokens"]) == 49152


@pytest.mark.slow
@pytest.mark.oracle
def test_transformers_reads_same_model(tmp_path):
    """transformers un-permutes our GGUF Q/K rows back to the HF folder's weights."""
    pytest.importorskip("transformers")
    from transformers import AutoModelForCausalLM

    hf = tm.write_hf_model(tmp_path / "hf", seed=1)
    tm.write_gguf_model(hf / "model.gguf", seed=1)
    a = AutoModelForCausalLM.from_pretrained(str(hf)).state_dict()
    b = AutoModelForCausalLM.from_pretrained(str(hf), gguf_file="model.gguf").state_dict()
    for k, v in a.items():
        np.testing.assert_allclose(v.numpy(), b[k].numpy(), err_msg=k, atol=0)
