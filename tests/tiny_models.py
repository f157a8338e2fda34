"""Tiny random Llama models for tests, written as an HF folder (safetensors) and as GGUF.

The same knobs and seed give the *same model* in both formats: the GGUF file stores Q/K rows
permuted the way llama.cpp's llama converter does (adjacent-pair RoPE), the HF folder keeps the
rotate-half layout. `tiny_weights` returns the float32 weights (canonical names, HF layout) so
tests can build numpy references; `as_stored` rounds them to what a file actually holds.
"""

from __future__ import annotations

import functools
import json
import struct
from pathlib import Path

import numpy as np

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2
BOS_ID = 1  # <|im_start|>
EOS_ID = 2  # <|im_end|>
EOT_ID = 0  # <|endoftext|> (extra stop id: generation_config.json / GGUF eot)

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_TEXT = [
    "The quick brown fox jumps over the lazy dog while the cat sleeps in the sun.",
    "Once upon a time there was a little model that wanted to generate text quickly.",
    "def forward(self, x):\n    return self.norm(x + self.attention(x))\n",
    "Numbers like 42, 3.14159 and 1000000 appear in text; so do emails: a@b.com.",
    "Hello world! How are you today? I am fine, thank you. Let's talk about weather.",
    "Llamas live in the Andes; they are related to camels, alpacas and vicunas.",
    "Ünïcödé text, emoji 🙂 and CJK 日本語 should round-trip through byte-level BPE.",
]
_CORPUS = _TEXT * 30

# canonical name suffix (after "blk.N.") -> HF name suffix (after "model.layers.N.")
_LAYER_NAMES = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def hf_name(canonical: str) -> str:
    """Canonical (GGUF-style) tensor name -> Hugging Face Llama name."""
    fixed = {
        "token_embd.weight": "model.embed_tokens.weight",
        "output_norm.weight": "model.norm.weight",
        "output.weight": "lm_head.weight",
    }
    if canonical in fixed:
        return fixed[canonical]
    _, layer, part, suffix = canonical.split(".")
    return f"model.layers.{layer}.{_LAYER_NAMES[part]}.{suffix}"


@functools.lru_cache(maxsize=8)
def train_tokenizer(vocab: int = 384):
    """A small byte-level BPE trained on a fixed text (deterministic); ids 0..2 are specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_CORPUS, trainer)
    return tok


def _dims(hidden, heads, kv_heads, head_dim):
    head_dim = head_dim or hidden // heads
    if heads % kv_heads != 0:
        raise ValueError(f"heads={heads} must be a multiple of kv_heads={kv_heads}")
    return head_dim, heads * head_dim, kv_heads * head_dim


def tiny_weights(
    *,
    vocab=384,
    hidden=64,
    layers=2,
    heads=4,
    kv_heads=2,
    ffn=128,
    tie=False,
    seed=0,
    head_dim=None,
) -> dict[str, np.ndarray]:
    """Float32 weights by canonical name, HF layout ((out, in) matrices, rotate-half Q/K)."""
    rng = np.random.default_rng(seed)
    dh, q_rows, kv_rows = _dims(hidden, heads, kv_heads, head_dim)

    def mat(rows, cols):
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    w = {"token_embd.weight": (0.5 * rng.standard_normal((vocab, hidden))).astype(np.float32)}
    for i in range(layers):
        b = f"blk.{i}."
        w[b + "attn_norm.weight"] = norm(hidden)
        w[b + "attn_q.weight"] = mat(q_rows, hidden)
        w[b + "attn_k.weight"] = mat(kv_rows, hidden)
        w[b + "attn_v.weight"] = mat(kv_rows, hidden)
        w[b + "attn_output.weight"] = mat(hidden, q_rows)
        w[b + "ffn_norm.weight"] = norm(hidden)
        w[b + "ffn_gate.weight"] = mat(ffn, hidden)
        w[b + "ffn_up.weight"] = mat(ffn, hidden)
        w[b + "ffn_down.weight"] = mat(hidden, ffn)
    w["output_norm.weight"] = norm(hidden)
    if not tie:
        w["output.weight"] = mat(vocab, hidden)
    return w


def f32_to_bf16_bits(a: np.ndarray) -> np.ndarray:
    """Round-to-nearest-even float32 -> bfloat16 bit patterns (uint16)."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return bits.astype(np.uint16)


def bf16_bits_to_f32(b: np.ndarray) -> np.ndarray:
    return (b.astype(np.uint32) << 16).view(np.float32)


def _ggml_type(dtype: str):
    import gguf

    t = gguf.GGMLQuantizationType
    return {
        "f32": t.F32,
        "f16": t.F16,
        "bf16": t.BF16,
        "q8_0": t.Q8_0,
        "q4_0": t.Q4_0,
        "q4_1": t.Q4_1,
    }[dtype]


def round_to_dtype(a: np.ndarray, dtype: str) -> np.ndarray:
    """The float32 values a tensor holds after being stored as `dtype`."""
    if dtype == "f32":
        return a.astype(np.float32)
    if dtype == "f16":
        return a.astype(np.float16).astype(np.float32)
    if dtype == "bf16":
        return bf16_bits_to_f32(f32_to_bf16_bits(a))
    import gguf

    qt = _ggml_type(dtype)
    return gguf.quants.dequantize(gguf.quants.quantize(a.astype(np.float32), qt), qt).astype(
        np.float32
    )


def as_stored(weights: dict[str, np.ndarray], dtype: str, fmt: str) -> dict[str, np.ndarray]:
    """Weights as a file holds them: HF folders store every tensor in `dtype`; GGUF files store
    matrices in `dtype` and 1-D norms in f32. Layout stays HF (no Q/K permutation)."""
    out = {}
    for name, a in weights.items():
        keep_f32 = fmt == "gguf" and a.ndim == 1
        out[name] = a.copy() if keep_f32 else round_to_dtype(a, dtype)
    return out


def tensor_bytes(a: np.ndarray, dtype: str) -> bytes:
    """Raw bytes of `a` stored as f32 / f16 / bf16 (safetensors or GGUF plain types)."""
    if dtype == "f32":
        return np.ascontiguousarray(a, dtype=np.float32).tobytes()
    if dtype == "f16":
        return np.ascontiguousarray(a, dtype=np.float16).tobytes()
    if dtype == "bf16":
        return f32_to_bf16_bits(a).tobytes()
    import gguf

    return gguf.quants.quantize(
        np.ascontiguousarray(a, dtype=np.float32), _ggml_type(dtype)
    ).tobytes()


def write_safetensors(path, tensors: dict[str, tuple[str, tuple, bytes]], metadata=None) -> Path:
    """Writes a safetensors file from name -> (dtype "F32"/"F16"/"BF16"/..., shape, raw bytes)."""
    header, chunks, offset = {}, [], 0
    for name, (dt, shape, raw) in tensors.items():
        header[name] = {
            "dtype": dt,
            "shape": list(shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path = Path(path)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(chunks))
    return path


def read_safetensors(path) -> dict[str, tuple[str, tuple, bytes]]:
    """The entries of a .safetensors file in write_safetensors' form (dtype, shape, raw bytes)."""
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    return {
        name: (e["dtype"], tuple(e["shape"]), body[e["data_offsets"][0] : e["data_offsets"][1]])
        for name, e in header.items()
        if name != "__metadata__"
    }


def hf_config(
    *,
    vocab=384,
    hidden=64,
    layers=2,
    heads=4,
    kv_heads=2,
    ffn=128,
    tie=False,
    head_dim=None,
    max_position=256,
    rope_theta=10000.0,
    rms_eps=1e-5,
) -> dict:
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": ffn,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "max_position_embeddings": max_position,
        "rms_norm_eps": rms_eps,
        "rope_theta": rope_theta,
        "rope_scaling": None,
        "tie_word_embeddings": tie,
        "bos_token_id": BOS_ID,
        "eos_token_id": EOS_ID,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "torch_dtype": "float32",
    }
    if head_dim is not None:
        cfg["head_dim"] = head_dim
    return cfg


def _write_tokenizer_files(folder: Path, vocab: int) -> None:
    train_tokenizer(vocab).save(str(folder / "tokenizer.json"))
    tcfg = {
        "bos_token": SPECIAL_TOKENS[BOS_ID],
        "eos_token": SPECIAL_TOKENS[EOS_ID],
        "pad_token": SPECIAL_TOKENS[EOT_ID],
        "add_bos_token": False,
        "chat_template": CHAT_TEMPLATE,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tcfg, indent=1))


def write_hf_model(
    folder,
    *,
    vocab=384,
    hidden=64,
    layers=2,
    heads=4,
    kv_heads=2,
    ffn=128,
    tie=False,
    dtype="f32",
    seed=0,
    sharded=False,
    head_dim=None,
) -> Path:
    """Writes config.json, generation_config.json, model.safetensors (or 2 shards + index),
    tokenizer.json and tokenizer_config.json into `folder`; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    knobs = dict(
        vocab=vocab,
        hidden=hidden,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        ffn=ffn,
        tie=tie,
        head_dim=head_dim,
    )
    weights = tiny_weights(seed=seed, **knobs)
    (folder / "config.json").write_text(json.dumps(hf_config(**knobs), indent=1))
    (folder / "generation_config.json").write_text(
        json.dumps({"bos_token_id": BOS_ID, "eos_token_id": [EOS_ID, EOT_ID]})
    )
    st_dtype = {"f32": "F32", "f16": "F16", "bf16": "BF16"}[dtype]
    entries = {hf_name(n): (st_dtype, a.shape, tensor_bytes(a, dtype)) for n, a in weights.items()}
    if not sharded:
        write_safetensors(folder / "model.safetensors", entries, metadata={"format": "pt"})
    else:
        names = list(entries)
        half = len(names) // 2
        shards = {
            "model-00001-of-00002.safetensors": names[:half],
            "model-00002-of-00002.safetensors": names[half:],
        }
        weight_map = {}
        for shard, shard_names in shards.items():
            write_safetensors(
                folder / shard, {n: entries[n] for n in shard_names}, metadata={"format": "pt"}
            )
            weight_map.update({n: shard for n in shard_names})
        total = sum(len(e[2]) for e in entries.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))
    _write_tokenizer_files(folder, vocab)
    return folder


def permute_qk(w: np.ndarray, n_heads: int) -> np.ndarray:
    """HF rotate-half rows -> GGUF adjacent-pair rows: within each head, row r of the first half
    and row r of the second half become rows 2r and 2r+1 (llama.cpp's llama converter)."""
    rows, cols = w.shape
    dh = rows // n_heads
    return w.reshape(n_heads, 2, dh // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def _tokenizer_metadata(vocab: int):
    tok = train_tokenizer(vocab)
    spec = json.loads(tok.to_str())
    by_id = {i: t for t, i in spec["model"]["vocab"].items()}
    for added in spec.get("added_tokens", []):
        by_id[added["id"]] = added["content"]
    tokens, types = [], []
    for i in range(vocab):  # pad to the model's vocab with unused tokens if training stopped early
        tokens.append(by_id.get(i, f"<unused_{i}>"))
        types.append(3 if tokens[-1] in SPECIAL_TOKENS else (1 if i in by_id else 5))
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    return tokens, types, merges


def write_gguf_model(
    path,
    *,
    vocab=384,
    hidden=64,
    layers=2,
    heads=4,
    kv_heads=2,
    ffn=128,
    tie=False,
    weight_dtype="f32",
    embedding_dtype=None,
    seed=0,
    head_dim=None,
    version=3,
    alignment=None,
    max_position=256,
    rope_theta=10000.0,
    rms_eps=1e-5,
) -> Path:
    """Writes the same model as `write_hf_model` (same knobs and seed) as a llama GGUF file.
    Matrices are stored in `weight_dtype` (f32/f16/bf16/q8_0/q4_0/q4_1), norms in f32, the
    embedding table in `embedding_dtype` (default: weight_dtype)."""
    import gguf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dh, _, _ = _dims(hidden, heads, kv_heads, head_dim)
    weights = tiny_weights(
        vocab=vocab,
        hidden=hidden,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        ffn=ffn,
        tie=tie,
        seed=seed,
        head_dim=head_dim,
    )
    w = gguf.GGUFWriter(str(path), "llama")
    if alignment is not None:
        w.add_custom_alignment(alignment)
    w.add_name("tiny-llama")
    w.add_block_count(layers)
    w.add_context_length(max_position)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    if head_dim is not None:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    w.add_rope_dimension_count(dh)
    w.add_layer_norm_rms_eps(rms_eps)
    w.add_rope_freq_base(rope_theta)
    w.add_vocab_size(vocab)
    tokens, types, merges = _tokenizer_metadata(vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(BOS_ID)
    w.add_eos_token_id(EOS_ID)
    w.add_eot_token_id(EOT_ID)
    w.add_add_bos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)
    for name, a in weights.items():
        if name.endswith("attn_q.weight"):
            a = permute_qk(a, heads)
        elif name.endswith("attn_k.weight"):
            a = permute_qk(a, kv_heads)
        dtype = embedding_dtype if name == "token_embd.weight" and embedding_dtype else weight_dtype
        if a.ndim == 1 or dtype == "f32":
            w.add_tensor(name, np.ascontiguousarray(a, dtype=np.float32))
        elif dtype == "f16":
            w.add_tensor(name, a.astype(np.float16))
        else:
            qt = _ggml_type(dtype)
            w.add_tensor(name, gguf.quants.quantize(np.ascontiguousarray(a), qt), raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    if version != 3:  # v2 and v3 share the layout; only the version field differs
        with open(path, "r+b") as f:
            f.seek(4)
            f.write(struct.pack("<I", version))
    return path
