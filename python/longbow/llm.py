"""The public Python API: load a model once, generate, stream and chat."""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from .outputs import RequestOutput, RequestState
from .sampling import SamplingParams

_request_counter = itertools.count()


def load_tokenizer(path: Path, model_file) -> "Tokenizer":  # noqa: F821
    """The tokenizer of a GGUF file (from its metadata) or of an HF folder (tokenizer.json)."""
    from .tokenizer import Tokenizer

    if model_file.format == "gguf":
        return Tokenizer.from_gguf_metadata(model_file.metadata())
    folder = path if path.is_dir() else path.parent
    return Tokenizer.from_hf_folder(folder)


def token_ids_of(prompt) -> list[int]:
    """A prompt given as token ids (a list, tuple or 1-D numpy array of integers) as a list of
    ints; ValueError for anything else (floats, strings, bools, nesting, an empty list)."""
    if isinstance(prompt, (str, bytes)) or not isinstance(prompt, Iterable):
        raise ValueError(
            f"[LLM] expected a prompt string or a sequence of token ids, found "
            f"{type(prompt).__name__}"
        )
    ids = list(prompt)
    for i, t in enumerate(ids):
        if not isinstance(t, numbers.Integral) or isinstance(t, bool):
            raise ValueError(f"[LLM] prompt token {i}: expected an integer token id, found {t!r}")
        if not 0 <= t < 2**31:
            raise ValueError(f"[LLM] prompt token {i}: token id {t} is out of range")
    if not ids:
        raise ValueError("[LLM] empty prompt token list")
    return [int(t) for t in ids]


# LLM settings by the type the engine takes (anything else is a ValueError naming the argument,
# not a pybind TypeError); values are range-checked by the engine.
_STRING_SETTINGS = {
    "backend",
    "kv_dtype",
    "k_dtype",
    "v_dtype",
    "attention",
    "quantize",
    "speculative",
    "draft_model",
    "draft_quantize",
    "mlp",
}
_BOOL_SETTINGS = {"kv_rotation", "enable_prefix_caching"}
_SIZE_SETTINGS = {"kv_cache_bytes"}  # size_t; every other setting is an int32


def _check_setting_type(name: str, value: object) -> None:
    if name in _STRING_SETTINGS:
        ok, kind = isinstance(value, str), "a string"
    elif name in _BOOL_SETTINGS:
        ok, kind = isinstance(value, bool), "True or False"
    else:
        top = 2**63 if name in _SIZE_SETTINGS else 2**31
        lowest = 0 if name in _SIZE_SETTINGS else -(2**31)
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        ok = ok and lowest <= value < top
        kind = "a byte count (an int >= 0)" if name in _SIZE_SETTINGS else "a 32-bit int"
    if not ok:
        raise ValueError(f"[LLM] {name} must be {kind}, got {value!r}")


def _is_token_ids(prompts) -> bool:
    """One prompt of token ids (rather than a batch of prompts)."""
    if isinstance(prompts, str):
        return False
    if getattr(prompts, "ndim", None) == 1:  # a 1-D numpy array
        return True
    return (
        isinstance(prompts, Sequence)
        and len(prompts) > 0
        and isinstance(prompts[0], numbers.Integral)
    )


class LLM:
    """A model loaded on a backend, ready to generate.

    model: a GGUF file, an HF folder (config.json + safetensors + tokenizer.json), a known
    model name, or None for the default (SmolLM2-135M-Instruct, pulled on first use).
    backend: "cpu", "metal", "metal-sim" or "auto" (Metal when available, else CPU).
    enable_prefix_caching: requests whose prompts start with the same full KV blocks as an
    earlier one reuse those blocks instead of recomputing them.
    max_model_len (0: the model's context length) may not exceed the model's context length;
    block_size is the KV block size in tokens (0: the backend's choice, 8 on the CPU and 16 on
    Metal); num_blocks (0: derived from kv_cache_bytes) the
    KV pool size. kv_dtype: "f16" (default), "f32", or on the CPU "q8_0" / "q8" (8-bit, 32-value groups:
    about half the memory of f16 for ~0.1 % perplexity on the default model), "q4_1" / "q4_0"
    (4-bit; "q4" is q4_1; a small model loses 12-25 % perplexity: measure with
    `longbow perplexity`). k_dtype / v_dtype choose the K or the V cache's type alone (each
    defaults to kv_dtype): keys are the sensitive half, so k_dtype="q8", v_dtype="q4" keeps most
    of q8's accuracy for less memory.
    kv_rotation=True rotates q and k of every head by a Hadamard matrix after RoPE (head_dim a
    power of two): the same scores, with K's outlier dimensions spread before quantization. Out-of-range settings raise ValueError. Settings left as None take the engine's
    defaults (`longbow._core.ENGINE_DEFAULTS`, defined once in C++).

    quantize: None (weights as stored) or "q8_0" / "q4_0" / "q4_1": float matmul weights (an
    F32/F16/BF16 GGUF or HF folder) are quantized to it as they load, bit for bit as llama.cpp's
    quantizer would write them.

    speculative: None (off), "ngram" (prompt lookup: drafts what followed the latest earlier
    occurrence of the last ngram_min..ngram_max tokens), "draft" (drafts from `draft_model`, a
    smaller model with the same vocabulary, sampled under each request's own parameters) or
    "self" (a float model drafts for itself with a copy of its weights quantized to
    draft_quantize, q4_1 by default, at load; no second file). Up to num_speculative_tokens
    drafts per step (adapting to each request's acceptance) are verified in one forward; the
    output is distributed exactly as without speculation, only faster when drafts are accepted.
    Greedy requests and n-gram drafts give the very tokens of plain decoding; sampled drafts are
    rejection-sampled (seeded runs reproducible, other tokens). Batches larger than speculative_max_batch (default 3, the
    crossover measured by bench/bench_speculative.py) do not speculate.
    SamplingParams(speculative=False) opts a request out.

    mlp: who runs the MLP block. "custom" (default): our kernels, so a token's result is the same
    bits whatever else is in the batch (batched = single, speculative verify = plain decoding).
    "auto": per shape (weight dtype, sizes, token-count bucket 1/8/64/512), the faster of ours and
    the vendor library's as measured on this machine at the first such call (`llm.mlp_report()`
    shows the measurements and picks; results then depend on the batch's size in the last bits);
    "vendor": always the vendor's
    (CPU: a BLAS sgemm for F32/F16/BF16 weights — Accelerate on macOS, elsewhere OpenBLAS from
    the `scipy-openblas32` wheel, `pip install longbow-quarrel[blas]` — keeping an f32 copy of each
    MLP weight; quantized weights raise; on Metal: MPSGraph for F32/F16/BF16 weights with SiLU and
    no biases; metal-sim has none and raises).
    """

    def __init__(
        self,
        model: str | Path | None = None,
        backend: str = "cpu",
        *,
        num_threads: int | None = None,
        kv_dtype: str | None = None,
        k_dtype: str | None = None,
        v_dtype: str | None = None,
        kv_rotation: bool | None = None,
        max_num_seqs: int | None = None,
        max_num_batched_tokens: int | None = None,
        max_model_len: int | None = None,
        block_size: int | None = None,
        num_blocks: int | None = None,
        kv_cache_bytes: int | None = None,
        attention: str | None = None,
        enable_prefix_caching: bool | None = None,
        quantize: str | None = None,
        speculative: str | None = None,
        draft_model: str | Path | None = None,
        draft_quantize: str | None = None,
        num_speculative_tokens: int | None = None,
        ngram_min: int | None = None,
        ngram_max: int | None = None,
        speculative_max_batch: int | None = None,
        mlp: str | None = None,
    ) -> None:
        from . import _core
        from .blas import configure_blas
        from .pull import resolve_model

        configure_blas()

        self.model_path = Path(resolve_model(None if model is None else str(model)))
        self.model_file = _core.ModelFile(str(self.model_path))
        self.config = self.model_file.config
        self.tokenizer = load_tokenizer(self.model_path, self.model_file)
        settings = {
            "num_threads": num_threads,
            "kv_dtype": kv_dtype,
            "k_dtype": k_dtype,
            "v_dtype": v_dtype,
            "kv_rotation": kv_rotation,
            "block_size": block_size,
            "num_blocks": num_blocks,
            "kv_cache_bytes": kv_cache_bytes,
            "max_num_seqs": max_num_seqs,
            "max_num_batched_tokens": max_num_batched_tokens,
            "max_model_len": max_model_len,
            "attention": attention,
            "enable_prefix_caching": enable_prefix_caching,
            "quantize": quantize,
            "speculative": speculative,
            "draft_model": None if draft_model is None else str(resolve_model(str(draft_model))),
            "draft_quantize": draft_quantize,
            "num_speculative_tokens": num_speculative_tokens,
            "ngram_min": ngram_min,
            "ngram_max": ngram_max,
            "speculative_max_batch": speculative_max_batch,
            "mlp": mlp,
        }
        settings["backend"] = backend
        given = {k: v for k, v in settings.items() if v is not None}
        for name, value in given.items():
            _check_setting_type(name, value)
        self.engine = _core.Engine(str(self.model_path), **given)
        vocab = self.config.vocab_size
        eos = sorted(
            i
            for i in self.tokenizer.eos_token_ids | set(self.engine.eos_token_ids)
            if 0 <= i < vocab
        )
        self.engine.set_eos_token_ids(eos)

    def mlp_report(self) -> list[str]:
        """How the backend runs the MLP block: its path and vendor library, then (mlp="auto")
        every measured shape with both paths' times and the pick."""
        return list(self.engine.mlp_report())

    # ---- requests ---------------------------------------------------------------------------

    def _encode(
        self, prompt: str | Sequence[int], add_special_tokens: bool = True
    ) -> tuple[str | None, list[int]]:
        if isinstance(prompt, str):
            return prompt, self.tokenizer.encode(prompt, add_special_tokens=add_special_tokens)
        return None, token_ids_of(prompt)

    def _add(self, prompt, params: SamplingParams, add_special_tokens: bool = True) -> RequestState:
        if not isinstance(params, SamplingParams):
            raise ValueError(f"[LLM] expected SamplingParams, got {type(params).__name__}")
        text, ids = self._encode(prompt, add_special_tokens)
        if not ids:
            raise ValueError(f"[LLM] prompt {prompt!r} encodes to no tokens")
        state = self._new_state(f"req-{next(_request_counter)}", text, ids, params)
        self.engine.add_request(state.request_id, ids, params.to_engine())
        state.push_masks(self.engine)
        return state

    def _new_state(self, request_id: str, text, ids: list[int], params: SamplingParams):
        """A request's bookkeeping; for structured output its grammar compiled and one matcher
        per sample (ValueError when the constraint is invalid)."""
        state = RequestState(request_id, text, ids, params, self.tokenizer)
        if params.structured is not None:
            from .structured import GrammarMatcher

            grammar = params.structured.grammar_text()
            eos = list(self.engine.eos_token_ids)
            vocab = self.config.vocab_size
            state.constrain(
                [GrammarMatcher(grammar, self.tokenizer, eos, vocab) for _ in range(params.n)]
            )
        return state

    def _drive(self, states: dict[str, RequestState]) -> Iterator[tuple[RequestState, int, str]]:
        """Steps the engine until every request in `states` is finished, yielding
        (state, sample index, text delta)."""
        pending = {rid for rid, s in states.items() if not s.finished}
        try:
            while pending:
                touched = []
                for rid, token, logprob, finished, reason, idx, top, spec in self.engine.step():
                    state = states.get(rid)
                    if state is None or state.finished:
                        continue
                    delta, must_abort = state.on_token(
                        token, logprob, finished, reason, idx, top, spec
                    )
                    if must_abort:
                        self.engine.abort(rid, idx)
                    if state.finished:
                        pending.discard(rid)
                    elif state.constrained:
                        touched.append(state)
                    if delta:
                        yield state, idx, delta
                for state in touched:  # the next masks, before the next step
                    state.push_masks(self.engine)
                if pending and not self.engine.has_unfinished():
                    raise RuntimeError(
                        "[LLM] engine stopped with unfinished requests: " + ", ".join(pending)
                    )
        finally:
            # The consumer stopped early or an error was raised: free the requests' KV blocks
            # at once (the engine reports the aborts on its next step).
            for rid in pending:
                self.engine.abort(rid)

    def generate(
        self,
        prompts: str | Sequence[int] | Sequence[str] | Sequence[Sequence[int]],
        params: SamplingParams | Sequence[SamplingParams] | None = None,
        *,
        use_tqdm: bool = False,
    ) -> list[RequestOutput]:
        """Generate for one or many prompts (text or token ids), batched through the paged cache.

        Returns one RequestOutput per prompt, in order.
        """
        if isinstance(prompts, str) or _is_token_ids(prompts):
            prompts = [prompts]
        if not isinstance(prompts, Iterable):
            raise ValueError(
                f"[LLM] expected a prompt or a list of prompts, found {type(prompts).__name__}"
            )
        prompts = list(prompts)
        if not prompts:
            return []
        if params is None:
            params = SamplingParams()
        plist = list(params) if isinstance(params, Sequence) else [params] * len(prompts)
        if len(plist) != len(prompts):
            raise ValueError(f"[LLM] {len(plist)} SamplingParams for {len(prompts)} prompts")
        states: dict[str, RequestState] = {}
        try:
            for prompt, p in zip(prompts, plist):
                s = self._add(prompt, p)
                states[s.request_id] = s
        except Exception:
            for rid in states:
                self.engine.abort(rid)
            self._drain()
            raise
        bar = None
        if use_tqdm:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(states), desc="generate", unit="req")
        done = 0
        for _ in self._drive_until_done(states):
            if bar is not None:
                n = sum(s.finished for s in states.values())
                bar.update(n - done)
                done = n
        if bar is not None:
            bar.update(len(states) - done)
            bar.close()
        return [s.output() for s in states.values()]

    def _drive_until_done(self, states: dict[str, RequestState]) -> Iterator[None]:
        for _ in self._drive(states):
            yield None
        yield None

    def _drain(self) -> None:
        while self.engine.has_unfinished():
            self.engine.step()

    def stream(
        self,
        prompt: str | Sequence[int],
        params: SamplingParams | None = None,
        *,
        add_special_tokens: bool = True,
    ) -> Iterator[str]:
        """Yield text pieces as they are produced (stop strings are never shown). With n > 1
        samples, the pieces of the first sample; all of them end up in `self.last_output`."""
        state = self._add(prompt, params or SamplingParams(), add_special_tokens)
        for _, idx, delta in self._drive({state.request_id: state}):
            if idx == 0:
                yield delta
        self.last_output = state.output()

    def chat(
        self, messages: list[dict], params: SamplingParams | None = None, *, stream: bool = False
    ):
        """Apply the model's chat template to `messages` and answer as the assistant."""
        prompt = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        if stream:
            return self.stream(prompt, params, add_special_tokens=False)
        state = self._add(prompt, params or SamplingParams(), add_special_tokens=False)
        for _ in self._drive({state.request_id: state}):
            pass
        return state.output()

    def prompt_logits(self, prompt: str | Sequence[int], first: int | None = None):
        """Logits (vocab_size,) float32 of the last prompt token; with `first`, of prompt
        positions first.. as (num_tokens - first, vocab_size)."""
        _, ids = self._encode(prompt)
        if first is not None and (
            not isinstance(first, numbers.Integral)
            or isinstance(first, bool)
            or not -(2**31) <= first < 2**31
        ):  # the engine checks the range
            raise ValueError(f"[LLM] prompt_logits: first must be a token index, got {first!r}")
        return self.engine.prompt_logits(ids, -1 if first is None else first)

    def stats(self) -> dict:
        """Engine counters: running/waiting sequences, KV blocks used/free/cached, KV utilization,
        preemptions, prefix-cache queries/hits/hit rate (tokens), copy-on-write copies, tokens per
        step (last and mean)."""
        return self.engine.stats()
