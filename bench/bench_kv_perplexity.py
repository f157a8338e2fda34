"""Accuracy of the KV cache formats (K and V typed independently, with and without the Hadamard
rotation) on the default model: perplexity by llama.cpp's method, its change against the f16 cache
on the same chunks, the mean KL divergence KL(f16 || format) and the top-1 agreement.

    python bench/bench_kv_perplexity.py [--ctx 512 2048] [--tokens 32768] [--threads 2]
        [--configs f16/f16 q8_0/q8_0 q8_0/q4_1 q4_1/q4_1 q4_1/q4_1+rot ...] [--out FILE]

Each context scores its first --tokens tokens of the corpus (whole chunks; default: the Python
documentation bundled with Python, `longbow perplexity`'s default corpus, or --text). JSON lines to
bench/results/kv_perplexity.jsonl and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULT_CONFIGS = [
    "q8_0/q8_0",
    "q8_0/q4_1",
    "q4_1/q4_1",
    "q4_1/q4_1+rot",
    "q4_1/q8_0+rot",
    "q4_0/q4_0+rot",
]


def parse_config(config: str) -> tuple[str, str, bool]:
    """'K/V' or 'K/V+rot' -> (k_dtype, v_dtype, rotation)."""
    body, _, rot = config.partition("+")
    if rot not in ("", "rot") or body.count("/") != 1:
        raise SystemExit(f"--configs: expected K/V or K/V+rot, found {config!r}")
    k, v = body.split("/")
    return k, v, rot == "rot"


def run(args, emit) -> None:
    import longbow
    from longbow.perplexity import default_corpus, perplexity
    from longbow.pull import pull

    model = Path(args.model) if args.model else Path(pull(progress=False))
    if args.text:
        corpus, text = args.text, Path(args.text).read_text(encoding="utf-8")
    else:
        corpus, text = default_corpus()

    def load(k: str, v: str, rot: bool, ctx: int):
        return longbow.LLM(
            str(model),
            num_threads=args.threads,
            k_dtype=k,
            v_dtype=v,
            kv_rotation=rot,
            max_model_len=ctx,
            enable_prefix_caching=False,
        )

    for ctx in args.ctx:
        chunks = max(1, args.tokens // ctx)
        reference = load("f16", "f16", False, ctx)
        for config in args.configs:
            k, v, rot = parse_config(config)
            r = perplexity(load(k, v, rot, ctx), text, ctx, max_chunks=chunks, reference=reference)
            emit(
                {
                    "ctx": ctx,
                    "k_dtype": k,
                    "v_dtype": v,
                    "kv_rotation": rot,
                    "chunks": r["chunks"],
                    "tokens_scored": r["tokens_scored"],
                    "ppl": r["ppl"],
                    "ppl_stderr": r["ppl_stderr"],
                    "f16_ppl": r["reference_ppl"],
                    "ppl_delta_pct": r["ppl_delta_pct"],
                    "kld": r["kld"],
                    "top1_agreement": r["top1_agreement"],
                    "corpus": corpus,
                    "threads": args.threads,
                }
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="GGUF file (default: SmolLM2-135M Q4_1)")
    p.add_argument("--text", default=None, help="UTF-8 text file (default: pydoc_data topics)")
    p.add_argument("--ctx", type=int, nargs="+", default=[512, 2048])
    p.add_argument("--tokens", type=int, default=32768, help="corpus tokens per context")
    p.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "kv_perplexity.jsonl"))
    args = p.parse_args()
    rows = []
    print("| ctx | K | V | rotation | ppl | f16 ppl | Δ ppl | KLD | top-1 |")
    print("|---|---|---|---|---|---|---|---|---|")
    with open(args.out, "a", encoding="utf-8") as out:

        def emit(row: dict) -> None:
            rows.append(row)
            out.write(json.dumps(row) + "\n")
            out.flush()
            print(
                f"| {row['ctx']} | {row['k_dtype']} | {row['v_dtype']} | "
                f"{'yes' if row['kv_rotation'] else 'no'} | {row['ppl']:.4f} | "
                f"{row['f16_ppl']:.4f} | {row['ppl_delta_pct']:+.3f} % | {row['kld']:.5f} | "
                f"{100 * row['top1_agreement']:.2f} % |",
                flush=True,
            )

        run(args, emit)


if __name__ == "__main__":
    main()
