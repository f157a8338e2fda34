"""Structured output (llguidance masks applied in the device sampler): every output parses and
matches its schema / regex / grammar / choices, sampled and greedy, n > 1, batched next to
unconstrained requests that stay unchanged; through the Python API and the server."""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("llguidance")

import longbow  # noqa: E402
from longbow.structured import StructuredOutputs  # noqa: E402

SP = longbow.SamplingParams

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 6},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3},
        "ok": {"type": "boolean"},
    },
    "required": ["name", "age", "ok"],
    "additionalProperties": False,
}


def check_person(text: str) -> None:
    doc = json.loads(text)
    assert set(doc) <= {"name", "age", "tags", "ok"} and {"name", "age", "ok"} <= set(doc)
    assert isinstance(doc["name"], str) and len(doc["name"]) <= 6
    assert isinstance(doc["age"], int) and not isinstance(doc["age"], bool)
    assert 0 <= doc["age"] <= 120
    assert isinstance(doc["ok"], bool)
    assert all(t in ("a", "b") for t in doc.get("tags", [])) and len(doc.get("tags", [])) <= 3


@pytest.fixture(scope="module")
def llm(tiny_gguf_model):
    return longbow.LLM(str(tiny_gguf_model), backend="cpu", max_model_len=256)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_json_schema_outputs_validate(llm, temperature):
    params = SP(
        max_tokens=200,
        temperature=temperature,
        seed=11,
        n=4,
        structured=StructuredOutputs(json=PERSON),
    )
    outs = llm.generate(["Hello", "A person:", "x y z"], params)
    for out in outs:
        for c in out.outputs:
            assert c.finish_reason == "stop", c
            check_person(c.text)


def test_constrained_and_free_requests_share_a_batch(llm):
    free = SP(max_tokens=12, ignore_eos=True)
    alone = llm.generate("Hello world", free)[0]
    outs = llm.generate(
        ["Hello world", "Hello world"],
        [
            free,
            SP(
                max_tokens=200,
                temperature=0.8,
                seed=1,
                structured=StructuredOutputs(json_object=True),
            ),
        ],
    )
    assert outs[0].token_ids == alone.token_ids
    assert isinstance(json.loads(outs[1].text), dict)


@pytest.mark.parametrize(
    "structured,check",
    [
        (
            StructuredOutputs(regex=r"[0-9]{3}-[a-c]{2}"),
            lambda t: re.fullmatch(r"[0-9]{3}-[a-c]{2}", t),
        ),
        (StructuredOutputs(choice=["yes", "no", "maybe"]), lambda t: t in ("yes", "no", "maybe")),
        (
            StructuredOutputs(grammar='start: "(" num ("+" num)* ")"\nnum: /[1-9]/'),
            lambda t: re.fullmatch(r"\([1-9](\+[1-9])*\)", t),
        ),
    ],
)
def test_regex_choice_and_grammar(llm, structured, check):
    params = SP(max_tokens=64, temperature=1.0, seed=5, n=6, structured=structured)
    for c in llm.generate("Answer:", params)[0].outputs:
        assert check(c.text), c.text


def test_stream_of_a_constrained_request(llm):
    params = SP(max_tokens=200, temperature=0.7, seed=2, structured=StructuredOutputs(json=PERSON))
    check_person("".join(llm.stream("Hello", params)))


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"json": {"type": "object", "properties": {"a": {"type": "strin"}}}}, "compile"),
        ({"json": "{not json"}, "not valid JSON"),
        ({"regex": "("}, "compile"),
        ({}, "exactly one"),
        ({"regex": "a", "choice": ["b"]}, "exactly one"),
        ({"choice": []}, "choice"),
    ],
)
def test_bad_constraints_are_value_errors(llm, kw, match):
    with pytest.raises(ValueError, match=match):
        llm.generate("x", SP(max_tokens=4, structured=StructuredOutputs(**kw)))


def test_structured_conflicts_with_ignore_eos_and_min_tokens():
    with pytest.raises(ValueError, match="ignore_eos"):
        SP(ignore_eos=True, structured=StructuredOutputs(json_object=True))
    with pytest.raises(ValueError, match="min_tokens"):
        SP(min_tokens=2, structured=StructuredOutputs(json_object=True))


def test_server_response_format(tiny_gguf_model):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from longbow.server import create_app

    llm = longbow.LLM(str(tiny_gguf_model), backend="cpu", max_model_len=256)
    with TestClient(create_app(llm, model_name="tiny")) as client:
        schema_format = {
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON, "strict": True},
        }
        body = {
            "messages": [{"role": "user", "content": "Who?"}],
            "response_format": schema_format,
            "max_tokens": 200,
            "n": 3,
            "seed": 4,
        }
        r = client.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
        for choice in r.json()["choices"]:
            check_person(choice["message"]["content"])
        events = client.post("/v1/chat/completions", json={**body, "n": 1, "stream": True}).text
        text = "".join(
            json.loads(line[6:])["choices"][0]["delta"].get("content", "")
            for line in events.splitlines()
            if line.startswith("data: {") and json.loads(line[6:])["choices"]
        )
        check_person(text)
        r = client.post(
            "/v1/completions",
            json={"prompt": "x", "structured_outputs": {"choice": ["red", "blue"]}, "seed": 1},
        )
        assert r.json()["choices"][0]["text"] in ("red", "blue")
        r = client.post(
            "/v1/chat/completions",
            json={
                **body,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "nope"}},
                },
            },
        )
        assert r.status_code == 400 and r.json()["error"]["param"] == "response_format", r.text
        r = client.post("/v1/chat/completions", json={**body, "response_format": {"type": "xml"}})
        assert r.status_code == 400 and r.json()["error"]["param"] == "response_format"


@pytest.mark.slow
def test_real_model_json_schemas_all_valid():
    # The default model (SmolLM2-135M) asked for JSON: every finished output validates.
    from real_model import smollm2_gguf

    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 20},
            "population": {"type": "integer", "minimum": 0},
            "capital": {"type": "boolean"},
            "sights": {
                "type": "array",
                "items": {"type": "string", "maxLength": 24},
                "maxItems": 3,
            },
        },
        "required": ["city", "population", "capital"],
        "additionalProperties": False,
    }
    llm = longbow.LLM(str(smollm2_gguf()), max_model_len=1024)
    prompt = llm.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Describe Paris as JSON."}]
    )
    for temperature in (0.0, 0.8):
        params = SP(
            max_tokens=300,
            temperature=temperature,
            seed=3,
            n=4,
            structured=StructuredOutputs(json=schema),
        )
        for c in llm.generate(prompt, params)[0].outputs:
            assert c.finish_reason == "stop", c.text
            doc = json.loads(c.text)
            assert {"city", "population", "capital"} <= set(doc) <= set(schema["properties"])
            assert isinstance(doc["population"], int) and isinstance(doc["capital"], bool)
