"""SentencePiece-BPE (`tokenizer.ggml.model == "llama"`) rebuilt as a HF `tokenizers` BPE.

Same shape as transformers' LlamaTokenizer: Metaspace pre-tokenizer (prefix "▁" on the first
word when add_space_prefix), byte fallback for `<0xNN>` tokens, merges from the file or
recovered from the vocabulary ranked by score.
"""

from __future__ import annotations

from typing import Any

from tokenizers import AddedToken, decoders, models, pre_tokenizers
from tokenizers import Tokenizer as HFTokenizer

_TOKEN_TYPE_CONTROL = 3
_TOKEN_TYPE_USER_DEFINED = 4


def merges_from_scores(tokens: list[str], scores: list[float]) -> list[tuple[str, str]]:
    """Every (left, right) split of a token whose halves are tokens, best merged score first."""
    vocab = {tok: idx for idx, tok in enumerate(tokens)}
    ranked: list[tuple[str, str, float]] = []
    for tok, score in zip(tokens, scores):
        local = [
            (tok[:cut], tok[cut:], score)
            for cut in range(1, len(tok))
            if tok[:cut] in vocab and tok[cut:] in vocab
        ]
        local.sort(key=lambda m: (vocab[m[0]], vocab[m[1]]))
        ranked.extend(local)
    ranked.sort(key=lambda m: (m[2], len(m[0]), len(m[1])), reverse=True)
    return [(left, right) for left, right, _ in ranked]


def sentencepiece_backend(
    meta: dict[str, Any], tokens: list[str], token_types: list[int]
) -> HFTokenizer:
    """Build the `tokenizers.Tokenizer` for a GGUF SentencePiece-BPE vocabulary."""
    vocab: dict[str, int] = {}
    for idx, tok in enumerate(tokens):
        vocab.setdefault(tok, idx)
    raw_merges = meta.get("tokenizer.ggml.merges")
    if raw_merges:
        merges = []
        for line_idx, merge in enumerate(raw_merges):
            parts = str(merge).split(" ")
            if len(parts) != 2:
                raise ValueError(
                    f"[tokenizer] gguf: merge {line_idx} expected 'left right', found {merge!r}"
                )
            merges.append((parts[0], parts[1]))
    else:
        scores = meta.get("tokenizer.ggml.scores")
        if scores is None or len(scores) != len(tokens):
            raise ValueError(
                "[tokenizer] gguf: SentencePiece vocabulary without merges needs "
                f"tokenizer.ggml.scores with {len(tokens)} entries, found "
                f"{None if scores is None else len(scores)}"
            )
        merges = merges_from_scores(tokens, [float(s) for s in scores])
    backend = HFTokenizer(
        models.BPE(vocab=vocab, merges=merges, fuse_unk=True, byte_fallback=True, dropout=None)
    )
    add_prefix = meta.get("tokenizer.ggml.add_space_prefix")
    add_prefix = True if add_prefix is None else bool(add_prefix)
    backend.normalizer = None
    backend.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="▁", prepend_scheme="first" if add_prefix else "never", split=False
    )
    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if add_prefix:
        steps.append(decoders.Strip(content=" ", left=1))
    backend.decoder = decoders.Sequence(steps)

    special_ids = set()
    for key in ("unknown_token_id", "bos_token_id", "eos_token_id"):
        value = meta.get(f"tokenizer.ggml.{key}")
        if value is not None and 0 <= int(value) < len(tokens):
            special_ids.add(int(value))
    special_ids.update(i for i, kind in enumerate(token_types) if kind == _TOKEN_TYPE_CONTROL)
    if special_ids:
        backend.add_special_tokens(
            [AddedToken(tokens[i], normalized=False, special=True) for i in sorted(special_ids)]
        )
    user = [
        AddedToken(tok, normalized=False, special=False)
        for tok, kind in zip(tokens, token_types)
        if kind == _TOKEN_TYPE_USER_DEFINED
    ]
    if user:
        backend.add_tokens(user)
    return backend
