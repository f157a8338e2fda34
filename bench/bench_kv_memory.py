"""Resident memory of a full KV pool per cache format (K/V types) on the CPU, default model.

For each format a child process loads the model with a pool of exactly --seqs x --tokens tokens,
fills every block (--seqs distinct prompts of --tokens - 1 tokens, one generated token each) and
reports its resident set (VmRSS); a second child does the same with a pool of one sequence. The
difference is what the other --seqs - 1 sequences' KV costs, measured, beside the engine's own
size of it (kv_row_bytes), and the GB saved against the first format.

    python bench/bench_kv_memory.py [--formats f16/f16 q8_0/q8_0 q8_0/q4_1 q4_1/q4_1]
        [--seqs 64] [--tokens 4096] [--threads 2] [--out FILE]

JSON lines to bench/results/kv_memory.jsonl and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys
import longbow

model, k, v, seqs, tokens, threads = sys.argv[1:7]
seqs, tokens, threads = int(seqs), int(tokens), int(threads)
block = 16
llm = longbow.LLM(model, num_threads=threads, k_dtype=k, v_dtype=v, max_model_len=tokens,
                  block_size=block, num_blocks=seqs * tokens // block + 1,
                  max_num_seqs=min(seqs, 16), enable_prefix_caching=False)
vocab = llm.config.vocab_size
prompts = [[1 + (s * 7919 + i * 104729) % (vocab - 1) for i in range(tokens - 1)]
           for s in range(seqs)]
# Every sequence holds all its blocks at its last step; the pool's pages are then all touched.
llm.generate(prompts, longbow.SamplingParams(max_tokens=1, ignore_eos=True))
rss = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
           if line.startswith("VmRSS:"))
print(json.dumps({"rss": rss, "num_blocks": llm.stats()["num_blocks_total"]}))
"""


def child_rss(model: str, k: str, v: str, seqs: int, tokens: int, threads: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, model, k, v, str(seqs), str(tokens), str(threads)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"child for {k}/{v} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="GGUF file (default: SmolLM2-135M Q4_1)")
    p.add_argument(
        "--formats", nargs="+", default=["f16/f16", "q8_0/q8_0", "q8_0/q4_1", "q4_1/q4_1"]
    )
    p.add_argument("--seqs", type=int, default=64)
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "kv_memory.jsonl"))
    args = p.parse_args()
    from longbow import _core
    from longbow.pull import pull

    model = args.model or str(pull(progress=False))
    config = _core.ModelFile(model).config
    rows = []
    print("| K | V | KV B/token | predicted GB | measured GB | RSS GB | saved vs first GB |")
    print("|---|---|---|---|---|---|---|")
    with open(args.out, "a", encoding="utf-8") as out:
        for fmt in args.formats:
            k, v = fmt.split("/")
            per_token = (
                config.num_layers
                * config.num_kv_heads
                * (_core.kv_row_bytes(k, config.head_dim) + _core.kv_row_bytes(v, config.head_dim))
            )
            full = child_rss(model, k, v, args.seqs, args.tokens, args.threads)
            one = child_rss(model, k, v, 1, args.tokens, args.threads)
            measured = full["rss"] - one["rss"]  # the other seqs - 1 sequences' KV
            predicted = (args.seqs - 1) * args.tokens * per_token
            row = {
                "k_dtype": k,
                "v_dtype": v,
                "seqs": args.seqs,
                "tokens": args.tokens,
                "kv_bytes_per_token": per_token,
                "pool_gb": args.seqs * args.tokens * per_token / 1e9,
                "predicted_delta_gb": predicted / 1e9,
                "measured_delta_gb": measured / 1e9,
                "rss_gb": full["rss"] / 1e9,
                "rss_one_seq_gb": one["rss"] / 1e9,
            }
            row["saved_vs_first_gb"] = rows[0]["rss_gb"] - row["rss_gb"] if rows else 0.0
            rows.append(row)
            out.write(json.dumps(row) + "\n")
            out.flush()
            print(
                f"| {k} | {v} | {per_token} | {row['predicted_delta_gb']:.3f} | "
                f"{row['measured_delta_gb']:.3f} | {row['rss_gb']:.3f} | "
                f"{row['saved_vs_first_gb']:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
