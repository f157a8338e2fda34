"""Tool calling for /v1/chat/completions: tools reach the model through its chat template (or,
when the template knows no tools, a system message describing them), a call is the JSON object
{"name": ..., "arguments": {...}} (a list of them for parallel calls), and tool_choice
"required" or a named function constrains the output to exactly that JSON through the
structured-output mask. With "auto" the model chooses: a reply that parses as calls to known
tools becomes `tool_calls`, anything else stays text."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from ..structured import StructuredOutputs
from .errors import bad_request
from .protocol import ChatCompletionRequest

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)
_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.S)


class ToolPlan:
    """What a request's tools and tool_choice mean for its prompt, constraint and reply."""

    def __init__(self, req: ChatCompletionRequest, template: str | None) -> None:
        self.tools = req.tools or []
        choice = req.tool_choice
        if choice is None:
            choice = "auto" if self.tools else "none"
        if choice != "none" and not self.tools:
            raise bad_request("tool_choice needs tools", "tool_choice")
        self.forced: str | None = None  # the one function tool_choice names
        if not isinstance(choice, str):
            names = [t.function.name for t in self.tools]
            if choice.function.name not in names:
                raise bad_request(
                    f"tool_choice names {choice.function.name!r}, not among the tools {names}",
                    "tool_choice",
                )
            self.forced = choice.function.name
            choice = "required"
        self.choice = choice
        self.parallel = req.parallel_tool_calls is not False and self.forced is None
        self.template_knows_tools = template is not None and "tools" in template
        if self.active and req.response_format is not None and req.response_format.type != "text":
            raise bad_request("tools with response_format: give one of them", "response_format")

    @property
    def active(self) -> bool:
        return self.choice != "none"

    @property
    def constrained(self) -> bool:
        return self.choice == "required"

    # ---- prompt ------------------------------------------------------------------------------

    def template_tools(self) -> list[dict] | None:
        """The `tools` argument of the chat template (templates that know tools)."""
        if not self.active or not self.template_knows_tools:
            return None
        return [t.model_dump(exclude_none=True) for t in self.tools]

    def messages(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The template's messages: past tool calls as the template expects them (arguments
        parsed) or, for a template without tools, as the JSON text the model writes; the tools'
        description in the system message when the template cannot show them."""
        out = []
        for m in messages:
            m = dict(m)
            calls = m.pop("tool_calls", None)
            if calls:
                if self.template_knows_tools:
                    m["tool_calls"] = [_template_call(c) for c in calls]
                else:
                    text = [
                        {"name": c["function"]["name"], "arguments": _arguments(c)} for c in calls
                    ]
                    m["content"] = json.dumps(text[0] if len(text) == 1 else text)
            out.append(m)
        if self.active and not self.template_knows_tools:
            described = self._description()
            if out and out[0]["role"] in ("system", "developer"):
                out[0] = {**out[0], "content": f"{out[0]['content']}\n\n{described}"}
            else:
                out.insert(0, {"role": "system", "content": described})
        return out

    def _description(self) -> str:
        lines = [
            json.dumps(
                {
                    "name": t.function.name,
                    "description": t.function.description or "",
                    "parameters": t.function.parameters or {"type": "object"},
                }
            )
            for t in self.tools
        ]
        ask = (
            f"You must call the function {self.forced}."
            if self.forced
            else "You must call one of them."
            if self.constrained
            else "Call one when it helps; otherwise answer normally."
        )
        return (
            "You can call these functions:\n"
            + "\n".join(lines)
            + f"\n{ask} To call a function, reply with only a JSON object "
            '{"name": <function name>, "arguments": <arguments object>}.'
        )

    # ---- constraint --------------------------------------------------------------------------

    def constraint(self) -> StructuredOutputs | None:
        """tool_choice "required" / a named function: the reply must be a call (or, with
        parallel calls, a list of them) whose arguments match the tool's parameters."""
        if not self.constrained:
            return None
        tools = [t for t in self.tools if self.forced in (None, t.function.name)]
        calls = [
            {
                "type": "object",
                "properties": {
                    "name": {"const": t.function.name},
                    "arguments": t.function.parameters or {"type": "object"},
                },
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
            for t in tools
        ]
        one = calls[0] if len(calls) == 1 else {"anyOf": calls}
        schema = (
            {"anyOf": [one, {"type": "array", "items": one, "minItems": 1}]}
            if (self.parallel)
            else one
        )
        return StructuredOutputs(json=schema)

    # ---- reply -------------------------------------------------------------------------------

    def calls(self, text: str) -> list[dict] | None:
        """OpenAI `tool_calls` when `text` is one or more calls of known tools, else None."""
        if not self.active:
            return None
        body = text.strip()
        tagged = _TAGGED.findall(body)
        candidates = tagged if tagged else [body]
        parsed: list = []
        for c in candidates:
            fenced = _FENCE.match(c)
            try:
                value = json.loads(fenced.group(1) if fenced else c)
            except json.JSONDecodeError:
                return None
            parsed.extend(value if isinstance(value, list) else [value])
        names = {t.function.name for t in self.tools}
        out = []
        for call in parsed:
            if not isinstance(call, dict) or call.get("name") not in names:
                return None
            arguments = call.get("arguments", call.get("parameters", {}))
            if not isinstance(arguments, dict):
                return None
            out.append(
                {
                    "id": f"call_{uuid.uuid4().hex[:24]}",
                    "type": "function",
                    "function": {"name": call["name"], "arguments": json.dumps(arguments)},
                }
            )
        if not out:
            return None
        return out if self.parallel else out[:1]

    def may_be_call(self, text_so_far: str) -> bool:
        """Streaming with tool_choice auto: whether the reply may still turn out to be a call
        (then it is held back until it ends)."""
        head = text_so_far.lstrip()
        if not head:
            return True
        return any(
            head.startswith(p) or p.startswith(head) for p in ("{", "[", "<tool_call>", "```")
        )


def _arguments(call: dict) -> Any:
    raw = call["function"]["arguments"]
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _template_call(call: dict) -> dict:
    return {
        "id": call.get("id"),
        "type": "function",
        "function": {"name": call["function"]["name"], "arguments": _arguments(call)},
    }
