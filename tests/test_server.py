"""The OpenAI-compatible server on a tiny model: completions, chat, streaming (SSE), n > 1,
errors in OpenAI's format, and a real uvicorn process on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

import longbow  # noqa: E402
from longbow.server import create_app  # noqa: E402

GREEDY = {"max_tokens": 12, "temperature": 0, "ignore_eos": True}


@pytest.fixture(scope="module")
def llm(tiny_gguf_model):
    return longbow.LLM(str(tiny_gguf_model), backend="cpu", max_model_len=256)


@pytest.fixture(scope="module")
def reference(tiny_gguf_model):
    """A second engine on the same file for expected outputs: the served one is stepped by the
    server's thread, so calling its generate() from the test would race with it."""
    return longbow.LLM(str(tiny_gguf_model), backend="cpu", max_model_len=256)


@pytest.fixture(scope="module")
def client(llm):
    with TestClient(create_app(llm, model_name="tiny")) as c:
        yield c


def _sse_events(text: str) -> list:
    events = [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def test_models_and_health(client):
    assert client.get("/health").json() == {"status": "ok"}
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["tiny"]


def test_completion_matches_llm(client, reference):
    r = client.post("/v1/completions", json={"model": "tiny", "prompt": "Hello world", **GREEDY})
    assert r.status_code == 200, r.text
    body = r.json()
    want = reference.generate(
        "Hello world", longbow.SamplingParams(max_tokens=12, ignore_eos=True)
    )[0]
    assert body["choices"][0]["text"] == want.text
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {
        "prompt_tokens": len(want.prompt_token_ids),
        "completion_tokens": 12,
        "total_tokens": len(want.prompt_token_ids) + 12,
    }


def test_chat_and_streaming_agree(client):
    req = {"messages": [{"role": "user", "content": "Say something"}], **GREEDY}
    full = client.post("/v1/chat/completions", json=req).json()
    text = full["choices"][0]["message"]["content"]
    r = client.post(
        "/v1/chat/completions",
        json={**req, "stream": True, "stream_options": {"include_usage": True}},
    )
    assert r.headers["content-type"].startswith("text/event-stream")
    events = _sse_events(r.text)
    assert events[0]["choices"][0]["delta"].get("role") == "assistant"
    streamed = "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
    assert streamed == text
    assert events[-1]["usage"]["completion_tokens"] == 12
    assert [e for e in events if e["choices"]][-1]["choices"][0]["finish_reason"] == "length"


def test_completion_top_logprobs(client, reference):
    r = client.post("/v1/completions", json={"prompt": "Hello world", "logprobs": 3, **GREEDY})
    assert r.status_code == 200, r.text
    lp = r.json()["choices"][0]["logprobs"]
    want = reference.generate(
        "Hello world", longbow.SamplingParams(max_tokens=12, ignore_eos=True, logprobs=3)
    )[0]
    text = [
        reference.tokenizer.token_bytes(t).decode("utf-8", errors="replace") for t in want.token_ids
    ]
    assert lp["tokens"] == text
    assert lp["token_logprobs"] == pytest.approx(want.logprobs, abs=1e-6)
    assert lp["text_offset"] == [sum(len(t) for t in text[:i]) for i in range(len(text))]
    for entry, top, tok in zip(lp["top_logprobs"], want.top_logprobs, text, strict=True):
        # OpenAI: the k most likely and the chosen token (greedy: among them).
        pieces = {
            reference.tokenizer.token_bytes(i).decode("utf-8", errors="replace"): v
            for i, v in top.items()
        }
        assert entry == pytest.approx(pieces) and tok in entry
    stream = _sse_events(
        client.post(
            "/v1/completions",
            json={"prompt": "Hello world", "logprobs": 3, "stream": True, **GREEDY},
        ).text
    )
    chunks = [e["choices"][0]["logprobs"] for e in stream]
    for key in ["tokens", "top_logprobs", "text_offset"]:
        assert [x for c in chunks for x in c[key]] == lp[key]
    plain = client.post(
        "/v1/completions", json={"prompt": "Hello world", "logprobs": True, **GREEDY}
    ).json()
    assert plain["choices"][0]["logprobs"]["top_logprobs"] is None
    assert plain["choices"][0]["logprobs"]["token_logprobs"] == lp["token_logprobs"]
    assert (
        client.post("/v1/completions", json={"prompt": "x", **GREEDY}).json()["choices"][0][
            "logprobs"
        ]
        is None
    )


def test_chat_top_logprobs(client, llm):
    req = {
        "messages": [{"role": "user", "content": "Say something"}],
        "logprobs": True,
        "top_logprobs": 2,
        **GREEDY,
    }
    r = client.post("/v1/chat/completions", json=req)
    assert r.status_code == 200, r.text
    content = r.json()["choices"][0]["logprobs"]["content"]
    assert len(content) == 12
    for item in content:
        assert set(item) == {"token", "logprob", "bytes", "top_logprobs"}
        assert bytes(item["bytes"]).decode("utf-8", errors="replace") == item["token"]
        assert len(item["top_logprobs"]) == 2
        first = item["top_logprobs"][0]
        assert first["token"] == item["token"] and first["logprob"] == pytest.approx(
            item["logprob"]
        )  # greedy
        assert item["top_logprobs"][0]["logprob"] >= item["top_logprobs"][1]["logprob"]
    stream = _sse_events(client.post("/v1/chat/completions", json={**req, "stream": True}).text)
    streamed = [
        item
        for e in stream
        if e["choices"] and "logprobs" in e["choices"][0]
        for item in e["choices"][0]["logprobs"]["content"]
    ]
    assert streamed == content
    only = client.post("/v1/chat/completions", json={**req, "top_logprobs": None}).json()
    assert [c["top_logprobs"] for c in only["choices"][0]["logprobs"]["content"]] == [[]] * 12


@pytest.mark.parametrize(
    "chat,extra,param",
    [
        (False, {"logprobs": 21}, "logprobs"),
        (False, {"logprobs": -1}, "logprobs"),
        (False, {"logprobs": "5"}, "logprobs"),
        (True, {"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        (True, {"logprobs": True, "top_logprobs": 1.5}, "top_logprobs"),
        (True, {"top_logprobs": 3}, "top_logprobs"),  # needs logprobs: true
        (True, {"logprobs": 2}, "logprobs"),
    ],
)
def test_bad_logprobs_requests(client, chat, extra, param):
    body = {"messages": [{"role": "user", "content": "x"}]} if chat else {"prompt": "x"}
    r = client.post("/v1/chat/completions" if chat else "/v1/completions", json={**body, **extra})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == param and err["message"].startswith(param)


def test_streaming_completion_with_stop(client):
    base = client.post("/v1/completions", json={"prompt": "Hello world", **GREEDY}).json()[
        "choices"
    ][0]["text"]
    stop = base[3:5]
    r = client.post(
        "/v1/completions", json={"prompt": "Hello world", "stream": True, "stop": stop, **GREEDY}
    )
    events = _sse_events(r.text)
    assert "".join(e["choices"][0]["text"] for e in events) == base[: base.index(stop)]
    assert events[-1]["choices"][0]["finish_reason"] == "stop"


def test_n_samples_and_seed(client):
    req = {
        "prompt": "Hello",
        "max_tokens": 8,
        "temperature": 1.0,
        "seed": 3,
        "n": 3,
        "ignore_eos": True,
    }
    a = client.post("/v1/completions", json=req).json()
    b = client.post("/v1/completions", json=req).json()
    assert len(a["choices"]) == 3
    assert [c["text"] for c in a["choices"]] == [c["text"] for c in b["choices"]]


@pytest.mark.parametrize(
    "body,param",
    [
        ({"prompt": "x", "temperature": -1}, "temperature"),
        ({"prompt": "x", "ignore_eos": "yes"}, "ignore_eos"),
        ({"prompt": "x", "frequency_penalty": "a"}, "frequency_penalty"),
        ({"prompt": "x", "top_p": 0}, "top_p"),
        ({"prompt": "x", "stop": [""]}, "stop"),
        ({"prompt": "x", "n": 0}, "n"),
        ({"prompt": "x", "bogus": 1}, "bogus"),
        ({"prompt": 5}, "prompt"),
    ],
)
def test_bad_requests_get_openai_errors(client, body, param):
    r = client.post("/v1/completions", json=body)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["message"]
    if param:
        assert err["param"] == param


def test_every_sampling_field_is_a_request_field(client):
    # SamplingParams fields reach the server by name (skip_special_tokens, min_tokens, ...).
    body = {"prompt": "x", "max_tokens": 3, "min_tokens": 3, "skip_special_tokens": False}
    r = client.post("/v1/completions", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] == 3


def test_chat_without_messages_and_bad_json(client):
    assert client.post("/v1/chat/completions", json={"messages": []}).status_code == 400
    r = client.post(
        "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]


def test_unknown_model_is_404(client):
    r = client.post("/v1/completions", json={"prompt": "x", "model": "other"})
    assert r.status_code == 404
    assert r.json()["error"]["param"] == "model" and r.json()["error"]["code"] == "model_not_found"
    assert client.get("/v1/models/tiny").json()["id"] == "tiny"
    assert client.get("/v1/models/other").status_code == 404


def test_stats_and_prometheus_metrics_after_requests(client):
    m = client.get("/stats").json()
    assert m["num_running"] == 0 and m["num_blocks_used"] >= 0 and m["requests_in_flight"] == 0
    r = client.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    for name in [
        "longbow_requests_running",
        "longbow_kv_cache_usage_ratio",
        "longbow_preemptions_total",
        "longbow_time_to_first_token_seconds_bucket",
        "longbow_inter_token_latency_seconds_count",
        'longbow_requests_total{endpoint="completions",status="200"}',
    ]:
        assert name in text, name
    generated = [
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("longbow_generation_tokens_total")
    ]
    assert generated and generated[0] > 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_longbow_serve_process(tiny_gguf_model):
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "longbow",
            "serve",
            "--model",
            str(tiny_gguf_model),
            "--backend",
            "cpu",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--max-num-seqs",
            "4",
            "--max-num-batched-tokens",
            "64",
            "--max-model-len",
            "128",
            "--kv-cache-gb",
            "0.01",
            "--max-queue",
            "2",
            "--shutdown-timeout",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    assert json.load(r) == {"status": "ok"}
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.time() < deadline, "server did not start within 60 s"
                time.sleep(0.3)
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/completions",
            data=json.dumps({"prompt": "Hi", **GREEDY}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            assert json.load(r)["usage"]["completion_tokens"] == 12
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=10) as r:
            assert json.load(r)["data"][0]["max_model_len"] == 128
        proc.terminate()  # SIGTERM: drains (none running here) and exits cleanly
        proc.wait(timeout=30)  # uvicorn re-raises the signal once shut down: status -15
        log = proc.stdout.read().decode()
        assert "4 sequences" in log and "context 128" in log, log
        assert "Application shutdown complete" in log, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
