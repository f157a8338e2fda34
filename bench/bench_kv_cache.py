"""KV cache formats on the CPU (default model, SmolLM2-135M Q4_1): decode tokens/s at long
contexts (prompt + decoded tokens) per format vs f16, each beside its bandwidth bound, and the memory
per token.

For each context length one prompt of that many tokens is prefilled once per format (prefix
caching then keeps it), and `--reps` decodes of `--decode` tokens alternate between the formats;
ratios are of medians, measured in this run. The bound of a format is the ratio of bytes read per
decoded token, (weights + KV at f16) / (weights + KV in the format): what decode could gain if it
were bound by memory bandwidth alone. `share_of_bound` = measured ratio / bound.

    python bench/bench_kv_cache.py [--contexts 512 2048 8192] [--formats f16 q8_0 q4_1]
        [--threads 2] [--reps 3] [--decode 32] [--out FILE]

JSON lines to bench/results/kv_cache.jsonl and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def kv_bytes_per_token(config, kv_dtype: str) -> int:
    """K and V of one token over every layer, in kv_dtype (the engine's own row size)."""
    from longbow import _core

    row = _core.kv_row_bytes(kv_dtype, config.head_dim)
    return 2 * config.num_layers * config.num_kv_heads * row


def decode_tok_s(llm, prompt: list[int], n: int) -> float:
    """Decode tokens/s after the first generated token (the prompt is prefix-cached)."""
    import longbow

    params = longbow.SamplingParams(max_tokens=n, ignore_eos=True)
    first = None
    for _ in llm.stream(prompt, params):
        if first is None:
            first = time.perf_counter()
    return (n - 1) / (time.perf_counter() - first)


def run(args, emit) -> None:
    import longbow
    from longbow.pull import pull

    model = Path(args.model) if args.model else Path(pull(progress=False))
    weights = model.stat().st_size
    longest = max(args.contexts)
    llms = {
        f: longbow.LLM(
            str(model),
            num_threads=args.threads,
            kv_dtype=f,
            max_model_len=longest,
            num_blocks=longest // 8 + 16,
            block_size=8,
            backend="cpu",
        )
        for f in args.formats
    }
    config = next(iter(llms.values())).config
    per_token = {f: kv_bytes_per_token(config, f) for f in args.formats}
    base = args.formats[0]
    for ctx in args.contexts:
        # The context at the end of the decode is ctx tokens.
        prompt = [1 + (i * 7919) % (config.vocab_size - 1) for i in range(ctx - args.decode)]
        for llm in llms.values():  # prefill once; later requests hit the prefix cache
            llm.generate([prompt], longbow.SamplingParams(max_tokens=1))
        speeds: dict[str, list[float]] = {f: [] for f in args.formats}
        for _ in range(args.reps):
            for f, llm in llms.items():
                speeds[f].append(decode_tok_s(llm, prompt, args.decode))
        med = {f: statistics.median(v) for f, v in speeds.items()}
        for f in args.formats:
            read = {g: weights + ctx * per_token[g] for g in (base, f)}
            bound = read[base] / read[f]
            ratio = med[f] / med[base]
            emit(
                {
                    "context": ctx,
                    "kv_dtype": f,
                    "threads": args.threads,
                    "decode_tok_s": med[f],
                    "ratio_vs_" + base: ratio,
                    "bandwidth_bound": bound,
                    "share_of_bound": ratio / bound if bound > 1 else None,
                    "kv_bytes_per_token": per_token[f],
                    "kv_gb_64x4096": per_token[f] * 64 * 4096 / 1e9,
                }
            )


def markdown(rows: list[dict], base: str) -> str:
    head = (
        "| context | kv | decode tok/s | ratio | bound | share of bound | KV B/token | GB 64x4096 |"
    )
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        share = "" if r["share_of_bound"] is None else f"{r['share_of_bound']:.2f}"
        lines.append(
            f"| {r['context']} | {r['kv_dtype']} | {r['decode_tok_s']:.1f} | "
            f"{r['ratio_vs_' + base]:.2f} | {r['bandwidth_bound']:.2f} | {share} | "
            f"{r['kv_bytes_per_token']} | {r['kv_gb_64x4096']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="GGUF file (default: the default model)")
    ap.add_argument("--contexts", type=int, nargs="+", default=[512, 2048, 8192])
    ap.add_argument("--formats", nargs="+", default=["f16", "q8_0", "q4_1"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--decode", type=int, default=32, help="tokens per timed decode")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "kv_cache.jsonl"))
    args = ap.parse_args(argv)
    if args.decode < 2:
        ap.error("--decode must be at least 2")
    rows: list[dict] = []
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:

        def emit(row: dict) -> None:
            rows.append(row)
            f.write(json.dumps(row) + "\n")
            f.flush()

        run(args, emit)
    print(markdown(rows, args.formats[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
