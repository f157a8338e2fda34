"""Markdown table: every family of tests/family_models.py x (hf, gguf-f32, gguf-f16) x (cpu,
metal-sim) -> worst max |logit diff| / logit range against transformers and greedy agreement
(prompts of tests/family_models.py, 8 steps each), or the error a user gets when loading.
GGUF files come from llama.cpp's own converter (tests/llama_cpp_convert.py).

    python bench/family_table.py [--families llama qwen2 ...] [--steps 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import family_models as fm
import llama_cpp_convert

FORMATS = ["hf", "gguf-f32", "gguf-f16"]


def _short(exc: Exception, folder: Path) -> str:
    text = str(exc).replace(str(folder) + "/", "").replace(str(folder), "")
    return f"{type(exc).__name__}: {text.splitlines()[-1] if text else ''}".replace("|", "\\|")


def cell(path: Path, backend: str, ref_model, steps: int, folder: Path) -> str:
    import longbow

    try:
        llm = longbow.LLM(
            str(path), backend=backend, kv_dtype="f32", max_model_len=256, num_threads=2
        )
    except (ValueError, RuntimeError) as exc:  # what a user sees is the point of the table
        return _short(exc, folder)
    result = fm.compare(llm, ref_model, steps=steps)
    same = sum(g["first_diff"] is None for g in result["greedy"])
    return f"{result['max_rel_err']:.1e}, greedy {same}/{len(result['greedy'])}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="*", default=list(fm.FAMILIES))
    ap.add_argument("--steps", type=int, default=8)
    args = ap.parse_args()
    from longbow import _core

    backends = [b for b in ("cpu", "metal-sim") if b in _core.available_backends()]
    cols = [f"{f} / {b}" for f in FORMATS for b in backends]
    print("| family | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.families:
            folder = fm.write_family_model(name, Path(tmp) / name)
            ref_model = fm.load_model(folder)
            row = []
            for fmt in FORMATS:
                path = folder
                if fmt != "hf":
                    try:
                        path = llama_cpp_convert.convert(
                            folder, Path(tmp) / f"{name}-{fmt}.gguf", fmt.split("-")[1]
                        )
                    except llama_cpp_convert.ConversionFailed as exc:
                        row += ["converter: " + _short(exc, folder)] * len(backends)
                        continue
                row += [cell(path, b, ref_model, args.steps, Path(tmp)) for b in backends]
            print(f"| {name} | " + " | ".join(row) + " |", flush=True)
    print(
        f"\nCells: max |logit diff| / logit range vs transformers (float32, eager) over "
        f"{len(fm.PROMPTS)} prompts ({', '.join(str(len(p)) for p in fm.PROMPTS)} tokens; "
        f"sliding windows are {fm.SLIDING_WINDOW}), and prompts whose {args.steps} greedy "
        "tokens equal transformers'; or the error longbow raises on load. kv_dtype f32."
    )


if __name__ == "__main__":
    main()
