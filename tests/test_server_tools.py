"""Tool calling on /v1/chat/completions: forced and required calls constrained to the tools'
schemas (every call parses and validates), streaming, "auto" parsing, history with tool calls and
results, and the errors."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("llguidance")
from fastapi.testclient import TestClient  # noqa: E402

import longbow  # noqa: E402
from longbow.server import create_app  # noqa: E402
from longbow.server.protocol import ChatCompletionRequest  # noqa: E402
from longbow.server.tools import ToolPlan  # noqa: E402

CHAT = "/v1/chat/completions"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 8},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "days"],
            "additionalProperties": False,
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"enum": ["UTC", "CET"]}},
            "required": ["zone"],
            "additionalProperties": False,
        },
    },
}
ASK = [{"role": "user", "content": "Weather in Paris?"}]


def check_call(call: dict) -> None:
    assert call["type"] == "function" and call["id"].startswith("call_")
    args = json.loads(call["function"]["arguments"])
    if call["function"]["name"] == "get_weather":
        assert set(args) == {"city", "days"} and len(args["city"]) <= 8
        assert isinstance(args["days"], int) and 1 <= args["days"] <= 7
    else:
        assert call["function"]["name"] == "get_time" and args == {"zone": args["zone"]}
        assert args["zone"] in ("UTC", "CET")


@pytest.fixture(scope="module")
def client(tiny_model_factory):
    # The tools' description is long in the tiny model's tokens.
    model = tiny_model_factory("gguf", max_position=2048)
    llm = longbow.LLM(str(model), backend="cpu", max_model_len=2048)
    with TestClient(create_app(llm, model_name="tiny")) as c:
        yield c


def test_named_tool_choice_gives_a_valid_call(client):
    body = {
        "messages": ASK,
        "tools": [WEATHER, TIME],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "max_tokens": 120,
        "n": 4,
        "seed": 3,
    }
    r = client.post(CHAT, json=body)
    assert r.status_code == 200, r.text
    for choice in r.json()["choices"]:
        assert choice["finish_reason"] == "tool_calls", choice
        message = choice["message"]
        assert message["content"] is None and len(message["tool_calls"]) == 1
        assert message["tool_calls"][0]["function"]["name"] == "get_weather"
        check_call(message["tool_calls"][0])


@pytest.mark.parametrize("parallel", [False, True])
def test_required_tool_choice(client, parallel):
    body = {
        "messages": ASK,
        "tools": [WEATHER, TIME],
        "tool_choice": "required",
        "parallel_tool_calls": parallel,
        "max_tokens": 160,
        "n": 4,
        "seed": 8,
        "temperature": 0.7,
    }
    r = client.post(CHAT, json=body)
    assert r.status_code == 200, r.text
    for choice in r.json()["choices"]:
        if choice["finish_reason"] == "length":
            continue  # an unfinished call (a long list) is returned as text
        calls = choice["message"]["tool_calls"]
        assert calls and (parallel or len(calls) == 1)
        for call in calls:
            check_call(call)


def test_streamed_tool_call(client):
    body = {
        "messages": ASK,
        "tools": [WEATHER],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "max_tokens": 120,
        "stream": True,
        "seed": 1,
    }
    events = [
        json.loads(line[6:])
        for line in client.post(CHAT, json=body).text.splitlines()
        if line.startswith("data: {")
    ]
    deltas = [e["choices"][0] for e in events if e["choices"]]
    assert deltas[-1]["finish_reason"] == "tool_calls"
    calls = [c for d in deltas for c in d["delta"].get("tool_calls", [])]
    assert len(calls) == 1 and calls[0]["index"] == 0
    check_call({k: v for k, v in calls[0].items() if k != "index"})
    assert not any(d["delta"].get("content") for d in deltas)


def test_none_and_history(client):
    history = ASK + [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    body = {"messages": history, "tools": [WEATHER], "tool_choice": "none", "max_tokens": 4}
    r = client.post(CHAT, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["role"] == "assistant"
    assert "tool_calls" not in r.json()["choices"][0]["message"]


@pytest.mark.parametrize(
    "extra,param",
    [
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tool_choice": "always"}, "tool_choice"),
        ({"tools": [], "tool_choice": "required"}, "tool_choice"),
        (
            {"response_format": {"type": "json_object"}, "tool_choice": "required"},
            "response_format",
        ),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools"),
    ],
)
def test_tool_errors(client, extra, param):
    body = {"messages": ASK, "tools": [WEATHER], **extra}
    r = client.post(CHAT, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param, r.json()


def _plan(**kw) -> ToolPlan:
    req = ChatCompletionRequest.model_validate({"messages": ASK, "tools": [WEATHER, TIME], **kw})
    return ToolPlan(req, template="{{ messages }}")


@pytest.mark.parametrize(
    "text,name",
    [
        ('{"name": "get_weather", "arguments": {"city": "Oslo", "days": 2}}', "get_weather"),
        (
            '<tool_call>\n{"name": "get_time", "arguments": {"zone": "UTC"}}\n</tool_call>',
            "get_time",
        ),
        ('```json\n{"name": "get_time", "arguments": {"zone": "CET"}}\n```', "get_time"),
        ("It is sunny in Paris.", None),
        ('{"name": "unknown", "arguments": {}}', None),
        ('{"name": "get_time", "arguments": "zone"}', None),
    ],
)
def test_auto_parses_calls_of_known_tools_only(text, name):
    calls = _plan().calls(text)
    assert (calls[0]["function"]["name"] if calls else None) == name


def test_tools_described_when_the_template_has_none():
    messages = _plan().messages([{"role": "user", "content": "hi"}])
    assert messages[0]["role"] == "system" and "get_weather" in messages[0]["content"]
    assert _plan(tool_choice="none").messages([{"role": "user", "content": "hi"}])[0]["role"] == (
        "user"
    )
