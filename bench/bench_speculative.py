"""Speculative decoding on the default model (SmolLM2-135M): speedup over plain decoding of the same
file, measured in one run, with acceptance rate and mean accepted length (tokens per verify step)
for every case. JSON lines to bench/results/speculative.jsonl and a markdown table on stdout.

Cases (single stream = one request at a time; `--cases` picks some):
  ngram-code     prompt lookup (ngram) on an input-grounded task: edit a given piece of code (the
                 answer copies long spans of the prompt); Q4_1 file, temperature 0
  self-f32/f16   self-draft: the F32 and F16 versions of the default model (written with `gguf`,
                 as compare_peers.py does) draft with their own weights quantized to Q4_1 at
                 load; temperature 0 and 0.7 (seeded)
  draft-f16      the Q4_1 file drafting for the F16 file (temperature 0)
  batch          --concurrency requests at once (code edits and chat prompts), speculation on vs
                 off, aggregate generated tokens/s, at each level of --levels (ngram on Q4_1 and
                 self on F16) with speculation forced on: where it stops paying is the
                 speculative_max_batch crossover (engine_defaults.h); then the highest level
                 with the default crossover
  llamacpp-ngram llama.cpp's prompt lookup (llama-cpp-python's LlamaPromptLookupDecoding) vs its
                 plain decoding on the ngram-code task and file, in a subprocess

Plain and speculative runs alternate, `--reps` times; ratios are of medians. Speed is decode
tokens/s of the whole answer (generated tokens after the first / time after the first token) and
end-to-end (prompt included). "same output" compares with plain decoding: expected at
temperature 0 (and for n-gram drafts at any temperature); at 0.7 the self-draft's drafts are
sampled and rejection-sampled, so its tokens differ while their distribution is the target's.

    python bench/bench_speculative.py [--model Q4_1.gguf] [--cases ngram-code self-f16 ...]
        [--threads 2] [--reps 3] [--max-tokens 160] [--levels 1 4 8 16] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CODE_SNIPPETS = [
    """def summarize(orders):
    total = 0
    count = 0
    largest = None
    for order in orders:
        if order["status"] != "paid":
            continue
        total += order["amount"]
        count += 1
        if largest is None or order["amount"] > largest["amount"]:
            largest = order
    average = total / count if count else 0.0
    return {"total": total, "count": count, "average": average, "largest": largest}
""",
    """class Inventory:
    def __init__(self):
        self.items = {}

    def add(self, name, quantity):
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        self.items[name] = self.items.get(name, 0) + quantity

    def remove(self, name, quantity):
        have = self.items.get(name, 0)
        if quantity > have:
            raise ValueError("not enough " + name)
        self.items[name] = have - quantity
        if self.items[name] == 0:
            del self.items[name]

    def count(self, name):
        return self.items.get(name, 0)
""",
    """def parse_config(lines):
    config = {}
    section = "default"
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            config.setdefault(section, {})
            continue
        key, value = line.split("=", 1)
        config.setdefault(section, {})[key.strip()] = value.strip()
    return config
""",
]
CODE_EDITS = [
    "Rename the variable `total` to `revenue` everywhere in this code. Reply with the full code.",
    "Rename the attribute `items` to `stock` everywhere in this code. Reply with the full code.",
    "Rename the variable `config` to `settings` everywhere in this code. Reply with the full "
    "code.",
]
CHAT_PROMPTS = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how a refrigerator works, step by step.",
    "Give me five tips for learning a new language, with a sentence on each.",
    "Describe the water cycle to a ten-year-old.",
]


def code_edit_messages() -> list[list[dict]]:
    return [
        [{"role": "user", "content": f"{edit}\n\n```python\n{code}```"}]
        for code, edit in zip(CODE_SNIPPETS, CODE_EDITS)
    ]


def chat_messages() -> list[list[dict]]:
    return [[{"role": "user", "content": p}] for p in CHAT_PROMPTS]


def encode_chats(llm, chats: list[list[dict]]) -> list[list[int]]:
    tok = llm.tokenizer
    return [
        tok.encode(tok.apply_chat_template(m, add_generation_prompt=True), add_special_tokens=False)
        for m in chats
    ]


def run_single_stream(llm, prompts: list[list[int]], params) -> dict:
    """Generates for each prompt alone; totals of tokens and times, and the outputs."""
    before = llm.stats()
    gen = decode_tokens = 0
    e2e_s = decode_s = 0.0
    outputs = []
    for ids in prompts:
        t0 = time.perf_counter()
        out = llm.generate([ids], params)[0]
        e2e_s += time.perf_counter() - t0
        m = out.metrics
        n = len(out.token_ids)
        gen += n
        if n > 1:
            decode_tokens += n - 1
            decode_s += m["total_s"] - m["time_to_first_token_s"]
        outputs.append(out.token_ids)
    return {
        "generated_tokens": gen,
        "e2e_tok_s": gen / e2e_s,
        "decode_tok_s": decode_tokens / decode_s if decode_s > 0 else None,
        "outputs": outputs,
        **spec_counts(before, llm.stats()),
    }


def run_concurrent(llm, prompts: list[list[int]], params) -> dict:
    """All prompts submitted at once; aggregate generated tokens/s."""
    before = llm.stats()
    t0 = time.perf_counter()
    outs = llm.generate(prompts, params)
    seconds = time.perf_counter() - t0
    gen = sum(len(o.token_ids) for o in outs)
    return {
        "generated_tokens": gen,
        "e2e_tok_s": gen / seconds,
        "decode_tok_s": None,
        "outputs": [o.token_ids for o in outs],
        **spec_counts(before, llm.stats()),
    }


def spec_counts(before: dict, after: dict) -> dict:
    """Acceptance over one run from the engine's counters."""
    verify = after["num_verify_steps"] - before["num_verify_steps"]
    drafted = after["num_draft_tokens"] - before["num_draft_tokens"]
    accepted = after["num_accepted_tokens"] - before["num_accepted_tokens"]
    return {
        "verify_steps": verify,
        "acceptance_rate": accepted / drafted if drafted else None,
        "mean_accepted_length": (accepted + verify) / verify if verify else None,
    }


def compare(plain_llm, spec_llm, prompts, params, reps: int, concurrent: bool = False) -> dict:
    """Alternating plain / speculative runs; medians and their ratios."""
    run = run_concurrent if concurrent else run_single_stream
    plain, spec = [], []
    for _ in range(reps):
        plain.append(run(plain_llm, prompts, params))
        spec.append(run(spec_llm, prompts, params))
    row: dict = {"prompts": len(prompts), "generated_tokens": plain[0]["generated_tokens"]}
    for key in ("e2e_tok_s", "decode_tok_s"):
        if plain[0][key] is None:
            continue
        p = statistics.median(r[key] for r in plain)
        s = statistics.median(r[key] for r in spec)
        row[f"plain_{key}"], row[f"spec_{key}"], row[f"{key}_ratio"] = p, s, s / p
    for key in ("acceptance_rate", "mean_accepted_length"):
        vals = [r[key] for r in spec if r[key] is not None]
        row[key] = statistics.median(vals) if vals else None
    # Speculation never changes what is generated (same seed, same tokens).
    row["outputs_equal"] = all(p["outputs"] == s["outputs"] for p, s in zip(plain, spec))
    return row


# ---------------------------------------------------------------- llama.cpp prompt lookup


def llamacpp_worker(model: str, threads: int, prompts: list[str], max_tokens: int, lookup: bool):
    from llama_cpp import Llama

    kw = {}
    if lookup:
        from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

        kw["draft_model"] = LlamaPromptLookupDecoding(num_pred_tokens=10)
    llm = Llama(model, n_ctx=1024, n_threads=threads, n_batch=512, verbose=False, seed=0, **kw)
    gen, seconds = 0, 0.0
    for text in prompts:
        t0 = time.perf_counter()
        out = llm.create_completion(text, max_tokens=max_tokens, temperature=0.0)
        seconds += time.perf_counter() - t0
        gen += out["usage"]["completion_tokens"]
        llm.reset()
    return {"generated_tokens": gen, "e2e_tok_s": gen / seconds}


def run_llamacpp(model: str, threads: int, prompts: list[str], max_tokens: int, lookup: bool):
    """One llama.cpp run in its own process (a crash there does not end the benchmark)."""
    payload = json.dumps([model, threads, prompts, max_tokens, lookup])
    proc = subprocess.run(
        [sys.executable, __file__, "--llamacpp-worker", payload],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"llama.cpp worker failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- cases


def model_variant(src: Path, dtype: str, cache: Path) -> Path:
    from longbow.benchmarks.peers import write_variant

    cache.mkdir(parents=True, exist_ok=True)
    return write_variant(src, dtype, cache / f"{src.stem}.{dtype}.gguf")


def run_cases(args, emit) -> None:
    import longbow
    from longbow.pull import pull

    src = Path(args.model) if args.model else Path(pull(progress=False))
    cache = Path(args.cache_dir)
    base = {"num_threads": args.threads}
    SP = longbow.SamplingParams
    greedy = SP(max_tokens=args.max_tokens)
    sampled = SP(max_tokens=args.max_tokens, temperature=0.7, seed=1234)
    loaded: dict = {}

    def llm(path: Path, **kw):
        key = (str(path), json.dumps(kw, sort_keys=True))
        if key not in loaded:
            loaded[key] = longbow.LLM(str(path), **base, **kw)
        return loaded[key]

    first = llm(src)
    code = encode_chats(first, code_edit_messages())
    chat = encode_chats(first, chat_messages())

    def case(name, path, spec_kw, prompts, params, **extra):
        row = compare(llm(path), llm(path, **spec_kw), prompts, params, args.reps)
        emit({"case": name, "file": path.name, "temperature": params.temperature, **extra, **row})

    if "ngram-code" in args.cases:
        case("ngram-code", src, {"speculative": "ngram"}, code, greedy)
    for dtype in ("f32", "f16"):
        if f"self-{dtype}" not in args.cases:
            continue
        path = model_variant(src, dtype, cache)
        for params in (greedy, sampled):
            case(f"self-{dtype}", path, {"speculative": "self"}, chat, params)
        loaded.clear()  # keep one file's engines at a time
    if "draft-f16" in args.cases:
        f16 = model_variant(src, "f16", cache)
        case("draft-f16", f16, {"speculative": "draft", "draft_model": str(src)}, chat, greedy)
        loaded.clear()
    if "batch" in args.cases:
        mixed = code + chat
        for name, path, spec_kw in (
            ("batch-ngram", src, {"speculative": "ngram"}),
            ("batch-self-f16", model_variant(src, "f16", cache), {"speculative": "self"}),
        ):
            for level in args.levels:
                prompts = (mixed * (level // len(mixed) + 1))[:level]
                kw = {"max_num_seqs": max(level, 1)}
                row = compare(
                    llm(path, **kw),
                    llm(path, speculative_max_batch=64, **kw, **spec_kw),
                    prompts,
                    greedy,
                    args.reps,
                    concurrent=True,
                )
                emit({"case": name, "file": path.name, "concurrency": level, **row})
            # The highest level again with the engine's speculative_max_batch (speculation
            # skipped above the measured crossover): what a user gets by default.
            level = max(args.levels)
            prompts = (mixed * (level // len(mixed) + 1))[:level]
            kw = {"max_num_seqs": level}
            row = compare(
                llm(path, **kw), llm(path, **kw, **spec_kw), prompts, greedy, args.reps, True
            )
            emit({"case": f"{name}-default", "file": path.name, "concurrency": level, **row})
            loaded.clear()
    if "llamacpp-ngram" in args.cases:
        texts = [first.tokenizer.decode(ids, skip_special_tokens=False) for ids in code]
        plain, spec = [], []
        for _ in range(args.reps):
            plain.append(run_llamacpp(str(src), args.threads, texts, args.max_tokens, False))
            spec.append(run_llamacpp(str(src), args.threads, texts, args.max_tokens, True))
        p = statistics.median(r["e2e_tok_s"] for r in plain)
        s = statistics.median(r["e2e_tok_s"] for r in spec)
        emit(
            {
                "case": "llamacpp-ngram",
                "file": src.name,
                "temperature": 0.0,
                "plain_e2e_tok_s": p,
                "spec_e2e_tok_s": s,
                "e2e_tok_s_ratio": s / p,
            }
        )


def markdown(rows: list[dict]) -> str:
    cols = [
        ("case", "case"),
        ("file", "file"),
        ("temperature", "T"),
        ("concurrency", "conc."),
        ("plain_decode_tok_s", "plain decode tok/s"),
        ("spec_decode_tok_s", "spec decode tok/s"),
        ("decode_tok_s_ratio", "decode ratio"),
        ("plain_e2e_tok_s", "plain e2e tok/s"),
        ("spec_e2e_tok_s", "spec e2e tok/s"),
        ("e2e_tok_s_ratio", "e2e ratio"),
        ("acceptance_rate", "acceptance"),
        ("mean_accepted_length", "tokens/verify"),
        ("outputs_equal", "same output"),
    ]

    def cell(v):
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.2f}"
        return str(v)

    lines = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r.get(k)) for k, _ in cols) + " |" for r in rows]
    return "\n".join(lines)


ALL_CASES = ["ngram-code", "self-f32", "self-f16", "draft-f16", "batch", "llamacpp-ngram"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="Q4_1 GGUF (default: the default model)")
    ap.add_argument("--cases", nargs="+", default=ALL_CASES, choices=ALL_CASES)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=160)
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--cache-dir", default=os.path.expanduser("~/.cache/longbow/bench"))
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "speculative.jsonl"))
    ap.add_argument("--llamacpp-worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.llamacpp_worker:
        print(json.dumps(llamacpp_worker(*json.loads(args.llamacpp_worker))))
        return 0
    rows: list[dict] = []
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def emit(row: dict) -> None:
        row = {"threads": args.threads, "reps": args.reps, **row}
        rows.append(row)
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), file=sys.stderr, flush=True)

    run_cases(args, emit)
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
