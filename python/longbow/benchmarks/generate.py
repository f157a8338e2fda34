"""Prefill and decode tokens/s of longbow on one model (default: SmolLM2-135M Q4_1), JSON lines.

Cases: prefill of a 512-token prompt; decode of 128 tokens after a short prompt and after a
512-token prompt; threads 1 and 2. Each case runs `--reps` times; the median is reported.

    longbow bench [--model PATH] [--threads 1 2] [--reps 3] [--out FILE]
    python -m longbow.benchmarks.generate ...      (bench/bench_generate.py is a wrapper)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def prompt_ids(n: int, vocab: int, seed: int = 0) -> list[int]:
    """A deterministic token id sequence of length n (ordinary ids, no special tokens)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [int(t) for t in rng.integers(200, min(vocab, 40000), size=n)]


def run_case(llm, ids: list[int], max_tokens: int) -> dict:
    from longbow import SamplingParams

    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
    t0 = time.perf_counter()
    out = llm.generate([ids], params)[0]
    total = time.perf_counter() - t0
    m = out.metrics
    return {
        "ttft_s": m["time_to_first_token_s"],
        "prefill_tok_s": len(ids) / m["time_to_first_token_s"],
        "decode_tok_s": m["decode_tokens_per_s"],
        "generated": m["num_generated_tokens"],
        "total_s": total,
    }


def bench_longbow(
    model: str,
    threads: int,
    reps: int,
    prefill_len: int = 512,
    decode_len: int = 128,
    short_len: int = 8,
    backend: str = "cpu",
) -> list[dict]:
    """The three standard cases for one thread count; one dict per case (medians over reps)."""
    from longbow import LLM

    llm = LLM(
        model,
        backend=backend,
        num_threads=threads,
        max_num_batched_tokens=max(1024, prefill_len + 16),
        max_model_len=max(2048, prefill_len + decode_len + 16),
    )
    vocab = llm.config.vocab_size
    run_case(
        llm, prompt_ids(short_len, vocab, seed=999), 4
    )  # warm-up: page in the weights, start the pool
    # (length, tokens out, metric); every run gets a fresh prompt so the prefix cache never hits.
    cases = {
        "prefill_512": (prefill_len, 1, "prefill_tok_s"),
        "decode_128_short": (short_len, decode_len, "decode_tok_s"),
        "decode_128_after_512": (prefill_len, decode_len, "decode_tok_s"),
    }
    rows = []
    for c, (name, (n_in, n_out, key)) in enumerate(cases.items()):
        samples = [
            run_case(llm, prompt_ids(n_in, vocab, seed=100 * c + r), n_out) for r in range(reps)
        ]
        rows.append(
            {
                "engine": "longbow",
                "case": name,
                "threads": threads,
                "tok_s": statistics.median(s[key] for s in samples),
                "ttft_s": statistics.median(s["ttft_s"] for s in samples),
                "samples": [s[key] for s in samples],
            }
        )
    return rows


def run(
    model: str,
    threads,
    reps: int,
    out: str | None = None,
    prefill_len: int = 512,
    decode_len: int = 128,
    backend: str = "cpu",
    write=print,
) -> list[dict]:
    """Every case for every thread count; each row is written as a JSON line (and appended to `out`)."""
    rows = []
    for t in threads:
        for row in bench_longbow(
            model, t, reps, prefill_len=prefill_len, decode_len=decode_len, backend=backend
        ):
            row["model"] = model
            line = json.dumps(row)
            write(line)
            if out:
                with open(out, "a") as f:
                    f.write(line + "\n")
            rows.append(row)
    return rows


def add_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--model", default=None, help="GGUF path (default: the pulled SmolLM2 Q4_1)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=None, help="append JSON lines here (default: stdout only)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_args(ap)
    args = ap.parse_args(argv)
    from longbow.pull import resolve_model

    run(str(resolve_model(args.model)), args.threads, args.reps, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
