"""Tiny random models of every family longbow targets, created by `transformers` itself.

Each family is a `transformers` config built from shared small sizes (hidden 64, heads 4, kv heads
2, head_dim 16, vocab = the tiny tokenizer's 384) plus the knobs that make the family what it is
(biases, q/k norms, fused projections, soft-capping, sliding windows, rope scaling). Weights come
from the model's own initializer under a fixed torch seed, then every norm weight and bias is
randomized (`_randomize`) so each feature moves the logits. The folder is written with
`save_pretrained(safe_serialization=True)` and gets the tiny byte-level BPE tokenizer of
`tiny_models.py` (Gemma 2 and Phi-3 also get a SentencePiece `tokenizer.model`, as the real
ones ship: llama.cpp's converter reads nothing else for them).

The config.json is whatever the installed `transformers` writes (version 5 writes
`rope_parameters`); `llama_legacy_rope` rewrites it by hand with the version-4 keys
(`rope_theta`, `rope_scaling`) so both spellings are covered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tiny_models

VOCAB = 384
SLIDING_WINDOW = 8  # smaller than LONG_PROMPT below, so the window changes the logits
SEED = 0

# Token-id prompts for the oracle: short, medium and longer than every sliding window.
PROMPTS = [
    [5, 17, 42],
    [5, 17, 42, 99, 7, 3, 250, 11, 64],
    [int(t) for t in (3 + (37 * i + 11) % 380 for i in range(29))],
]

_COMMON = {
    "vocab_size": VOCAB,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
    "initializer_range": 0.08,
    "bos_token_id": tiny_models.BOS_ID,
    "eos_token_id": tiny_models.EOS_ID,
    "pad_token_id": tiny_models.EOT_ID,
    "tie_word_embeddings": False,
}


@dataclass(frozen=True)
class Family:
    """One fixture: a transformers config class and model class (by name) plus its knobs."""

    name: str
    config_cls: str
    model_cls: str
    knobs: dict = field(default_factory=dict)
    legacy_rope: bool = False  # rewrite config.json with rope_theta / rope_scaling by hand
    spm_tokenizer: bool = False  # also write a SentencePiece tokenizer.model


_LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 10000.0,
    "factor": 4.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 16,
}

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family("llama", "LlamaConfig", "LlamaForCausalLM", {"head_dim": 16}),
        Family(
            "llama3_rope",
            "LlamaConfig",
            "LlamaForCausalLM",
            {"head_dim": 16, "rope_parameters": _LLAMA3_ROPE},
        ),
        Family(
            "llama3_rope_legacy",
            "LlamaConfig",
            "LlamaForCausalLM",
            {"head_dim": 16, "rope_parameters": _LLAMA3_ROPE},
            legacy_rope=True,
        ),
        Family(
            "llama_bias",
            "LlamaConfig",
            "LlamaForCausalLM",
            {"head_dim": 16, "attention_bias": True, "mlp_bias": True},
        ),
        Family(
            "mistral_swa",
            "MistralConfig",
            "MistralForCausalLM",
            {"head_dim": 16, "sliding_window": SLIDING_WINDOW},
        ),
        Family("qwen2", "Qwen2Config", "Qwen2ForCausalLM", {"use_sliding_window": False}),
        Family("qwen3", "Qwen3Config", "Qwen3ForCausalLM", {"head_dim": 16}),
        Family(
            "phi3",
            "Phi3Config",
            "Phi3ForCausalLM",
            {"sliding_window": None, "original_max_position_embeddings": 256},
            spm_tokenizer=True,
        ),
        # Gemma: tied embeddings (llama.cpp's Gemma 2 converter drops lm_head), query_pre_attn_scalar =
        # head_dim (GGUF has no key for it) and, for Gemma 3, layer types in the fixed pattern of 5
        # sliding + 1 global that llama.cpp assumes (GGUF has no key for the pattern either).
        Family(
            "gemma2",
            "Gemma2Config",
            "Gemma2ForCausalLM",
            {
                "head_dim": 16,
                "query_pre_attn_scalar": 16,
                "sliding_window": SLIDING_WINDOW,
                "tie_word_embeddings": True,
                # caps near the tiny model's score and logit sizes, so both bend them
                "attn_logit_softcapping": 0.5,
                "final_logit_softcapping": 4.0,
                "hidden_activation": "gelu_pytorch_tanh",
            },
            spm_tokenizer=True,
        ),
        Family(
            "gemma3_text",
            "Gemma3TextConfig",
            "Gemma3ForCausalLM",
            {
                "head_dim": 16,
                "query_pre_attn_scalar": 16,
                "sliding_window": SLIDING_WINDOW,
                "tie_word_embeddings": True,
                "num_hidden_layers": 6,
                "layer_types": ["sliding_attention"] * 5 + ["full_attention"],
                "rope_parameters": {
                    "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                    "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                },
            },
        ),
    ]
}


def _config(fam: Family):
    import transformers

    knobs = {**_COMMON, **fam.knobs}
    cfg = getattr(transformers, fam.config_cls)(**knobs)
    cfg._attn_implementation = "eager"
    return cfg


def _randomize(model, seed: int) -> None:
    """Norm weights and biases away from their 1/0 init, so none of them is a no-op. Norms that
    compute x * (1 + w) (Gemma) start at w = 0 and get small w around 0; the rest get w ~ 1."""
    import torch

    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif p.ndim == 1 and "norm" in name:
                centre = 0.0 if float(p.abs().mean()) < 0.5 else 1.0
                p.copy_(centre + 0.2 * torch.randn(p.shape, generator=gen))


def build_model(name: str, **overrides):
    """The transformers model of family `name` (float32, eager attention, eval mode); knobs in
    `overrides` replace the family's (used to check that a feature changes the logits)."""
    import torch
    import transformers

    fam = FAMILIES[name]
    if overrides:
        fam = Family(fam.name, fam.config_cls, fam.model_cls, {**fam.knobs, **overrides})
    torch.manual_seed(SEED)
    model = getattr(transformers, fam.model_cls)(_config(fam))
    _randomize(model, SEED)
    return model.float().eval()


def _write_spm(folder: Path) -> None:
    """A SentencePiece BPE model of VOCAB pieces, trained on the tiny corpus (byte fallback)."""
    import io

    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(tiny_models._CORPUS),
        model_writer=buf,
        vocab_size=VOCAB,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        unk_id=3,
        bos_id=1,
        eos_id=2,
        pad_id=0,
        minloglevel=2,
        hard_vocab_limit=True,
    )
    (folder / "tokenizer.model").write_bytes(buf.getvalue())


def _legacy_rope_keys(folder: Path) -> None:
    """config.json with transformers 4's `rope_theta` + `rope_scaling` instead of
    `rope_parameters` (or left alone when the installed version already writes those)."""
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    params = cfg.pop("rope_parameters", None)
    if params is None:
        return
    cfg["rope_theta"] = params["rope_theta"]
    scaling = {k: v for k, v in params.items() if k != "rope_theta"}
    cfg["rope_scaling"] = None if scaling.get("rope_type") == "default" else scaling
    path.write_text(json.dumps(cfg, indent=2))


def write_family_model(name: str, folder) -> Path:
    """Writes family `name` as an HF folder (config.json, model.safetensors, tokenizer files)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fam = FAMILIES[name]
    model = build_model(name)
    model.save_pretrained(str(folder), safe_serialization=True)
    if fam.legacy_rope:
        _legacy_rope_keys(folder)
    tiny_models._write_tokenizer_files(folder, VOCAB)
    if fam.spm_tokenizer:
        _write_spm(folder)
    return folder


def load_model(folder):
    """The saved folder loaded back by transformers (float32, eager attention)."""
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(folder), dtype=torch.float32, attn_implementation="eager"
    )
    return model.eval()


def reference_logits(model, ids: list[int]):
    """Last-position logits (vocab,) float64 of `ids` under `model`."""
    import torch

    with torch.no_grad():
        out = model(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long))
    return out.logits[0, -1].double().numpy()


def reference_greedy(model, ids: list[int], steps: int) -> list[int]:
    """`steps` greedy tokens after `ids` (full recompute each step: no cache subtleties)."""
    seq = list(ids)
    for _ in range(steps):
        seq.append(int(reference_logits(model, seq).argmax()))
    return seq[len(ids) :]


def compare(llm, ref_model, *, steps: int = 8) -> dict:
    """longbow `llm` against the transformers `ref_model` on PROMPTS: worst max |logit diff| /
    logit range at the last prompt token, and greedy continuations of `steps` tokens (at the
    first disagreement, if any, the reference's margin between its top two logits / range)."""
    import longbow

    worst, greedy = 0.0, []
    for ids in PROMPTS:
        ref = reference_logits(ref_model, ids)
        got = llm.engine.prompt_logits(ids).astype(np.float64)
        worst = max(worst, float(np.abs(got - ref).max() / (ref.max() - ref.min())))
        want = reference_greedy(ref_model, ids, steps)
        params = longbow.SamplingParams(max_tokens=steps, ignore_eos=True)
        have = llm.generate([ids], params)[0].token_ids
        first = next((i for i, (a, b) in enumerate(zip(have, want)) if a != b), None)
        margin = None
        if first is not None:
            step = np.sort(reference_logits(ref_model, ids + want[:first]))
            margin = float((step[-1] - step[-2]) / (step[-1] - step[0]))
        greedy.append({"want": want, "have": have, "first_diff": first, "margin": margin})
    return {"max_rel_err": worst, "greedy": greedy}
