"""longbow vs llama.cpp (llama-cpp-python) [and transformers] on the same GGUF, in one run.

Writes Q8_0 / F16 / F32 versions of the Q4_1 default model with the `gguf` package (dequantize,
requantize, same tensor names and metadata), then for every weight type and thread count runs
each engine in its own subprocess, alternating engines, `--reps` times, and reports medians of
prefill tok/s (512-token prompt), decode tok/s (128 tokens after a short and after a 512-token
prompt), time to first token and peak RSS, as ratios longbow / llama.cpp (llama.cpp at its
better setting of flash attention on/off, per metric). Outputs: JSON lines, a markdown table
and a PNG chart in --out-dir.

    longbow bench --peers [--model Q4_1.gguf] [--dtypes q4_1 q8_0 f16 bf16 f32]
        [--threads 1 2] [--reps 3] [--out-dir bench_out] [--transformers]
    python -m longbow.benchmarks.peers ...        (bench/compare_peers.py is a wrapper)

On a Mac, `longbow bench --peers --backend metal` is the first-Mac report: it first checks the
Metal backend (the Metal conformance tests of a source checkout when present, then greedy tokens
on Metal equal to the CPU's on the model), then runs longbow on Metal against llama.cpp with every
layer offloaded to Metal (llama-cpp-python's Metal build) and mlx-lm (when installed; it loads an
HF folder written once from the GGUF by transformers), with the same report files.

Needs the `bench` extra (llama-cpp-python, gguf, matplotlib); mlx-lm and transformers for the
mlx-lm column.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

PREFILL_LEN, DECODE_LEN, SHORT_LEN = 512, 128, 8
CASES = ("prefill_512", "decode_128_short", "decode_128_after_512")


# ---------------------------------------------------------------- model variants


def write_variant(src: Path, dtype: str, dst: Path) -> Path:
    """dst: src with every quantized/float matrix re-encoded as `dtype` (1-D tensors stay F32)."""
    import gguf
    import numpy as np
    from gguf.quants import dequantize, quantize

    if dst.is_file() and dst.stat().st_mtime > src.stat().st_mtime:
        return dst
    target = {
        "q8_0": gguf.GGMLQuantizationType.Q8_0,
        "q4_1": gguf.GGMLQuantizationType.Q4_1,
        "q4_0": gguf.GGMLQuantizationType.Q4_0,
        "f16": gguf.GGMLQuantizationType.F16,
        "bf16": gguf.GGMLQuantizationType.BF16,
        "f32": gguf.GGMLQuantizationType.F32,
    }[dtype]
    reader = gguf.GGUFReader(str(src))
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    tmp = dst.with_suffix(".tmp")
    writer = gguf.GGUFWriter(str(tmp), arch=arch)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        if field.name == gguf.Keys.General.FILE_TYPE:
            continue
        writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub)
    for t in reader.tensors:
        values = dequantize(t.data, t.tensor_type).astype(np.float32)
        if values.ndim < 2 or t.tensor_type == gguf.GGMLQuantizationType.F32 and values.ndim < 2:
            writer.add_tensor(t.name, values)
        elif target == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(t.name, values)
        elif target == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(t.name, values.astype(np.float16))
        else:
            writer.add_tensor(t.name, quantize(values, target), raw_dtype=target)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(dst)
    return dst


# ---------------------------------------------------------------- workers (one process each)


def _prompt(n: int, seed: int) -> list[int]:
    import numpy as np

    return [int(t) for t in np.random.default_rng(seed).integers(200, 40000, size=n)]


def worker_longbow(model: str, threads: int, seed: int, backend: str = "cpu") -> dict:
    from longbow import LLM, SamplingParams

    llm = LLM(
        model,
        backend=backend,
        num_threads=threads,
        max_num_batched_tokens=1024,
        max_model_len=2048,
    )
    llm.generate(
        [_prompt(SHORT_LEN, seed + 99)], SamplingParams(max_tokens=2, ignore_eos=True)
    )  # warm-up

    def run(ids, n):
        out = llm.generate([ids], SamplingParams(max_tokens=n, ignore_eos=True))[0].metrics
        return out["time_to_first_token_s"], out["decode_tokens_per_s"]

    ttft, _ = run(_prompt(PREFILL_LEN, seed), 1)
    _, dec_short = run(_prompt(SHORT_LEN, seed + 1), DECODE_LEN)
    _, dec_long = run(_prompt(PREFILL_LEN, seed + 2), DECODE_LEN)
    return {
        "prefill_512": PREFILL_LEN / ttft,
        "decode_128_short": dec_short,
        "decode_128_after_512": dec_long,
        "ttft_512_s": ttft,
    }


def worker_llamacpp(
    model: str, threads: int, seed: int, flash_attn: bool, backend: str = "cpu"
) -> dict:
    import numpy as np
    from llama_cpp import Llama

    llm = Llama(
        model_path=model,
        n_gpu_layers=-1 if backend == "metal" else 0,  # every layer on Metal (a Metal build)
        n_threads=threads,
        n_threads_batch=threads,
        n_ctx=2048,
        n_batch=512,
        n_ubatch=512,
        flash_attn=flash_attn,
        verbose=False,
    )

    import llama_cpp

    n_vocab = llm.n_vocab()

    def last_token():  # greedy over the logits of the last evaluated token
        ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        return int(np.argmax(np.ctypeslib.as_array(ptr, shape=(n_vocab,))))

    def run(ids, n):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        tok = last_token()
        ttft = time.perf_counter() - t0
        t1 = time.perf_counter()
        for _ in range(n - 1):
            llm.eval([tok])
            tok = last_token()
        dt = time.perf_counter() - t1
        return ttft, (n - 1) / dt if n > 1 else None

    run(_prompt(SHORT_LEN, seed + 99), 2)  # warm-up
    ttft, _ = run(_prompt(PREFILL_LEN, seed), 1)
    _, dec_short = run(_prompt(SHORT_LEN, seed + 1), DECODE_LEN)
    _, dec_long = run(_prompt(PREFILL_LEN, seed + 2), DECODE_LEN)
    return {
        "prefill_512": PREFILL_LEN / ttft,
        "decode_128_short": dec_short,
        "decode_128_after_512": dec_long,
        "ttft_512_s": ttft,
    }


def hf_folder_of(model: str) -> Path:
    """An HF folder (config, safetensors, tokenizer) of a GGUF, written once by transformers beside
    it, for engines that do not read GGUF (mlx-lm)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(model)
    out = path.with_name(path.stem + ".hf")
    if not (out / "config.json").exists():
        m = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
        m.save_pretrained(out)
        AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name).save_pretrained(out)
    return out


def worker_mlx(model: str, threads: int, seed: int) -> dict:
    from mlx_lm import load, stream_generate

    mlx_model, tokenizer = load(str(hf_folder_of(model)))

    def run(ids, n):
        last = None
        for last in stream_generate(mlx_model, tokenizer, ids, max_tokens=n):
            pass
        return last.prompt_tps, last.generation_tps

    run(_prompt(SHORT_LEN, seed + 99), 2)  # warm-up
    prefill, _ = run(_prompt(PREFILL_LEN, seed), 1)
    _, dec_short = run(_prompt(SHORT_LEN, seed + 1), DECODE_LEN)
    _, dec_long = run(_prompt(PREFILL_LEN, seed + 2), DECODE_LEN)
    return {
        "prefill_512": prefill,
        "decode_128_short": dec_short,
        "decode_128_after_512": dec_long,
        "ttft_512_s": PREFILL_LEN / prefill,
    }


def worker_transformers(model: str, threads: int, seed: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(threads)
    path = Path(model)
    m = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, torch_dtype=torch.float32
    )
    m.eval()

    def run(ids, n):
        with torch.no_grad():
            t0 = time.perf_counter()
            out = m(torch.tensor([ids]), use_cache=True)
            past, tok = out.past_key_values, int(out.logits[0, -1].argmax())
            ttft = time.perf_counter() - t0
            t1 = time.perf_counter()
            for _ in range(n - 1):
                out = m(torch.tensor([[tok]]), past_key_values=past, use_cache=True)
                past, tok = out.past_key_values, int(out.logits[0, -1].argmax())
            return ttft, (n - 1) / (time.perf_counter() - t1) if n > 1 else None

    run(_prompt(SHORT_LEN, seed + 99), 2)
    ttft, _ = run(_prompt(PREFILL_LEN, seed), 1)
    _, dec_short = run(_prompt(SHORT_LEN, seed + 1), DECODE_LEN)
    _, dec_long = run(_prompt(PREFILL_LEN, seed + 2), DECODE_LEN)
    return {
        "prefill_512": PREFILL_LEN / ttft,
        "decode_128_short": dec_short,
        "decode_128_after_512": dec_long,
        "ttft_512_s": ttft,
    }


def _peak_rss_mb() -> float:
    """Peak resident memory of this process. On Linux VmHWM of its own address space: ru_maxrss
    would also count the parent's footprint carried through fork + exec (the parent that writes the
    Q8_0/F16/F32 files is large), making every engine report the same number."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (
        peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0
    )  # bytes on macOS, KiB elsewhere


def _worker_main(args) -> int:
    if args.engine == "longbow":
        res = worker_longbow(args.model, args.threads_one, args.seed, args.worker_backend)
    elif args.engine.startswith("llama.cpp"):
        res = worker_llamacpp(
            args.model,
            args.threads_one,
            args.seed,
            flash_attn=args.engine.endswith("fa_on"),
            backend=args.worker_backend,
        )
    elif args.engine == "mlx-lm":
        res = worker_mlx(args.model, args.threads_one, args.seed)
    elif args.engine == "transformers":
        res = worker_transformers(args.model, args.threads_one, args.seed)
    else:
        raise ValueError(f"[compare_peers] unknown engine {args.engine!r}")
    res["peak_rss_mb"] = _peak_rss_mb()
    print("RESULT " + json.dumps(res), flush=True)
    return 0


def run_worker(engine: str, model: str, threads: int, seed: int, backend: str = "cpu") -> dict:
    cmd = [
        sys.executable,
        "-m",
        "longbow.benchmarks.peers",
        "--worker",
        engine,
        "--model",
        model,
        "--threads-one",
        str(threads),
        "--seed",
        str(seed),
        "--worker-backend",
        backend,
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(
        f"[compare_peers] {engine} worker failed (exit {p.returncode}): {p.stderr[-2000:]}"
    )


# ---------------------------------------------------------------- driver


def metal_preflight(model: str) -> None:
    """Before a Metal benchmark: the Metal conformance tests (a source checkout's tests/, when
    present) and greedy tokens on Metal equal to the CPU's on `model`; raises when either fails."""
    import importlib.util

    from longbow import LLM, SamplingParams, _core

    if "metal" not in _core.available_backends():
        raise RuntimeError(
            "[bench] no usable Metal device (available: "
            f"{', '.join(_core.available_backends())})"
        )
    tests = Path(__file__).resolve().parents[3] / "tests" / "test_metal_conformance.py"
    if tests.exists() and importlib.util.find_spec("pytest") is not None:
        env = dict(os.environ, LONGBOW_TEST_BACKENDS="cpu,metal-sim,metal")
        p = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", str(tests), "-k", "metal and not sim"],
            env=env,
            cwd=tests.parent,
        )
        if p.returncode != 0:
            raise RuntimeError("[bench] the Metal conformance tests failed; not benchmarking")
    else:
        print("[bench] no tests/ checkout: skipping the Metal conformance tests", flush=True)
    prompts = [_prompt(n, 50 + n) for n in (5, 17, 64, 300)]
    params = SamplingParams(max_tokens=16, ignore_eos=True)
    got = [o.token_ids for o in LLM(model, backend="metal").generate(prompts, params)]
    want = [o.token_ids for o in LLM(model, backend="cpu").generate(prompts, params)]
    if got != want:
        raise RuntimeError("[bench] greedy tokens on Metal differ from the CPU's; not benchmarking")
    print("[bench] Metal preflight passed (greedy tokens equal to the CPU's)", flush=True)


def compare(
    model: str,
    dtypes,
    threads,
    reps: int,
    out_dir: Path,
    with_transformers: bool = False,
    backend: str = "cpu",
) -> list[dict]:
    """Runs everything; returns the summary rows (also written to out_dir). backend "metal": longbow
    and llama.cpp on the GPU, mlx-lm beside them when installed (metal_preflight first)."""
    import importlib.util

    out_dir.mkdir(parents=True, exist_ok=True)
    src = Path(model)
    if backend == "metal":
        metal_preflight(model)
    with_mlx = backend == "metal" and importlib.util.find_spec("mlx_lm") is not None
    engines = (
        ["longbow", "llama.cpp/fa_on", "llama.cpp/fa_off"]
        + (["mlx-lm"] if with_mlx else [])
        + (["transformers"] if with_transformers else [])
    )
    raw_path = out_dir / "compare_peers_raw.jsonl"
    summary = []
    for dtype in dtypes:
        path = (
            src
            if dtype == "q4_1"
            else write_variant(src, dtype, out_dir / f"{src.stem}.{dtype}.gguf")
        )
        for t in threads:
            samples: dict[str, list[dict]] = {e: [] for e in engines}
            for rep in range(reps):
                order = engines if rep % 2 == 0 else list(reversed(engines))  # alternate
                for e in order:
                    r = run_worker(e, str(path), t, seed=1000 * rep + 7, backend=backend)
                    samples[e].append(r)
                    with open(raw_path, "a") as f:
                        f.write(
                            json.dumps(
                                {"dtype": dtype, "threads": t, "engine": e, "rep": rep, **r}
                                | {"backend": backend}
                            )
                            + "\n"
                        )
            med = {
                e: {k: statistics.median(s[k] for s in samples[e]) for k in samples[e][0]}
                for e in engines
            }
            for case in (*CASES, "ttft_512_s", "peak_rss_mb"):
                higher_better = case in CASES
                llama = [med["llama.cpp/fa_on"][case], med["llama.cpp/fa_off"][case]]
                best = max(llama) if higher_better else min(llama)
                row = {
                    "backend": backend,
                    "dtype": dtype,
                    "threads": t,
                    "metric": case,
                    "longbow": med["longbow"][case],
                    "llama.cpp_fa_on": llama[0],
                    "llama.cpp_fa_off": llama[1],
                    "llama.cpp_best": best,
                    "ratio_longbow_over_llama": med["longbow"][case] / best,
                    "reps": reps,
                }
                if with_transformers:
                    row["transformers"] = med["transformers"][case]
                if with_mlx:
                    row["mlx-lm"] = med["mlx-lm"][case]
                    row["ratio_longbow_over_mlx"] = med["longbow"][case] / med["mlx-lm"][case]
                summary.append(row)
                with open(out_dir / "compare_peers.jsonl", "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
    if backend == "cpu":  # the CPU bandwidth probe says nothing about a GPU
        add_roofline(summary, src, out_dir, threads)
    (out_dir / "compare_peers.md").write_text(markdown(summary))
    chart(summary, out_dir / "compare_peers.png")
    return summary


def compare_from_args(model: str, args: argparse.Namespace) -> str:
    """compare() with the parsed peers arguments (add_args, --threads, --reps, --backend); returns
    the markdown report."""
    out_dir = Path(args.out_dir)
    compare(
        model,
        args.dtypes,
        args.threads,
        args.reps,
        out_dir,
        args.transformers,
        backend=args.backend,
    )
    return (out_dir / "compare_peers.md").read_text()


def add_roofline(rows: list[dict], src: Path, out_dir: Path, threads) -> None:
    """Adds roofline_tok_s and roofline fractions to the decode rows (bench/roofline.py probe)."""
    from longbow.benchmarks.roofline import read_bandwidth, weight_bytes_per_token

    bw = {t: read_bandwidth(t)[0] for t in threads}
    for r in rows:
        if not r["metric"].startswith("decode"):
            continue
        path = src if r["dtype"] == "q4_1" else out_dir / f"{src.stem}.{r['dtype']}.gguf"
        roof = bw[r["threads"]] / weight_bytes_per_token(str(path))
        r["read_bw_gb_s"] = bw[r["threads"]] / 1e9
        r["roofline_tok_s"] = roof
        r["longbow_fraction_of_roofline"] = r["longbow"] / roof
        r["llama_fraction_of_roofline"] = r["llama.cpp_best"] / roof
    with open(out_dir / "compare_peers.jsonl", "a") as f:
        for r in rows:
            if "roofline_tok_s" in r:
                f.write(json.dumps({"roofline": True, **r}) + "\n")


def markdown(rows: list[dict]) -> str:
    mlx = any("mlx-lm" in r for r in rows)
    backend = rows[0].get("backend", "cpu") if rows else "cpu"
    lines = [
        f"longbow on {backend}.",
        "",
        "| weights | threads | metric | longbow | llama.cpp FA on | llama.cpp FA off | longbow / best llama.cpp "
        + ("| mlx-lm | longbow / mlx-lm " if mlx else "")
        + "| roofline tok/s (longbow, llama.cpp fraction) |",
        "|---|---|---|---|---|---|---|" + ("---|---|" if mlx else "") + "---|",
    ]
    for r in rows:
        roof = (
            f"{r['roofline_tok_s']:.0f} ({r['longbow_fraction_of_roofline']:.0%}, "
            f"{r['llama_fraction_of_roofline']:.0%})"
            if "roofline_tok_s" in r
            else ""
        )
        mlx_cells = (
            f" {r['mlx-lm']:.1f} | {r['ratio_longbow_over_mlx']:.2f}x |" if "mlx-lm" in r else ""
        )
        lines.append(
            f"| {r['dtype']} | {r['threads']} | {r['metric']} | {r['longbow']:.1f} | {r['llama.cpp_fa_on']:.1f} | "
            f"{r['llama.cpp_fa_off']:.1f} | {r['ratio_longbow_over_llama']:.2f}x |{mlx_cells} {roof} |"
        )
    lines.append("")
    lines.append(
        "tok/s for prefill/decode (higher is better); seconds for ttft and MB for peak RSS "
        "(lower is better; the ratio is then longbow / the lower llama.cpp value)."
    )
    return "\n".join(lines) + "\n"


def chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    speed = [r for r in rows if r["metric"] in CASES]
    labels = [
        f"{r['dtype']}\n{r['threads']}t\n{r['metric'].replace('decode_128_', 'dec ').replace('_512', '')}"
        for r in speed
    ]
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(speed)), 4))
    ax.bar(range(len(speed)), [r["ratio_longbow_over_llama"] for r in speed], color="tab:blue")
    ax.axhline(1.0, color="gray", lw=1)
    ax.axhline(1.2, color="tab:red", lw=1, ls="--", label="target 1.2x")
    ax.set_xticks(range(len(speed)), labels, fontsize=7)
    ax.set_ylabel("longbow / best llama.cpp (tok/s)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def add_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--dtypes",
        nargs="+",
        default=["q4_1", "q8_0", "f16", "bf16", "f32"],
        help="weight types to compare (variants of the Q4_1 model are written with gguf)",
    )
    ap.add_argument(
        "--out-dir", default="bench_out", help="JSON lines, markdown table and chart go here"
    )
    ap.add_argument("--transformers", action="store_true", help="also run transformers (slow)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default=None, help="the Q4_1 GGUF (default: the pulled SmolLM2)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--reps", type=int, default=3)
    add_args(ap)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--threads-one", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--worker-backend", default="cpu", help=argparse.SUPPRESS)
    ap.add_argument("--backend", choices=["cpu", "metal"], default="cpu")
    args = ap.parse_args(argv)
    if args.worker:
        args.engine = args.worker
        return _worker_main(args)
    from longbow.pull import resolve_model

    print(compare_from_args(str(resolve_model(args.model)), args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
