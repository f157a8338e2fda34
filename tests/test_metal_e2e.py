"""Whole-model runs on metal-sim (the Metal host code and kernels under the MSL simulator) give
the same greedy tokens as the CPU backend."""

from __future__ import annotations

import os

import pytest

import longbow

core = pytest.importorskip("longbow._core")
if "metal-sim" not in core.available_backends():
    pytest.skip("this build has no metal-sim backend", allow_module_level=True)

# metal-sim always; real Metal too when LONGBOW_TEST_BACKENDS lists it (macOS CI) and it exists.
GPU = ["metal-sim"] + (
    ["metal"]
    if "metal" in os.environ.get("LONGBOW_TEST_BACKENDS", "").split(",")
    and "metal" in core.available_backends()
    else []
)
PROMPTS = [[5, 17, 42, 99, 7, 3, 250, 11], [1, 2, 3], list(range(40, 73))]


def greedy(model, backend, prompts, n, **kw):
    llm = longbow.LLM(str(model), backend=backend, max_model_len=256, **kw)
    outs = llm.generate(prompts, longbow.SamplingParams(max_tokens=n, ignore_eos=True))
    return [o.token_ids for o in outs]


@pytest.mark.parametrize(
    "tiny_gguf_model",
    [
        {"max_position": 256},
        {"weight_dtype": "q4_1", "max_position": 256},
        {"weight_dtype": "q8_0", "max_position": 256},
    ],
    indirect=True,
    ids=["f32", "q4_1", "q8_0"],
)
@pytest.mark.parametrize("kv_dtype", ["f16", "f32"])
@pytest.mark.parametrize("gpu", GPU)
def test_tiny_llama_greedy_tokens_match_cpu(tiny_gguf_model, kv_dtype, gpu):
    want = greedy(tiny_gguf_model, "cpu", PROMPTS, 16, kv_dtype=kv_dtype)
    got = greedy(tiny_gguf_model, gpu, PROMPTS, 16, kv_dtype=kv_dtype)
    assert got == want
    assert all(len(t) == 16 for t in got)


@pytest.mark.parametrize("tiny_gguf_model", [{"max_position": 256}], indirect=True)
@pytest.mark.parametrize("gpu", GPU)
def test_tiny_llama_seeded_sampling_matches_cpu(tiny_gguf_model, gpu):
    params = longbow.SamplingParams(
        max_tokens=12, temperature=0.8, top_k=20, top_p=0.9, seed=1234, ignore_eos=True
    )
    outs = {}
    for backend in ["cpu", gpu]:
        llm = longbow.LLM(str(tiny_gguf_model), backend=backend, max_model_len=256)
        outs[backend] = [o.token_ids for o in llm.generate(PROMPTS[:2], params)]
    assert outs[gpu] == outs["cpu"]


@pytest.mark.parametrize("tiny_gguf_model", [{"max_position": 256}], indirect=True)
@pytest.mark.parametrize("gpu", GPU)
def test_tiny_llama_top_logprobs_match_cpu(tiny_gguf_model, gpu):
    params = [
        longbow.SamplingParams(max_tokens=6, ignore_eos=True, logprobs=k, temperature=t, seed=9)
        for k, t in [(20, 0.0), (4, 0.9)]
    ]
    outs = {}
    for backend in ["cpu", gpu]:
        llm = longbow.LLM(str(tiny_gguf_model), backend=backend, max_model_len=256)
        outs[backend] = llm.generate(PROMPTS[:2], params)
    for got, want in zip(outs[gpu], outs["cpu"], strict=True):
        assert got.token_ids == want.token_ids
        assert [list(d) for d in got.top_logprobs] == [list(d) for d in want.top_logprobs]
        for g, w in zip(got.top_logprobs, want.top_logprobs, strict=True):
            assert list(g.values()) == pytest.approx(
                list(w.values()), abs=2e-3
            )  # f16 KV, other sums


@pytest.mark.slow
@pytest.mark.parametrize("gpu", GPU)
def test_smollm2_first_greedy_tokens_match_cpu(gpu):
    from real_model import smollm2_gguf

    model = smollm2_gguf()
    prompt = [
        [
            1,
            9690,
            198,
            2683,
            359,
            253,
            5356,
            5646,
            11173,
            3365,
            3511,
            308,
            34519,
            28,
            7018,
            411,
            407,
        ]
    ]
    want = greedy(model, "cpu", prompt, 4)
    got = greedy(model, gpu, prompt, 4)
    assert got == want


@pytest.mark.parametrize("tiny_gguf_model", [{"max_position": 256}], indirect=True)
def test_backend_selection(tiny_gguf_model):
    assert "metal-sim" in core.available_backends()
    with pytest.raises(ValueError, match="metal-sim"):  # the error lists what is available
        longbow.LLM(str(tiny_gguf_model), backend="no-such-backend")
    # "auto" never picks the simulator: Metal when it exists, else cpu
    want = greedy(
        tiny_gguf_model, "metal" if "metal" in core.available_backends() else "cpu", PROMPTS[:1], 4
    )
    assert greedy(tiny_gguf_model, "auto", PROMPTS[:1], 4) == want


def test_sim_order_from_environment():
    import subprocess
    import sys

    code = "import longbow._core as c; print(*c.sim_thread_order())"
    env = {**os.environ, "LONGBOW_SIM_ORDER": "random", "LONGBOW_SIM_SEED": "99"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["random", "99"]
    with pytest.raises(ValueError, match="inorder, reverse or random"):
        core.set_sim_thread_order("sideways", 0)


@pytest.mark.parametrize(
    "tiny_gguf_model",
    [
        {"max_position": 256},
        {"weight_dtype": "f16", "max_position": 256},
        {"weight_dtype": "bf16", "max_position": 256},
    ],
    indirect=True,
    ids=["f32", "f16", "bf16"],
)
def test_mpsgraph_mlp_matches_cpu(tiny_gguf_model):
    """Real Metal only (the Mac leg): the MPSGraph MLP path gives the CPU's greedy tokens and
    logits within the half-precision tolerance; metal-sim refuses mlp="vendor" and runs ours
    under auto."""
    import numpy as np

    with pytest.raises(RuntimeError, match=r'\[metal-sim\] mlp="vendor" needs a vendor library'):
        longbow.LLM(str(tiny_gguf_model), backend="metal-sim", mlp="vendor", max_model_len=64)
    sim = longbow.LLM(str(tiny_gguf_model), backend="metal-sim", mlp="auto", max_model_len=64)
    sim.prompt_logits(PROMPTS[0])
    assert sim.mlp_report() == [
        "path: auto; vendor: none: MPSGraph runs only on Apple's Metal "
        "(the simulator runs our kernels)"
    ]
    if "metal" not in GPU:
        pytest.skip("no real Metal device here (LONGBOW_TEST_BACKENDS=metal on a Mac)")
    cpu = longbow.LLM(str(tiny_gguf_model), backend="cpu", mlp="custom", max_model_len=256)
    gpu = longbow.LLM(str(tiny_gguf_model), backend="metal", mlp="vendor", max_model_len=256)
    ref, got = cpu.prompt_logits(PROMPTS[2]), gpu.prompt_logits(PROMPTS[2])
    assert np.abs(got - ref).max() <= 1e-2 * (ref.max() - ref.min())
    assert greedy(tiny_gguf_model, "metal", PROMPTS, 8, mlp="vendor") == greedy(
        tiny_gguf_model, "cpu", PROMPTS, 8
    )
