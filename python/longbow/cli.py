"""The `longbow` command line: generate, chat, pull, info, serve, bench, perplexity."""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path
from typing import Sequence

from longbow.server.settings import ServerSettings

BACKENDS = ("cpu", "metal", "metal-sim", "auto")
QUANTIZE_TYPES = ("q8_0", "q4_0", "q4_1")  # block types weights can be quantized to at load


class CliError(Exception):
    """A user-facing error: printed as `error: <message>`, exit code 1."""


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        "-m",
        default=None,
        help="GGUF file, HF folder or known name (default: SmolLM2-135M-Instruct)",
    )
    p.add_argument(
        "--backend",
        "-b",
        choices=BACKENDS,
        default="auto",
        help="compute backend (default: auto = metal when available, else cpu)",
    )
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
    p.add_argument(
        "--quantize",
        choices=QUANTIZE_TYPES,
        default=None,
        help="quantize float weights (F32/F16/BF16 files) to this type as they load",
    )
    p.add_argument(
        "--kv-dtype",
        default=None,
        help="KV cache type: f16 (default), f32, or on the cpu backend q8_0 / q8 (about half the "
        "memory, ~0.1 %% perplexity), q4_1 / q4, q4_0",
    )
    p.add_argument("--k-dtype", default=None, help="K cache type alone (default: --kv-dtype)")
    p.add_argument("--v-dtype", default=None, help="V cache type alone (default: --kv-dtype)")
    p.add_argument(
        "--mlp",
        choices=["auto", "custom", "vendor"],
        default=None,
        help="who runs the MLP block: custom (default: ours, batch-invariant), auto (per shape, the "
        "faster of ours and the vendor library as measured here), vendor (BLAS / MPSGraph; float "
        "weights)",
    )
    p.add_argument(
        "--kv-rotation",
        action="store_true",
        default=None,
        help="rotate q and k per head by a Hadamard matrix (for a quantized K cache)",
    )
    spec = p.add_argument_group("speculative decoding (same output distribution, faster)")
    spec.add_argument(
        "--speculative",
        choices=["ngram", "draft", "self"],
        default=None,
        help="ngram: prompt lookup; draft: a smaller model (--draft-model) with the same "
        "vocabulary; self: a float model drafts with a quantized copy of itself",
    )
    spec.add_argument("--draft-model", default=None, help="draft model for --speculative draft")
    spec.add_argument(
        "--draft-quantize",
        choices=QUANTIZE_TYPES,
        default=None,
        help="weight type of the --speculative self draft (default q4_1)",
    )
    spec.add_argument(
        "--num-speculative-tokens", type=int, default=None, help="most draft tokens per step"
    )


def _add_sampling_args(p: argparse.ArgumentParser, max_tokens: int) -> None:
    # Unset flags are left to SamplingParams (whose defaults are the engine's); only max_tokens
    # has a default of the command's own.
    p.add_argument("--max-tokens", "-n", type=int, default=max_tokens)
    p.add_argument("--temperature", "-t", type=float, help="0 = greedy (the default)")
    p.add_argument("--top-k", type=int, help="0 = off")
    p.add_argument("--top-p", type=float, help="1 = off")
    p.add_argument("--min-p", type=float, help="0 = off")
    p.add_argument("--repetition-penalty", type=float)
    p.add_argument("--presence-penalty", type=float)
    p.add_argument("--frequency-penalty", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    shape = p.add_mutually_exclusive_group()
    shape.add_argument(
        "--json-schema",
        default=None,
        metavar="SCHEMA",
        help="constrain the output to JSON matching this schema (JSON text, or @FILE)",
    )
    shape.add_argument("--json", action="store_true", help="constrain the output to a JSON object")
    shape.add_argument("--regex", default=None, help="constrain the output to this regex")
    shape.add_argument(
        "--grammar",
        default=None,
        metavar="LARK",
        help="constrain the output to a Lark grammar (text or @FILE)",
    )


_SAMPLING_FLAGS = [
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "seed",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="longbow", description="LLM inference on Apple Silicon GPUs (and CPU)."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="generate a completion for PROMPT")
    gen.add_argument("prompt", help="prompt text ('-' reads stdin)")
    _add_model_args(gen)
    _add_sampling_args(gen, max_tokens=256)
    chat_group = gen.add_mutually_exclusive_group()
    chat_group.add_argument(
        "--chat",
        dest="chat",
        action="store_true",
        default=None,
        help="wrap PROMPT in the chat template (default when the model has one)",
    )
    chat_group.add_argument(
        "--no-chat", dest="chat", action="store_false", help="send PROMPT as raw text"
    )
    gen.add_argument("--system", default=None, help="system message (chat mode)")
    gen.add_argument("--no-stream", action="store_true", help="print the text when done")
    gen.add_argument("--stats", action="store_true", help="print metrics to stderr")

    chat = sub.add_parser("chat", help="interactive chat (/reset, /exit, Ctrl-D)")
    _add_model_args(chat)
    _add_sampling_args(chat, max_tokens=512)
    chat.add_argument("--system", default=None, help="system message")

    pull = sub.add_parser("pull", help="download a known model into the cache")
    pull.add_argument(
        "name", nargs="?", default=None, help="model name (default: the default model)"
    )

    serve = sub.add_parser("serve", help="OpenAI-compatible HTTP server (needs the 'server' extra)")
    _add_model_args(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--served-model-name", default=None, help="model id reported by /v1/models")
    engine = serve.add_argument_group("engine sizing (defaults: the engine's)")
    engine.add_argument(
        "--max-num-seqs", type=int, default=None, help="sequences run together in one step"
    )
    engine.add_argument(
        "--max-num-batched-tokens",
        type=int,
        default=None,
        help="tokens in one step; long prompts are prefilled in chunks of at most this many, so "
        "smaller values keep other streams' token gaps short",
    )
    engine.add_argument(
        "--max-model-len", type=int, default=None, help="context length (prompt + output)"
    )
    engine.add_argument("--kv-cache-gb", type=float, default=None, help="KV cache pool size in GiB")
    limits = serve.add_argument_group("admission")
    limits.add_argument(
        "--max-queue",
        type=int,
        default=ServerSettings.max_queue,
        help="requests that may wait beyond --max-num-seqs; more get HTTP 429 with Retry-After "
        "(default %(default)s)",
    )
    limits.add_argument(
        "--max-request-bytes",
        type=int,
        default=ServerSettings.max_request_bytes,
        help="largest request body; bigger ones get HTTP 413 (default %(default)s)",
    )
    limits.add_argument(
        "--shutdown-timeout",
        type=float,
        default=ServerSettings.shutdown_timeout,
        help="seconds SIGTERM lets running requests finish before aborting them "
        "(default %(default)s)",
    )
    limits.add_argument(
        "--default-max-tokens",
        type=int,
        default=ServerSettings.default_max_tokens,
        help="output length of a request that gives no max_tokens (default %(default)s)",
    )

    info = sub.add_parser("info", help="model config, weight dtypes, tokenizer, backends")
    info.add_argument("model", nargs="?", default=None, help="GGUF file, HF folder or known name")

    ppl = sub.add_parser(
        "perplexity",
        help="perplexity of a text, llama.cpp's method (second half of each ctx-token chunk)",
    )
    ppl.add_argument("model", nargs="?", default=None, help="GGUF file, HF folder or known name")
    ppl.add_argument(
        "--text",
        default=None,
        help="UTF-8 text file to score (default: the Python documentation topics bundled with "
        "Python, pydoc_data)",
    )
    ppl.add_argument("--ctx", type=int, default=512, help="tokens per chunk (default 512)")
    ppl.add_argument("--chunks", type=int, default=None, help="score only the first N chunks")
    ppl.add_argument("--backend", "-b", choices=BACKENDS, default="auto")
    ppl.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
    ppl.add_argument("--quantize", choices=QUANTIZE_TYPES, default=None)
    ppl.add_argument("--kv-dtype", default="f16", help="KV cache type scored (default f16)")
    ppl.add_argument("--k-dtype", default=None, help="K cache type scored (default: --kv-dtype)")
    ppl.add_argument("--v-dtype", default=None, help="V cache type scored (default: --kv-dtype)")
    ppl.add_argument(
        "--kv-rotation", action="store_true", help="Hadamard rotation of q and k (scored run only)"
    )
    ppl.add_argument(
        "--reference-kv-dtype",
        default="f16",
        help="KV cache type of the reference run for KL divergence and top-1 agreement, made "
        "when it differs from --kv-dtype (default f16; 'none': no reference run)",
    )
    ppl.add_argument("--json", action="store_true", help="print one JSON object")
    ppl.add_argument("--no-progress", action="store_true", help="no progress bar")

    bench = sub.add_parser(
        "bench", help="prefill/decode tokens/s (--peers: against llama.cpp on the same GGUF)"
    )
    bench.add_argument(
        "--model", "-m", default=None, help="GGUF file (default: SmolLM2-135M-Instruct Q4_1)"
    )
    bench.add_argument(
        "--backend",
        "-b",
        choices=BACKENDS,
        default="cpu",
        help="backend; with --peers cpu or metal (on a Mac: conformance checks, then longbow on "
        "Metal vs llama.cpp's Metal build and mlx-lm)",
    )
    bench.add_argument(
        "--threads", type=int, nargs="+", default=[1, 2], help="thread counts to run"
    )
    bench.add_argument("--reps", type=int, default=3, help="runs per case; medians are reported")
    bench.add_argument(
        "--peers",
        action="store_true",
        help="compare with llama.cpp (and --transformers) in alternating subprocesses; "
        "needs the 'bench' extra",
    )
    bench.add_argument(
        "--prefill-len", type=int, default=512, help="prompt tokens (without --peers)"
    )
    bench.add_argument(
        "--decode-len", type=int, default=128, help="generated tokens (without --peers)"
    )
    bench.add_argument("--out", default=None, help="append JSON lines here (without --peers)")
    from longbow.benchmarks import peers

    peers.add_args(bench)
    return parser


# ---- helpers (patched in tests) ------------------------------------------------------------


def load_llm(args: argparse.Namespace):
    """Construct the LLM for `args` (imports the C++ core lazily)."""
    from longbow import LLM

    return LLM(
        model=args.model,
        backend=args.backend,
        num_threads=args.threads,
        **_engine_kw(args),
    )


def _engine_kw(args: argparse.Namespace) -> dict:
    """LLM keywords of the --quantize, --kv-dtype and speculative decoding flags (unset ones left
    to the engine)."""
    return {
        "quantize": args.quantize,
        "kv_dtype": args.kv_dtype,
        "k_dtype": args.k_dtype,
        "v_dtype": args.v_dtype,
        "kv_rotation": args.kv_rotation,
        "mlp": args.mlp,
        "speculative": args.speculative,
        "draft_model": args.draft_model,
        "draft_quantize": args.draft_quantize,
        "num_speculative_tokens": args.num_speculative_tokens,
    }


def sampling_params(args: argparse.Namespace):
    from longbow.sampling import SamplingParams

    given = {k: getattr(args, k) for k in _SAMPLING_FLAGS if getattr(args, k) is not None}
    structured = _structured(args)
    if structured is not None:
        given["structured"] = structured
    return SamplingParams(max_tokens=args.max_tokens, stop=list(args.stop), **given)


def _text_or_file(value: str, flag: str) -> str:
    if not value.startswith("@"):
        return value
    try:
        return Path(value[1:]).read_text()
    except OSError as exc:
        raise CliError(f"{flag}: cannot read {value[1:]}: {exc.strerror}") from None


def _structured(args: argparse.Namespace):
    from longbow.structured import StructuredOutputs

    if getattr(args, "json_schema", None) is not None:
        return StructuredOutputs(json=_text_or_file(args.json_schema, "--json-schema"))
    if getattr(args, "json", False):
        return StructuredOutputs(json_object=True)
    if getattr(args, "regex", None) is not None:
        return StructuredOutputs(regex=args.regex)
    if getattr(args, "grammar", None) is not None:
        return StructuredOutputs(grammar=_text_or_file(args.grammar, "--grammar"))
    return None


def _write(out, text: str) -> None:
    out.write(text)
    out.flush()


def _print_metrics(metrics: dict | None, err) -> None:
    if metrics:
        parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()]
        err.write("[" + " ".join(parts) + "]\n")


# ---- commands ------------------------------------------------------------------------------


def cmd_generate(args: argparse.Namespace, out, err) -> int:
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    params = sampling_params(args)
    llm = load_llm(args)
    use_chat = args.chat
    if use_chat is None:
        use_chat = llm.tokenizer.chat_template is not None
    if use_chat:
        messages = [{"role": "user", "content": prompt}]
        if args.system:
            messages.insert(0, {"role": "system", "content": args.system})
        if llm.tokenizer.chat_template is None:
            raise CliError("--chat: this model has no chat template; use --no-chat")
        if args.no_stream:
            result = llm.chat(messages, params, stream=False)
            _write(out, result.text + "\n")
        else:
            for piece in llm.chat(messages, params, stream=True):
                _write(out, piece)
            _write(out, "\n")
            result = getattr(llm, "last_output", None)
    elif args.no_stream:
        result = llm.generate([prompt], params)[0]
        _write(out, result.text + "\n")
    else:
        for piece in llm.stream(prompt, params):
            _write(out, piece)
        _write(out, "\n")
        result = getattr(llm, "last_output", None)
    if args.stats:
        _print_metrics(getattr(result, "metrics", None), err)
    return 0


def cmd_chat(args: argparse.Namespace, out, err, read_line=input) -> int:
    params = sampling_params(args)
    llm = load_llm(args)
    if llm.tokenizer.chat_template is None:
        raise CliError("chat: this model has no chat template; use `longbow generate --no-chat`")
    base = [{"role": "system", "content": args.system}] if args.system else []
    history = list(base)
    _write(err, "Type a message. /reset clears the history, /exit or Ctrl-D quits.\n")
    while True:
        try:
            line = read_line(">>> ")
        except EOFError:
            _write(out, "\n")
            return 0
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            return 0
        if text == "/reset":
            history = list(base)
            _write(err, "(history cleared)\n")
            continue
        if text.startswith("/"):
            _write(err, f"unknown command {text!r}: expected /reset or /exit\n")
            continue
        history.append({"role": "user", "content": line})
        pieces: list[str] = []
        try:
            for piece in llm.chat(history, params, stream=True):
                pieces.append(piece)
                _write(out, piece)
        except KeyboardInterrupt:
            _write(err, "\n(interrupted)")
        _write(out, "\n")
        history.append({"role": "assistant", "content": "".join(pieces)})


def cmd_pull(args: argparse.Namespace, out, err) -> int:
    from longbow.pull import pull

    path = pull(args.name)
    _write(out, f"{path}\n")
    return 0


def dtype_histogram(model_file) -> dict[str, tuple[int, int]]:
    """dtype -> (number of tensors, bytes)."""
    hist: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for name in model_file.tensor_names():
        info = model_file.tensor_info(name)
        entry = hist[str(info["dtype"])]
        entry[0] += 1
        entry[1] += int(info.get("nbytes", 0))
    return {k: (v[0], v[1]) for k, v in sorted(hist.items())}


def cmd_info(args: argparse.Namespace, out, err) -> int:
    from longbow import _core
    from longbow.llm import load_tokenizer
    from longbow.pull import resolve_model

    path = Path(resolve_model(args.model))
    model_file = _core.ModelFile(str(path))
    cfg = model_file.config
    lines = [f"model: {path}", f"format: {model_file.format}", "config:"]
    for key in (
        "architecture",
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_layers",
        "num_heads",
        "num_kv_heads",
        "head_dim",
        "max_position",
        "rms_eps",
        "rope_theta",
        "tie_embeddings",
    ):
        if hasattr(cfg, key):
            lines.append(f"  {key}: {getattr(cfg, key)}")
    scaling = getattr(cfg, "rope_scaling", None)
    if scaling is not None and getattr(scaling, "type", ""):
        lines.append(f"  rope_scaling: {scaling.type} x{scaling.factor}")
    features = cfg.features
    lines.append("needs: " + ("nothing beyond the Llama graph" if not features else ""))
    for name, supported in features:
        lines.append(f"  {name}: {'supported' if supported else 'NOT SUPPORTED (loading fails)'}")
    lines.append("weights:")
    total = 0
    for dtype, (count, nbytes) in dtype_histogram(model_file).items():
        total += nbytes
        lines.append(f"  {dtype:>6}: {count:4d} tensors, {nbytes / 2**20:9.2f} MiB")
    lines.append(f"  total: {total / 2**20:.2f} MiB")
    tok = load_tokenizer(path, model_file)
    lines.append(
        f"tokenizer: vocab {tok.vocab_size}, bos {tok.bos_token_id} ({tok.bos_token!r}), "
        f"end-of-generation {sorted(tok.eos_token_ids)}"
    )
    lines.append(f"chat template: {'yes' if tok.chat_template else 'no'}")
    lines.append(f"backends: {', '.join(_core.available_backends())}")
    from longbow.blas import configure_blas

    configure_blas()
    lines.append(
        f"mlp: ours by default; vendor BLAS {_core.vendor_blas_status()}; mlp=auto measures ours vs "
        "the vendor per shape on first use (float weights) and keeps ours unless the vendor takes "
        "< 90 % of its time (LLM.mlp_report(); bench/bench_mlp.py prints the whole table)"
    )
    _write(out, "\n".join(lines) + "\n")
    return 0


def cmd_serve(args: argparse.Namespace, out, err) -> int:
    try:  # before loading the model: a missing extra must not cost a model load
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(
            f"[serve] needs the server extra ({exc.name} is missing): "
            "pip install 'longbow-quarrel[server]'"
        ) from None
    from longbow import LLM
    from longbow.server import serve

    settings = ServerSettings(
        model_name=args.served_model_name,
        max_queue=args.max_queue,
        max_request_bytes=args.max_request_bytes,
        shutdown_timeout=args.shutdown_timeout,
        default_max_tokens=args.default_max_tokens,
    )
    if args.kv_cache_gb is not None and not args.kv_cache_gb > 0:
        raise ValueError(f"[serve] --kv-cache-gb must be > 0, got {args.kv_cache_gb}")
    llm = LLM(
        model=args.model,
        backend=args.backend,
        num_threads=args.threads,
        max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=args.max_num_batched_tokens,
        max_model_len=args.max_model_len,
        kv_cache_bytes=None if args.kv_cache_gb is None else int(args.kv_cache_gb * (1 << 30)),
        **_engine_kw(args),
    )
    err.write(
        f"serving {llm.model_path.name} on http://{args.host}:{args.port}/v1 (backend "
        f"{llm.engine.backend_name}, {llm.engine.max_num_seqs} sequences, "
        f"{llm.engine.num_blocks * llm.engine.block_size} KV tokens, context "
        f"{llm.engine.max_model_len})\n"
    )
    serve(llm, host=args.host, port=args.port, settings=settings)
    return 0


def cmd_bench(args: argparse.Namespace, out, err) -> int:
    from longbow.pull import resolve_model

    if min(args.threads) < 1 or args.reps < 1 or args.prefill_len < 1 or args.decode_len < 2:
        raise CliError(
            f"expected threads >= 1, reps >= 1, prefill-len >= 1 and decode-len >= 2, found "
            f"{args.threads}, {args.reps}, {args.prefill_len}, {args.decode_len}"
        )
    model = str(resolve_model(args.model))
    if args.peers:
        from longbow.benchmarks import peers

        if args.backend not in ("cpu", "metal"):
            raise CliError("--peers runs on --backend cpu or metal (the first-Mac report)")
        _write(out, peers.compare_from_args(model, args))
        return 0
    from longbow.benchmarks import generate

    generate.run(
        model,
        args.threads,
        args.reps,
        args.out,
        prefill_len=args.prefill_len,
        decode_len=args.decode_len,
        backend=args.backend,
        write=lambda line: _write(out, line + "\n"),
    )
    return 0


def cmd_perplexity(args: argparse.Namespace, out, err) -> int:
    from longbow import LLM
    from longbow.perplexity import default_corpus, perplexity

    if args.text is None:
        corpus, text = default_corpus()
    else:
        corpus = args.text
        try:
            text = Path(args.text).read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise CliError(f"--text {args.text}: not UTF-8 text ({exc})") from exc

    def load(kv_dtype: str, k_dtype=None, v_dtype=None, rotation: bool = False):
        return LLM(
            model=args.model,
            backend=args.backend,
            num_threads=args.threads,
            quantize=args.quantize,
            kv_dtype=kv_dtype,
            k_dtype=k_dtype,
            v_dtype=v_dtype,
            kv_rotation=rotation,
            max_model_len=max(args.ctx, 1),
            enable_prefix_caching=False,
        )

    llm = load(args.kv_dtype, args.k_dtype, args.v_dtype, args.kv_rotation)
    k_dtype, v_dtype = args.k_dtype or args.kv_dtype, args.v_dtype or args.kv_dtype
    ref_dtype = args.reference_kv_dtype
    same = ref_dtype == k_dtype == v_dtype and not args.kv_rotation
    reference = None if ref_dtype == "none" or same else load(ref_dtype)
    result = perplexity(
        llm,
        text,
        args.ctx,
        max_chunks=args.chunks,
        reference=reference,
        progress=not args.no_progress and not args.json,
    )
    result = {
        "model": str(llm.model_path),
        "corpus": corpus,
        "kv_dtype": args.kv_dtype,
        "k_dtype": k_dtype,
        "v_dtype": v_dtype,
        "kv_rotation": args.kv_rotation,
        "reference_kv_dtype": None if reference is None else ref_dtype,
        **result,
    }
    if args.json:
        _write(out, json.dumps(result) + "\n")
        return 0
    lines = [
        f"model      {result['model']}",
        f"corpus     {corpus}",
        f"ctx        {args.ctx} ({result['chunks']} chunks, {result['tokens_scored']} tokens scored)",
        f"kv dtype   K {k_dtype} / V {v_dtype}"
        + (" + Hadamard rotation" if args.kv_rotation else ""),
        f"perplexity {result['ppl']:.4f} +/- {result['ppl_stderr']:.4f}",
    ]
    if reference is not None:
        lines += [
            f"reference  {ref_dtype} KV: perplexity {result['reference_ppl']:.4f} "
            f"({result['ppl_delta_pct']:+.3f} %)",
            f"KLD        {result['kld']:.6f} (max {result['kld_max']:.6f})",
            f"top-1      {100 * result['top1_agreement']:.2f} % agreement",
        ]
    _write(out, "\n".join(lines) + "\n")
    return 0


COMMANDS = {
    "generate": cmd_generate,
    "chat": cmd_chat,
    "pull": cmd_pull,
    "info": cmd_info,
    "serve": cmd_serve,
    "bench": cmd_bench,
    "perplexity": cmd_perplexity,
}


def main(argv: Sequence[str] | None = None, out=None, err=None) -> int:
    """Entry point of the `longbow` console script; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args, out, err)
    except KeyboardInterrupt:
        _write(err, "\ninterrupted\n")
        return 130
    except (CliError, ValueError, RuntimeError, OSError, ImportError) as exc:
        if args.debug:
            raise
        _write(err, f"error: {exc}\n")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
