"""The whole-model oracle: Hugging Face transformers (PyTorch CPU) loading the same SmolLM2
GGUF (dequantized to float32) against longbow's CPU backend reading the quantized weights."""

from __future__ import annotations

import numpy as np
import pytest

import longbow
from real_model import smollm2_gguf

pytestmark = [pytest.mark.slow, pytest.mark.oracle]

PROMPTS = [
    "The capital of France is",
    'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n',
    "Translate to German: The weather is nice today.",
    "1, 1, 2, 3, 5, 8, 13,",
    "<|im_start|>user\nWhat is photosynthesis?<|im_end|>\n<|im_start|>assistant\n",
    "Ünïcödé, emoji 🙂 and 日本語: a short story begins",
]
MAX_REL_LOGIT_ERR = 1e-2  # of the logit range (issue #2)
NEAR_TIE = 0.1  # logits closer than this may flip under quantized arithmetic


@pytest.fixture(scope="module")
def oracle():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    path = smollm2_gguf()
    tok = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, torch_dtype=torch.float32
    )
    model.eval()
    return torch, tok, model, path


@pytest.fixture(scope="module")
def llm(oracle):
    return longbow.LLM(str(oracle[3]), backend="cpu", kv_dtype="f32")


def _ids(tok, prompt):
    return tok(prompt, return_tensors="pt").input_ids


def test_tokenizer_ids_match(oracle, llm):
    _, tok, _, _ = oracle
    for p in PROMPTS:
        assert llm.tokenizer.encode(p) == _ids(tok, p)[0].tolist(), p


def test_last_token_logits_match(oracle, llm):
    torch, tok, model, _ = oracle
    worst = 0.0
    for p in PROMPTS:
        ids = _ids(tok, p)
        with torch.no_grad():
            ref = model(ids).logits[0, -1].double().numpy()
        got = llm.prompt_logits(ids[0].tolist()).astype(np.float64)
        err = np.abs(got - ref).max() / (ref.max() - ref.min())
        worst = max(worst, err)
        assert err <= MAX_REL_LOGIT_ERR, f"{p!r}: relative logit error {err:.2e}"
        assert got.argmax() == ref.argmax(), p
    print(f"worst relative logit error {worst:.2e}")


def test_greedy_tokens_match_except_near_ties(oracle, llm):
    torch, tok, model, _ = oracle
    params = longbow.SamplingParams(max_tokens=32, ignore_eos=True)
    for p in PROMPTS:
        ids = _ids(tok, p)
        with torch.no_grad():
            gen = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                max_new_tokens=32,
                output_logits=True,
                return_dict_in_generate=True,
                pad_token_id=tok.eos_token_id,
            )
        ref = gen.sequences[0, ids.shape[1] :].tolist()
        got = llm.generate([ids[0].tolist()], params)[0].token_ids
        # transformers stops at its end-of-sequence token; compare that prefix (up to 32 tokens).
        assert len(ref) >= 1
        for i, (a, b) in enumerate(zip(got, ref)):
            if a != b:
                top2 = torch.topk(gen.logits[i][0], 2).values
                margin = float(top2[0] - top2[1])
                assert (
                    margin < NEAR_TIE
                ), f"{p!r}: token {i} differs ({a} vs {b}) with margin {margin:.3f}"
                break  # after a legitimate near-tie flip the continuations differ


def test_batched_equals_single_real_model(llm):
    params = longbow.SamplingParams(max_tokens=24, ignore_eos=True)
    prompts = PROMPTS + ["Hello", "A long time ago in a galaxy far, far away, there lived"]
    batched = llm.generate(prompts, params)
    for p, out in zip(prompts, batched):
        assert out.token_ids == llm.generate(p, params)[0].token_ids, p
