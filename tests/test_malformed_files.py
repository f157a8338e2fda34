"""Malformed GGUF and safetensors inputs: each must raise ValueError naming the file (and the
tensor where relevant), never crash or read out of bounds."""

from __future__ import annotations

import json
import random
import shutil
import struct

import numpy as np
import pytest

import tiny_models as tm
from longbow import _core

KNOBS = dict(vocab=384, hidden=64, layers=1, heads=4, kv_heads=2, ffn=128)

# ---------------------------------------------------------------------------------------------
# A raw GGUF builder (independent of the gguf package) so every field can be corrupted.
U32, I32, F32, BOOL, STRING, ARRAY, U64 = 4, 5, 6, 7, 8, 9, 10


def gstr(s) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def kv(key: str, vtype: int, value) -> bytes:
    out = gstr(key) + struct.pack("<I", vtype)
    if vtype == U32:
        return out + struct.pack("<I", value)
    if vtype == F32:
        return out + struct.pack("<f", value)
    if vtype == BOOL:
        return out + struct.pack("<B", value)
    if vtype == STRING:
        return out + gstr(value)
    if vtype == ARRAY:  # value = (elem_type, [items]) for strings/u32
        et, items = value
        body = b"".join(gstr(x) if et == STRING else struct.pack("<I", x) for x in items)
        return out + struct.pack("<IQ", et, len(items)) + body
    raise AssertionError(vtype)


def llama_kvs(extra=()):
    k = KNOBS
    kvs = [
        kv("general.architecture", STRING, "llama"),
        kv("llama.block_count", U32, k["layers"]),
        kv("llama.embedding_length", U32, k["hidden"]),
        kv("llama.feed_forward_length", U32, k["ffn"]),
        kv("llama.attention.head_count", U32, k["heads"]),
        kv("llama.attention.head_count_kv", U32, k["kv_heads"]),
        kv("llama.context_length", U32, 256),
        kv("llama.attention.layer_norm_rms_epsilon", F32, 1e-5),
        kv("llama.vocab_size", U32, k["vocab"]),
    ]
    return kvs + list(extra)


def build_gguf(
    *,
    kvs=None,
    tensors=None,
    version=3,
    magic=b"GGUF",
    n_tensors=None,
    n_kv=None,
    alignment=32,
    patch=None,
) -> bytes:
    """tensors: list of dicts(name, shape (outermost first), type, data) plus optional overrides
    'offset', 'ne' (innermost first, raw), 'n_dims'. `patch(tensor_dicts)` may edit offsets."""
    kvs = llama_kvs() if kvs is None else kvs
    tensors = tensors if tensors is not None else f32_tensors()
    offset = 0
    for t in tensors:
        t.setdefault("offset", offset)
        offset = t["offset"] + len(t["data"])
        offset += -offset % alignment
    if patch:
        patch(tensors)
    head = magic + struct.pack(
        "<IQQ",
        version,
        len(tensors) if n_tensors is None else n_tensors,
        len(kvs) if n_kv is None else n_kv,
    )
    head += b"".join(kvs)
    for t in tensors:
        ne = t.get("ne", list(reversed(t["shape"])))
        head += gstr(t["name"]) + struct.pack("<I", t.get("n_dims", len(ne)))
        head += b"".join(struct.pack("<q", d) for d in ne) + struct.pack(
            "<IQ", t["type"], t["offset"]
        )
    head += b"\0" * (-len(head) % alignment)
    data = bytearray()
    for t in sorted(tensors, key=lambda t: t["offset"]):
        if len(data) <= t["offset"] < (1 << 24):  # far-out offsets get no data
            data += b"\0" * (t["offset"] - len(data)) + t["data"]
    return head + bytes(data)


def f32_tensors():
    w = tm.tiny_weights(**KNOBS)
    return [
        dict(name=n, shape=a.shape, type=0, data=a.astype(np.float32).tobytes())
        for n, a in w.items()
    ]


def write(tmp_path, data: bytes, name="bad.gguf"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def open_model(path):
    """Opens the file and builds its model (tensor shapes and names are checked by the model)."""
    _core.ModelFile(str(path))
    _core.Engine(str(path), backend="cpu", num_threads=1, max_model_len=64, num_blocks=16)


def expect_error(path, *needles):
    with pytest.raises(ValueError) as e:
        open_model(path)
    msg = str(e.value)
    for n in (str(path), *needles):
        assert n in msg, f"{n!r} not in {msg!r}"
    return msg


# ---------------------------------------------------------------------------------------------
# GGUF


def test_raw_builder_makes_a_valid_model(tmp_path):
    mf = _core.ModelFile(str(write(tmp_path, build_gguf(), "ok.gguf")))
    assert mf.config.num_layers == 1 and len(mf.tensor_names()) == 12


def test_gguf_truncated_header(tmp_path):
    expect_error(write(tmp_path, build_gguf()[:10]), "truncated")


def test_gguf_empty_file(tmp_path):
    expect_error(write(tmp_path, b""), "truncated")


def test_gguf_wrong_magic(tmp_path):
    expect_error(write(tmp_path, build_gguf(magic=b"GGML")), "magic", "GGML")


@pytest.mark.parametrize("version", [1, 4, 0xFFFFFFFF])
def test_gguf_bad_version(tmp_path, version):
    expect_error(write(tmp_path, build_gguf(version=version)), "version", str(version))


def test_gguf_absurd_tensor_count(tmp_path):
    expect_error(write(tmp_path, build_gguf(n_tensors=1 << 60)), "tensor count")


def test_gguf_absurd_kv_count(tmp_path):
    expect_error(write(tmp_path, build_gguf(n_kv=1 << 62)), "key/value count")


def test_gguf_absurd_string_length(tmp_path):
    bad = struct.pack("<Q", 1 << 62) + b"general.name" + struct.pack("<I", STRING) + gstr("x")
    expect_error(write(tmp_path, build_gguf(kvs=llama_kvs([bad]))), "string length")


def test_gguf_absurd_array_length(tmp_path):
    bad = gstr("tokenizer.ggml.tokens") + struct.pack("<IIQ", ARRAY, STRING, 1 << 61)
    expect_error(write(tmp_path, build_gguf(kvs=llama_kvs([bad]))), "array length")


def test_gguf_unknown_value_type(tmp_path):
    bad = gstr("general.name") + struct.pack("<I", 99)
    expect_error(write(tmp_path, build_gguf(kvs=llama_kvs([bad]))), "general.name", "99")


def test_gguf_bad_bool(tmp_path):
    expect_error(
        write(tmp_path, build_gguf(kvs=llama_kvs([kv("x.flag", BOOL, 7)]))), "x.flag", "bool"
    )


def test_gguf_nested_array_is_parsed(tmp_path):
    inner = struct.pack("<IQ", STRING, 2) + gstr("a") + gstr("b")
    nested = gstr("x.nested") + struct.pack("<IIQ", ARRAY, ARRAY, 2) + inner + inner
    mf = _core.ModelFile(str(write(tmp_path, build_gguf(kvs=llama_kvs([nested])), "ok.gguf")))
    assert "x.nested" not in mf.metadata()  # validated and skipped (not representable)


@pytest.mark.parametrize("ggml_type", [12, 14, 99])  # Q4_K, Q6_K, nonsense
def test_gguf_unsupported_ggml_type(tmp_path, ggml_type):
    def patch(ts):
        ts[3]["type"] = ggml_type

    msg = expect_error(
        write(tmp_path, build_gguf(patch=patch)),
        f"tensor {f32_tensors()[3]['name']}",
        f"unsupported ggml type {ggml_type}",
    )
    assert "Q4_1" in msg


def test_gguf_tensor_out_of_file(tmp_path):
    def patch(ts):
        ts[2]["offset"] = 1 << 40

    msg = expect_error(
        write(tmp_path, build_gguf(patch=patch)),
        "tensor blk.0.attn_q.weight: offset 1099511627776 + 16384 bytes",
        "exceeds data size",
    )
    assert str(1 << 40) in msg


def test_gguf_tensor_data_truncated(tmp_path):
    data = build_gguf()
    expect_error(write(tmp_path, data[:-100]), "tensor output.weight", "exceeds data size")


def test_gguf_overlapping_tensors(tmp_path):
    def patch(ts):
        ts[5]["offset"] = ts[4]["offset"] + 32  # inside tensor 4

    expect_error(write(tmp_path, build_gguf(patch=patch)), "overlaps")


def test_gguf_misaligned_offset(tmp_path):
    def patch(ts):
        ts[-1]["offset"] += 4

    expect_error(write(tmp_path, build_gguf(patch=patch)), "tensor output.weight", "alignment 32")


def test_gguf_custom_alignment_respected(tmp_path):
    data = build_gguf(kvs=llama_kvs([kv("general.alignment", U32, 64)]), alignment=64)
    assert _core.ModelFile(str(write(tmp_path, data, "ok.gguf"))).config.hidden_size == 64
    bad = build_gguf(kvs=llama_kvs([kv("general.alignment", U32, 64)]), alignment=32)
    expect_error(write(tmp_path, bad), "alignment")  # data section/offsets not 64-aligned


def test_gguf_bad_alignment_value(tmp_path):
    expect_error(
        write(tmp_path, build_gguf(kvs=llama_kvs([kv("general.alignment", U32, 48)]))),
        "general.alignment",
    )


@pytest.mark.parametrize(
    "ne,needle",
    [
        ([64, 0], "must be > 0"),
        ([64, -3], "must be > 0"),
        ([1 << 40, 1 << 40], "overflows"),
        ([4, 4, 4, 4, 4], "n_dims"),
    ],
)
def test_gguf_bad_dims(tmp_path, ne, needle):
    def patch(ts):
        ts[0]["ne"] = ne

    expect_error(write(tmp_path, build_gguf(patch=patch)), needle)


def test_gguf_quant_row_not_multiple_of_block(tmp_path):
    t = [dict(name="token_embd.weight", shape=(1, 48), type=8, data=b"\0" * 34)]
    expect_error(
        write(tmp_path, build_gguf(tensors=t)), "tensor token_embd.weight", "block size 32"
    )


def test_gguf_duplicate_tensor_name(tmp_path):
    ts = f32_tensors()
    ts[1]["name"] = ts[0]["name"]
    expect_error(write(tmp_path, build_gguf(tensors=ts)), "duplicate tensor name")


def test_gguf_wrong_architecture(tmp_path):
    kvs = [kv("general.architecture", STRING, "gpt2")] + llama_kvs()[1:]
    expect_error(write(tmp_path, build_gguf(kvs=kvs)), "general.architecture", "gpt2")


def test_gguf_missing_metadata_key(tmp_path):
    expect_error(write(tmp_path, build_gguf(kvs=llama_kvs()[:3])), "llama.feed_forward_length")


def test_gguf_missing_tensor(tmp_path):
    ts = [t for t in f32_tensors() if t["name"] != "blk.0.ffn_up.weight"]
    expect_error(write(tmp_path, build_gguf(tensors=ts)), "missing tensor blk.0.ffn_up.weight")


def test_gguf_shape_mismatch_with_config(tmp_path):
    kvs = [x for x in llama_kvs() if b"head_count_kv" not in x] + [
        kv("llama.attention.head_count_kv", U32, 1)
    ]
    msg = expect_error(
        write(tmp_path, build_gguf(kvs=kvs)), "tensor blk.0.attn_k.weight", "(16, 64)", "(32, 64)"
    )
    assert "expected" in msg and "found" in msg


def test_gguf_fuzz_truncations_and_flips(tmp_path):
    """Every prefix length and random header byte flips: opens or raises ValueError, never crashes."""
    good = tm.write_gguf_model(tmp_path / "good.gguf", weight_dtype="q4_1", **KNOBS).read_bytes()
    header_end = good.index(b"blk.0.attn_norm.weight") + 400  # covers metadata and tensor infos
    p = tmp_path / "fuzz.gguf"
    outcomes = {"ok": 0, "error": 0}
    cuts = list(range(0, header_end, 97)) + [len(good) - 1, len(good) - 33]
    rng = random.Random(1234)
    cases = [good[:c] for c in cuts]
    for _ in range(300):
        b = bytearray(good[: header_end + 4096] if len(good) > header_end + 4096 else good)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(min(header_end, len(b)))] = rng.randrange(256)
        cases.append(bytes(b) + good[len(b) :])
    for data in cases:
        p.write_bytes(data)
        try:
            open_model(p)
            outcomes["ok"] += 1
        except ValueError as e:
            assert str(p) in str(e)
            outcomes["error"] += 1
    assert outcomes["error"] >= len(cuts)


# ---------------------------------------------------------------------------------------------
# safetensors / HF folders


@pytest.fixture()
def hf_copy(tmp_path, tiny_model_factory):
    return shutil.copytree(tiny_model_factory("hf", **KNOBS), tmp_path / "m")


def entries_of(folder):
    mf = _core.ModelFile(str(folder))
    out = {}
    for n in mf.tensor_names():
        i = mf.tensor_info(n)
        out[i["source_name"]] = ("F32", i["shape"], mf.tensor_bytes(n).tobytes())
    return out


def test_st_file_too_small(hf_copy):
    st = hf_copy / "model.safetensors"
    st.write_bytes(b"\1\2\3")
    expect_error(st, "too small")
    expect_error(hf_copy)  # through the folder too


def test_st_header_length_exceeds_file(hf_copy):
    st = hf_copy / "model.safetensors"
    data = st.read_bytes()
    st.write_bytes(struct.pack("<Q", len(data)) + data[8:])
    expect_error(hf_copy, str(st), "header length")


def test_st_invalid_json(hf_copy):
    st = hf_copy / "model.safetensors"
    body = b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},}    '
    st.write_bytes(struct.pack("<Q", len(body)) + body + b"\0" * 4)
    expect_error(hf_copy, str(st), "line 1 column")


def test_st_json_too_deep(hf_copy):
    st = hf_copy / "model.safetensors"
    body = b"[" * 5000 + b"]" * 5000
    st.write_bytes(struct.pack("<Q", len(body)) + body)
    expect_error(hf_copy, str(st), "nesting deeper")


def test_st_header_not_object(hf_copy):
    st = hf_copy / "model.safetensors"
    body = b"[1, 2]  "
    st.write_bytes(struct.pack("<Q", len(body)) + body)
    expect_error(hf_copy, "expected a JSON object")


def test_st_data_offsets_out_of_file(hf_copy):
    e = entries_of(hf_copy)
    st = tm.write_safetensors(hf_copy / "model.safetensors", e)
    data = bytearray(st.read_bytes())
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    header["model.norm.weight"]["data_offsets"][1] += 1 << 30
    header["model.norm.weight"]["shape"] = [(1 << 28) + 64]
    body = json.dumps(header).encode()
    st.write_bytes(struct.pack("<Q", len(body)) + body + bytes(data[8 + n :]))
    expect_error(hf_copy, "tensor model.norm.weight", "exceed data size")


def test_st_size_shape_mismatch(hf_copy):
    e = entries_of(hf_copy)
    dt, shape, raw = e["model.norm.weight"]
    e["model.norm.weight"] = (dt, (65,), raw)
    tm.write_safetensors(hf_copy / "model.safetensors", e)
    expect_error(hf_copy, "tensor model.norm.weight", "needs 260 bytes", "give 256")


def test_st_unsupported_dtype(hf_copy):
    e = entries_of(hf_copy)
    e["model.layers.0.self_attn.rotary_emb.inv_freq"] = ("I64", (2,), b"\0" * 16)
    tm.write_safetensors(hf_copy / "model.safetensors", e)
    expect_error(
        hf_copy, "tensor model.layers.0.self_attn.rotary_emb.inv_freq", "unsupported dtype I64"
    )


def test_st_overlapping(hf_copy):
    st = tm.write_safetensors(hf_copy / "model.safetensors", entries_of(hf_copy))
    data = st.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    a, b = header["model.norm.weight"], header["model.layers.0.input_layernorm.weight"]
    b["data_offsets"] = list(a["data_offsets"])
    body = json.dumps(header).encode()
    st.write_bytes(struct.pack("<Q", len(body)) + body + data[8 + n :])
    expect_error(hf_copy, "overlap")


def test_st_shape_mismatch_with_config(hf_copy):
    cfg = json.loads((hf_copy / "config.json").read_text())
    cfg["intermediate_size"] = 256
    (hf_copy / "config.json").write_text(json.dumps(cfg))
    expect_error(
        hf_copy,
        "tensor blk.0.ffn_gate.weight",
        "model.layers.0.mlp.gate_proj.weight",
        "(256, 64)",
        "(128, 64)",
    )


def test_st_missing_tensor(hf_copy):
    e = entries_of(hf_copy)
    del e["model.layers.0.self_attn.v_proj.weight"]
    tm.write_safetensors(hf_copy / "model.safetensors", e)
    expect_error(hf_copy, "missing tensor blk.0.attn_v.weight")


def test_st_duplicate_canonical_name(hf_copy):
    e = entries_of(hf_copy)
    e["token_embd.weight"] = e["model.embed_tokens.weight"]  # two source names, one canonical name
    tm.write_safetensors(hf_copy / "model.safetensors", e)
    expect_error(hf_copy, "maps to token_embd.weight", "also given by")


def test_config_missing_or_bad(hf_copy):
    cfg_path = hf_copy / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text('{"hidden_size": 64,')
    expect_error(hf_copy, str(cfg_path), "line 1")
    cfg_path.write_text(json.dumps({k: v for k, v in cfg.items() if k != "num_hidden_layers"}))
    expect_error(hf_copy, str(cfg_path), "num_hidden_layers")
    cfg_path.write_text(json.dumps({**cfg, "model_type": "gpt2"}))
    expect_error(hf_copy, str(cfg_path), "model_type", "gpt2")
    cfg_path.write_text(json.dumps({**cfg, "num_key_value_heads": 3}))
    expect_error(hf_copy, str(hf_copy), "num_kv_heads")
    cfg_path.unlink()
    expect_error(hf_copy, "no config.json")


@pytest.fixture()
def sharded_copy(tmp_path, tiny_model_factory):
    return shutil.copytree(tiny_model_factory("hf", sharded=True, **KNOBS), tmp_path / "sh")


def test_shard_index_missing_shard(sharded_copy):
    (sharded_copy / "model-00002-of-00002.safetensors").unlink()
    expect_error(
        sharded_copy,
        "model.safetensors.index.json",
        "model-00002-of-00002.safetensors",
        "does not exist",
    )


def test_shard_index_tensor_not_in_shard(sharded_copy):
    idx_path = sharded_copy / "model.safetensors.index.json"
    idx = json.loads(idx_path.read_text())
    idx["weight_map"]["model.layers.0.mlp.up_proj.weight"] = "model-00001-of-00002.safetensors"
    idx["weight_map"]["model.norm.weight"] = "model-00001-of-00002.safetensors"
    idx_path.write_text(json.dumps(idx))
    expect_error(sharded_copy, "model-00001-of-00002.safetensors", "not present")


@pytest.mark.parametrize(
    "index",
    [
        '{"weight_map": 3}',
        '{"metadata": {}}',
        '{"weight_map": {}}',
        "not json",
        '{"weight_map": {"lm_head.weight": "../x.safetensors"}}',
    ],
)
def test_shard_index_malformed(sharded_copy, index):
    idx_path = sharded_copy / "model.safetensors.index.json"
    idx_path.write_text(index)
    expect_error(sharded_copy, str(idx_path))


def test_unknown_file_kind(tmp_path):
    expect_error(write(tmp_path, b"hello world", "model.bin"), "expected a .gguf file")
