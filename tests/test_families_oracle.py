"""Every model family against transformers: tiny random models made by transformers itself
(family_models.py), loaded by longbow from the HF folder and from GGUF files written by llama.cpp's
own converter (llama_cpp_convert.py), on the CPU and metal-sim backends.

EXPECT is the one place that says what each case should do today. When a family lands in C++,
flip its entries to "match"; when a case starts to match, a stale "error"/"differs" entry fails.
"""

from __future__ import annotations

import re

import family_models as fm
import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.oracle]

# family -> {source: expectation}. source: "hf" (the folder transformers saved) or "gguf" (llama.cpp's
# converter, both --outtype f32 and f16). Expectations:
#   "match"            logits within TOL of transformers and the same greedy tokens
#   "error: <regex>"   longbow.LLM raises ValueError whose message matches <regex>
#   "differs: <why>"   loads but must not match (a gap outside longbow, e.g. in the converter)
EXPECT = {
    "llama": {"hf": "match", "gguf": "match"},
    "llama3_rope": {"hf": "match", "gguf": "match"},
    "llama3_rope_legacy": {"hf": "match", "gguf": "match"},
    "llama_bias": {"hf": "match", "gguf": "match"},
    # llama.cpp's converter maps MistralForCausalLM to arch "llama" and writes no sliding window:
    # the GGUF is a full-attention model, so it cannot agree with transformers past the window.
    "mistral_swa": {
        "hf": "match",
        "gguf": "differs: the converter drops sliding_window (llama arch)",
    },
    "qwen2": {"hf": "match", "gguf": "match"},
    "qwen3": {"hf": "match", "gguf": "match"},
    "phi3": {"hf": "match", "gguf": "match"},
    "gemma2": {"hf": "match", "gguf": "match"},
    "gemma3_text": {"hf": "match", "gguf": "match"},
}

# Max |logit diff| / logit range at the last prompt token. f32: both sides compute in float32 from
# the same float32 weights, so only summation order differs. f16: longbow reads weights rounded to
# f16 (relative step 2^-11 ~ 4.9e-4, errors add over 2-4 layers) while transformers keeps float32;
# ~5e-4 is observed, the limit leaves 4x room.
TOL = {"hf": 1e-4, "gguf-f32": 1e-4, "gguf-f16": 2e-3}
# A greedy token may differ only where the reference's top-two margin / range is below this
# (times the format's tolerance): a near tie that the format's rounding can flip.
NEAR_TIE = 4.0
GREEDY_STEPS = 8
FORMATS = list(TOL)
# "cpu-vendor": the CPU with its MLP block on the vendor BLAS (mlp="vendor").
BACKENDS = ["cpu", "cpu-vendor", "metal-sim"]


def test_expect_table_covers_every_family():
    assert set(EXPECT) == set(fm.FAMILIES)
    for name, row in EXPECT.items():
        assert set(row) == {"hf", "gguf"}, name
        for want in row.values():
            assert re.fullmatch(r"match|error: .+|differs: .+", want), (name, want)


@pytest.fixture(scope="session")
def family_files(tmp_path_factory):
    """make(name, fmt) -> path of family `name` as fmt ("hf", "gguf-f32", "gguf-f16"), cached."""
    import llama_cpp_convert

    cache: dict[tuple[str, str], object] = {}

    def make(name: str, fmt: str):
        key = (name, fmt)
        if key in cache:
            return cache[key]
        if fmt == "hf":
            cache[key] = fm.write_family_model(name, tmp_path_factory.mktemp(name) / "hf")
        else:
            folder = make(name, "hf")
            outtype = fmt.split("-")[1]
            try:
                cache[key] = llama_cpp_convert.convert(
                    folder, folder.parent / f"{fmt}.gguf", outtype
                )
            except llama_cpp_convert.ConverterUnavailable as exc:
                pytest.skip(str(exc))
        return cache[key]

    return make


@pytest.fixture(scope="session")
def reference(family_files):
    """ref(name) -> the transformers model loaded back from the saved folder, cached."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    cache = {}

    def ref(name):
        if name not in cache:
            cache[name] = fm.load_model(family_files(name, "hf"))
        return cache[name]

    return ref


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("family", list(fm.FAMILIES))
def test_family_against_transformers(family_files, reference, family, fmt, backend):
    import longbow
    from longbow import _core

    backend, mlp = ("cpu", "vendor") if backend == "cpu-vendor" else (backend, "")
    if backend not in _core.available_backends():
        pytest.skip(f"this build has no {backend} backend")
    if mlp:
        from longbow.blas import openblas_library

        if openblas_library() is None:
            pytest.skip("needs scipy-openblas32 for the vendor MLP path")
    want = EXPECT[family][fmt.split("-")[0]]
    path = family_files(family, fmt)

    def load():
        return longbow.LLM(
            str(path),
            backend=backend,
            kv_dtype="f32",
            max_model_len=256,
            num_threads=2,
            mlp=mlp or "custom",
        )

    if want.startswith("error: "):
        with pytest.raises(ValueError, match=want[len("error: ") :]):
            load()
        return
    result = fm.compare(load(), reference(family), steps=GREEDY_STEPS)
    tol = TOL[fmt]
    near_tie = NEAR_TIE * tol
    ok_logits = result["max_rel_err"] <= tol
    bad_greedy = [
        g for g in result["greedy"] if g["first_diff"] is not None and g["margin"] >= near_tie
    ]
    if want.startswith("differs: "):
        assert not ok_logits or bad_greedy, (
            f"{family} {fmt} now matches transformers (error {result['max_rel_err']:.1e}): "
            f"flip EXPECT[{family!r}] to 'match' (was {want!r})"
        )
        return
    assert ok_logits, f"max |logit diff| / range = {result['max_rel_err']:.2e} > {tol:.0e}"
    assert not bad_greedy, f"greedy tokens differ beyond a near tie: {bad_greedy}"


# Feature -> (family, knob overrides or a parameter edit that removes the feature). Each must move
# the transformers logits, or the fixtures would not test it.
def _zero(suffix):
    def edit(model):
        import torch

        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith(suffix):
                    p.zero_()

    return edit


def _ones(part):
    def edit(model):
        import torch

        with torch.no_grad():
            for name, p in model.named_parameters():
                if part in name:
                    p.fill_(1.0)

    return edit


FEATURES = {
    "llama3 rope scaling": (
        "llama3_rope",
        {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}},
    ),
    "attention + mlp bias": ("llama_bias", _zero("bias")),
    "mistral sliding window": ("mistral_swa", {"sliding_window": None}),
    "qwen2 qkv bias": ("qwen2", _zero("bias")),
    "qwen3 q/k norm": ("qwen3", _ones("_norm.")),
    "gemma2 attention softcap": ("gemma2", {"attn_logit_softcapping": None}),
    "gemma2 final softcap": ("gemma2", {"final_logit_softcapping": None}),
    "gemma2 sliding window": ("gemma2", {"sliding_window": 10_000}),
    "gemma3 local rope theta": (
        "gemma3_text",
        {
            "rope_parameters": {
                "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                "sliding_attention": {"rope_type": "default", "rope_theta": 1000000.0},
            }
        },
    ),
    "gemma3 sliding window": ("gemma3_text", {"sliding_window": 10_000}),
}


@pytest.mark.parametrize("feature", list(FEATURES))
def test_feature_changes_transformers_logits(feature):
    pytest.importorskip("transformers")
    family, change = FEATURES[feature]
    ids = fm.PROMPTS[-1]
    ref = fm.reference_logits(fm.build_model(family), ids)
    if callable(change):
        model = fm.build_model(family)
        change(model)
    else:
        model = fm.build_model(family, **change)
    diff = np.abs(fm.reference_logits(model, ids) - ref).max() / (ref.max() - ref.min())
    assert diff > 1e-2, f"{feature}: removing it moves the logits by only {diff:.1e} of the range"
