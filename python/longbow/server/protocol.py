"""The OpenAI request bodies the server accepts, as pydantic models (FastAPI's own).

Strict and closed: a field of the wrong type, or a field longbow does not know, is a 400 that
names it (a field that would change the output must never be ignored). `null` means "the
default", as in OpenAI's API. Every SamplingParams field is also a request field of the same
name (vLLM-style extensions such as top_k, min_p, ignore_eos): the models below are built from
the dataclass, so a new sampling knob reaches the server without a change here.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from ..sampling import SamplingParams

MAX_N = 16  # samples per request

_STRICT = ConfigDict(strict=True, extra="forbid")

# Accepted and without effect on the output (OpenAI bookkeeping).
_HARMLESS: dict[str, Any] = {
    "user": (str | None, None),
    "metadata": (dict[str, str] | None, None),
    "store": (bool | None, None),
    "service_tier": (str | None, None),
}

# SamplingParams fields the request models type differently from the dataclass: OpenAI allows
# one stop string; `logprobs` differs between the two endpoints (declared by each model).
_OVERRIDES: dict[str, Any] = {"stop": str | list[str] | None}
# Declared by each endpoint (logprobs) or mapped from response_format / structured_outputs.
_NOT_REQUEST_FIELDS = {"logprobs", "structured"}


def _sampling_fields() -> dict[str, Any]:
    hints = typing.get_type_hints(SamplingParams)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(SamplingParams):
        if f.name in _NOT_REQUEST_FIELDS:
            continue
        kind = _OVERRIDES.get(f.name, hints[f.name] | None)
        fields[f.name] = (kind, None)
    return fields


class StreamOptions(BaseModel):
    model_config = _STRICT
    include_usage: bool | None = None


class JsonSchemaFormat(BaseModel):
    model_config = _STRICT
    name: str
    description: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    """OpenAI's response_format: text, any JSON object, or JSON matching a schema."""

    model_config = _STRICT
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StructuredOutputsRequest(BaseModel):
    """Extension (vLLM's name): exactly one of a JSON schema, any JSON object, a regex, a Lark
    grammar (llguidance's dialect) or a list of choices."""

    model_config = _STRICT
    json_: dict[str, Any] | str | None = Field(None, alias="json")
    json_object: bool | None = None
    regex: str | None = None
    grammar: str | None = None
    choice: list[str] | None = None


_Common = create_model(
    "_Common",
    __config__=_STRICT,
    model=(str | None, None),
    response_format=(ResponseFormat | None, None),
    structured_outputs=(StructuredOutputsRequest | None, None),
    stream=(bool | None, None),
    stream_options=(StreamOptions | None, None),
    max_completion_tokens=(int | None, None),
    **_HARMLESS,
    **_sampling_fields(),
)


class TextPart(BaseModel):
    """One part of a list-of-parts message content (only text parts are supported)."""

    model_config = _STRICT
    type: Literal["text"]
    text: str


class FunctionCall(BaseModel):
    model_config = _STRICT
    name: str
    arguments: str  # JSON text, as OpenAI sends it


class ToolCall(BaseModel):
    model_config = _STRICT
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(BaseModel):
    model_config = _STRICT
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    def for_template(self) -> dict[str, Any]:
        """The message as chat templates see it (transformers' convention): text parts joined
        by newlines; tool calls with their arguments parsed."""
        out: dict[str, Any] = {"role": self.role}
        if isinstance(self.content, list):
            out["content"] = "\n".join(p.text for p in self.content)
        else:
            out["content"] = self.content if self.content is not None else ""
        if self.name is not None:
            out["name"] = self.name
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.tool_calls:
            out["tool_calls"] = [c.model_dump() for c in self.tool_calls]
        return out

    def text_length(self) -> int:
        if isinstance(self.content, list):
            return sum(len(p.text) for p in self.content)
        return len(self.content or "")


class FunctionDef(BaseModel):
    model_config = _STRICT
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None  # a JSON schema of the arguments object
    strict: bool | None = None


class Tool(BaseModel):
    model_config = _STRICT
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(BaseModel):
    model_config = _STRICT
    name: str


class NamedToolChoice(BaseModel):
    model_config = _STRICT
    type: Literal["function"]
    function: NamedFunction


class CompletionRequest(_Common):
    """POST /v1/completions."""

    prompt: str | list[int] | list[str] | list[list[int]]
    echo: bool | None = None
    # The chosen token's logprob and the k most likely (0..20); `true` = the chosen one only.
    logprobs: bool | int | None = None


class ChatCompletionRequest(_Common):
    """POST /v1/chat/completions."""

    messages: list[Message] = Field(min_length=1)
    logprobs: bool | None = None
    top_logprobs: int | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    # Several calls in one reply (a JSON list) are allowed unless this is false.
    parallel_tool_calls: bool | None = None
