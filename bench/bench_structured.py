"""Structured output on the default model: the share of outputs that parse and validate (must be
100 %), and what the grammar mask costs, in one run: the same prompts with and without the
constraint, decode tokens/s of each, and the host time llguidance spends per constrained token
(mask + advance, on the engine's thread between steps).

    python bench/bench_structured.py [--model GGUF] [--threads 2] [--samples 4] [--max-tokens 256]

JSON lines to bench/results/structured.jsonl, a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

SCHEMAS = {
    "person": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 24},
            "age": {"type": "integer", "minimum": 0, "maximum": 130},
            "email": {"type": "string", "pattern": "^[a-z]{1,12}@[a-z]{1,12}\\.com$"},
        },
        "required": ["name", "age", "email"],
        "additionalProperties": False,
    },
    "shopping_list": {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "item": {"type": "string", "maxLength": 20},
                        "quantity": {"type": "integer", "minimum": 1, "maximum": 20},
                    },
                    "required": ["item", "quantity"],
                    "additionalProperties": False,
                },
                "minItems": 1,
                "maxItems": 5,
            }
        },
        "required": ["items"],
        "additionalProperties": False,
    },
    "sentiment": {
        "type": "object",
        "properties": {
            "label": {"enum": ["positive", "negative", "neutral"]},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["label", "confidence"],
        "additionalProperties": False,
    },
    "address": {
        "type": "object",
        "properties": {
            "street": {"type": "string", "maxLength": 30},
            "city": {"type": "string", "maxLength": 20},
            "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
            "country": {"enum": ["FR", "DE", "US", "JP"]},
        },
        "required": ["street", "city", "zip", "country"],
        "additionalProperties": False,
    },
    "event": {
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 30},
            "date": {"type": "string", "pattern": "^2026-[01][0-9]-[0-3][0-9]$"},
            "attendees": {
                "type": "array",
                "items": {"type": "string", "maxLength": 12},
                "maxItems": 4,
            },
            "online": {"type": "boolean"},
        },
        "required": ["title", "date", "online"],
        "additionalProperties": False,
    },
    "json_object": None,  # any JSON object (response_format json_object)
}

PROMPTS = {
    "person": "Describe a fictional person as JSON with name, age and email.",
    "shopping_list": "Write a shopping list for a pancake breakfast as JSON.",
    "sentiment": "Classify the sentiment of: 'I loved this film!' Answer in JSON.",
    "address": "Give the address of a museum as JSON.",
    "event": "Describe a team meeting next month as JSON.",
    "json_object": "Give three facts about the moon as a JSON object.",
}


def valid(schema, text: str) -> bool:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return False
    if schema is None:
        return isinstance(doc, dict)
    import jsonschema

    try:
        jsonschema.validate(doc, schema)
    except jsonschema.ValidationError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default=None, help="GGUF file (default: the default model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=4, help="samples per schema (temperature 0.7)")
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--out", default="bench/results/structured.jsonl")
    args = ap.parse_args(argv)

    from longbow import LLM, SamplingParams
    from longbow.structured import StructuredOutputs

    llm = LLM(args.model, num_threads=args.threads, max_model_len=2048)
    prompts = {
        k: llm.tokenizer.apply_chat_template([{"role": "user", "content": p}])
        for k, p in PROMPTS.items()
    }
    rows = []
    for name, schema in SCHEMAS.items():
        constraint = (
            StructuredOutputs(json_object=True)
            if schema is None
            else StructuredOutputs(json=schema)
        )
        for mode in ("free", "constrained"):
            params = SamplingParams(
                max_tokens=args.max_tokens,
                temperature=0.7,
                seed=1,
                n=args.samples,
                structured=constraint if mode == "constrained" else None,
            )
            states = []
            original = llm._new_state

            def tracking(*a, **kw):
                state = original(*a, **kw)
                states.append(state)
                return state

            llm._new_state = tracking
            t = time.perf_counter()
            out = llm.generate(prompts[name], params)[0]
            elapsed = time.perf_counter() - t
            llm._new_state = original
            tokens = sum(len(c.token_ids) for c in out.outputs)
            mask_s = sum(s.matcher.seconds for st in states for s in st.samples if s.matcher)
            ok = sum(valid(schema, c.text) for c in out.outputs)
            finished = sum(c.finish_reason == "stop" for c in out.outputs)
            rows.append(
                {
                    "schema": name,
                    "mode": mode,
                    "samples": len(out.outputs),
                    "valid": ok,
                    "finished": finished,
                    "tokens": tokens,
                    "tokens_per_s": tokens / elapsed,
                    "mask_us_per_token": 1e6 * mask_s / max(tokens, 1)
                    if mode == "constrained"
                    else None,
                    "mask_share": mask_s / elapsed,
                    "valid_finished": sum(
                        valid(schema, c.text) for c in out.outputs if c.finish_reason == "stop"
                    ),
                    "example": out.outputs[0].text[:120],
                }
            )
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("a") as f:
        for r in rows:
            f.write(json.dumps({"bench": "structured", "threads": args.threads, **r}) + "\n")
    print(
        "| schema | mode | valid | finished (valid) | tok/s | mask µs/token | mask share of "
        "time | constrained/free tok/s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    free = {r["schema"]: r for r in rows if r["mode"] == "free"}
    for r in rows:
        ratio = (
            f"{r['tokens_per_s'] / free[r['schema']]['tokens_per_s']:.2f}"
            if r["mode"] == "constrained"
            else ""
        )
        mask = f"{r['mask_us_per_token']:.0f}" if r["mask_us_per_token"] is not None else ""
        share = f"{100 * r['mask_share']:.1f} %" if r["mode"] == "constrained" else ""
        print(
            f"| {r['schema']} | {r['mode']} | {r['valid']}/{r['samples']} | {r['finished']} "
            f"({r['valid_finished']}) | {r['tokens_per_s']:.1f} | {mask} | {share} | {ratio} |"
        )
    constrained = [r for r in rows if r["mode"] == "constrained"]
    total = sum(r["samples"] for r in constrained)
    good = sum(r["valid"] for r in constrained)
    finished = sum(r["finished"] for r in constrained)
    good_finished = sum(r["valid_finished"] for r in constrained)
    print(
        f"\nconstrained outputs valid: {good}/{total}; of those that finished (not cut by "
        f"max_tokens, finish_reason 'length'): {good_finished}/{finished} "
        f"({100 * good_finished / max(finished, 1):.1f} %)"
    )
    return 0 if good_finished == finished else 1


if __name__ == "__main__":
    sys.exit(main())
