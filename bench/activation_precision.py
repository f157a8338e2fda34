"""Why the CPU matmul quantizes activations to 16 bits: the logit error of 8- vs 16-bit block
activations on the default model, against the transformers oracle of tests/test_oracle_transformers.py
(the same GGUF dequantized to float32, so weight quantization cancels out and only activation
rounding remains), plus llama.cpp (8-bit Q8 activations) as the peer.

Every nn.Linear input is fake-quantized per block of 32 features the way the CPU kernels do
(d = max|x| / qmax, q = round(x / d)), for the layer types a variant names; the metric is the
oracle test's: max |logits - ref| / (ref.max - ref.min) at the last prompt token (limit 1e-2,
issue #2), worst and median over the prompts, and argmax flips.

    python bench/activation_precision.py [--model GGUF] [--variants int16 int8 ...] [--peer]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_oracle_transformers import PROMPTS as ORACLE_PROMPTS

LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head")
# variant -> (bits, layer types quantized to those bits; the others stay at 16 bits)
VARIANTS = {
    "int16": (16, LINEARS),
    "int8": (8, LINEARS),
    "int8-but-lm_head": (8, LINEARS[:-1]),
    "int8-gate-up": (8, ("gate_proj", "up_proj")),
    "int8-gate": (8, ("gate_proj",)),
    "int10": (10, LINEARS),
}
# The oracle test's prompts, then more kinds of text (code, SQL, French, JSON, arithmetic).
PROMPTS = [
    *ORACLE_PROMPTS,
    "Once upon a time, in a small village at the edge of a dark forest, there lived",
    "import numpy as np\n\ndef softmax(x):\n    e = np.exp(x - x.max())\n    return",
    "Q: What is 17 multiplied by 23?\nA:",
    "SELECT name, COUNT(*) FROM users WHERE age > 30 GROUP BY",
    "La tour Eiffel est située à Paris, et elle a été construite en",
    '{"name": "Alice", "age": 30, "hobbies": ["reading",',
]


def fake_quant(x, bits: int, block: int = 32):
    """x (..., K) rounded like the CPU activation quantizer: per block, d = amax / qmax."""
    import torch

    qmax = 2 ** (bits - 1) - 1
    shape = x.shape
    xb = x.reshape(-1, shape[-1] // block, block)
    d = xb.abs().amax(dim=-1, keepdim=True) / qmax
    q = torch.where(d > 0, torch.round(xb / torch.where(d > 0, d, 1)), torch.zeros_like(xb))
    return (q.clamp(-qmax, qmax) * d).reshape(shape)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=os.environ.get("LONGBOW_TEST_GGUF"))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--peer", action="store_true", help="also llama.cpp (llama-cpp-python)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "activation_precision.jsonl")
    )
    args = ap.parse_args()

    import numpy as np
    import torch
    import transformers
    from longbow.pull import pull

    torch.set_num_threads(args.threads)
    path = Path(args.model or pull(progress=False))
    tok = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, torch_dtype=torch.float32
    )
    model.eval()
    ids = [tok(p, return_tensors="pt").input_ids for p in PROMPTS]
    with torch.no_grad():
        refs = [model(i).logits[0, -1].double().numpy() for i in ids]

    active: dict[str, int] = {}  # layer type -> bits of the running variant

    def pre_hook(module, inputs):
        bits = active.get(module._longbow_kind, 16)
        return (fake_quant(inputs[0], bits),)

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            module._longbow_kind = name.rsplit(".", 1)[-1]
            module.register_forward_pre_hook(pre_hook)

    def score(logits_list):
        errs = [float(np.abs(g - r).max() / (r.max() - r.min())) for g, r in zip(logits_list, refs)]
        flips = sum(int(np.argmax(g) != np.argmax(r)) for g, r in zip(logits_list, refs))
        return max(errs), statistics.median(errs), flips

    rows = []
    for v in args.variants:
        bits, kinds = VARIANTS[v]
        active.clear()
        active.update({k: bits for k in kinds})
        with torch.no_grad():
            got = [model(i).logits[0, -1].double().numpy() for i in ids]
        worst, median, flips = score(got)
        rows.append(
            {
                "variant": v,
                "bits": bits,
                "layers": list(kinds),
                "worst": worst,
                "median": median,
                "argmax_flips": flips,
            }
        )
        print(f"{v}: worst {worst:.2e} median {median:.2e} flips {flips}", file=sys.stderr)
    active.clear()
    if args.peer:
        import llama_cpp

        llm = llama_cpp.Llama(
            model_path=str(path), logits_all=True, n_ctx=512, n_threads=args.threads, verbose=False
        )
        got = []
        for i in ids:
            llm.reset()
            toks = i[0].tolist()
            llm.eval(toks)
            got.append(np.array(llm.scores[len(toks) - 1], np.float64))
        worst, median, flips = score(got)
        rows.append(
            {
                "variant": "llama.cpp",
                "bits": 8,
                "layers": "Q8 activations",
                "worst": worst,
                "median": median,
                "argmax_flips": flips,
            }
        )

    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as f:
        f.writelines(
            json.dumps(
                {
                    "bench": "activation_precision",
                    "model": path.name,
                    "prompts": len(PROMPTS),
                    "time": stamp,
                    **r,
                }
            )
            + "\n"
            for r in rows
        )
    print(
        f"relative last-token logit error vs the float32 oracle, {len(PROMPTS)} prompts (limit 1e-2)"
    )
    print("| activations | worst | median | argmax flips |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['variant']} | {r['worst']:.2e} | {r['median']:.2e} | {r['argmax_flips']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
