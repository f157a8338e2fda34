"""Perplexity by llama.cpp's method, so numbers compare with `llama-perplexity`: the text is
tokenized once (with BOS when the model adds one), cut into non-overlapping chunks of `ctx`
tokens (each chunk's first token replaced by BOS when the model adds one), and in each chunk the
tokens after position ctx/2 are scored: token j + 1 from the logits at j, for ctx/2 <= j < ctx - 1.

Against a reference run of the same chunks (e.g. the same model with an f16 KV cache) it also
reports the mean KL divergence KL(reference || this) and the top-1 agreement at the scored
positions.

    from longbow.perplexity import perplexity
    perplexity(LLM(path), text, ctx=512)  # {"ppl": ..., "nll": ..., ...}
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from longbow.llm import LLM

MIN_CTX = 4  # a chunk scores ctx / 2 - 1 tokens: at least one


def default_corpus() -> tuple[str, str]:
    """(name, text) of a corpus every Python install has offline: the documentation topics that
    ship with CPython (pydoc_data.topics, English prose and code), in key order. Its text follows
    the Python version; pass your own text (`--text`) for numbers to compare across machines."""
    import platform

    from pydoc_data import topics

    text = "\n\n".join(topics.topics[k] for k in sorted(topics.topics))
    return f"pydoc_data.topics (Python {platform.python_version()})", text


def chunk_tokens(llm: LLM, text: str, ctx: int) -> list[list[int]]:
    """The chunks of `text` that a perplexity run of context `ctx` scores (see the module doc)."""
    if ctx < MIN_CTX:
        raise ValueError(f"[perplexity] expected ctx >= {MIN_CTX}, found {ctx}")
    max_len = llm.engine.max_model_len
    if ctx > max_len:
        raise ValueError(
            f"[perplexity] ctx {ctx} exceeds the engine's max_model_len {max_len} "
            "(pass max_model_len to LLM)"
        )
    tok = llm.tokenizer
    ids = tok.encode(text, add_special_tokens=True)
    bos = tok.bos_token_id
    add_bos = bos is not None and ids[:1] == [bos]
    count = len(ids) // ctx
    if count == 0:
        raise ValueError(
            f"[perplexity] the text has {len(ids)} tokens, fewer than one chunk of ctx={ctx}"
        )
    chunks = [ids[i * ctx : (i + 1) * ctx] for i in range(count)]
    if add_bos:
        for c in chunks:
            c[0] = bos
    return chunks


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    x -= x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def perplexity(
    llm: LLM,
    text: str,
    ctx: int = 512,
    *,
    max_chunks: int | None = None,
    reference: LLM | None = None,
    progress: bool = False,
) -> dict:
    """Scores `text` (see the module doc). Returns ppl, its standard error (delta method, as
    llama.cpp), nll (mean negative log-likelihood, nats), tokens_scored, chunks, ctx, per-chunk
    running ppl; with `reference`, also reference_ppl, kld (mean KL(reference || llm), nats),
    kld_max and top1_agreement over the scored positions."""
    chunks = chunk_tokens(llm, text, ctx)
    if max_chunks is not None:
        if max_chunks < 1:
            raise ValueError(f"[perplexity] expected max_chunks >= 1, found {max_chunks}")
        chunks = chunks[:max_chunks]
    if reference is not None and reference.tokenizer.vocab_size != llm.tokenizer.vocab_size:
        raise ValueError("[perplexity] the reference model has another vocabulary")
    first = ctx // 2
    nll: list[float] = []  # per scored token
    ref_nll: list[float] = []
    klds: list[float] = []
    agree = 0
    running: list[float] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(chunks), desc="perplexity", unit="chunk")
    try:
        for chunk in chunks:
            targets = np.asarray(chunk[first + 1 :])  # token j + 1 for j in [first, ctx - 1)
            rows = np.arange(len(targets))
            lp = _log_softmax(llm.prompt_logits(chunk, first=first)[:-1])
            nll.extend((-lp[rows, targets]).tolist())
            if reference is not None:
                rp = _log_softmax(reference.prompt_logits(chunk, first=first)[:-1])
                ref_nll.extend((-rp[rows, targets]).tolist())
                klds.extend((np.exp(rp) * (rp - lp)).sum(axis=1).tolist())
                agree += int((rp.argmax(axis=1) == lp.argmax(axis=1)).sum())
            running.append(math.exp(float(np.mean(nll))))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(ppl=f"{running[-1]:.4f}")
    finally:
        if bar is not None:
            bar.close()
    x = np.asarray(nll)
    mean = float(x.mean())
    ppl = math.exp(mean)
    # Delta method: sd(ppl) ~= ppl * sd(nll) / sqrt(n), as llama-perplexity reports.
    stderr = ppl * float(x.std(ddof=1)) / math.sqrt(len(x)) if len(x) > 1 else float("nan")
    out = {
        "ppl": ppl,
        "ppl_stderr": stderr,
        "nll": mean,
        "tokens_scored": len(x),
        "chunks": len(chunks),
        "ctx": ctx,
        "running_ppl": running,
    }
    if reference is not None:
        out["reference_ppl"] = math.exp(float(np.mean(ref_nll)))
        out["ppl_delta_pct"] = 100.0 * (ppl / out["reference_ppl"] - 1.0)
        out["kld"] = float(np.mean(klds))
        out["kld_max"] = float(np.max(klds))
        out["top1_agreement"] = agree / len(x)
    return out
