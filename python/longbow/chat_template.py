"""Chat templates: jinja2 rendering with the same environment transformers uses."""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any

# Used only when the caller asks for a fallback (model without a template).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_VALID_ROLES_HINT = "system, user, assistant, tool"


class TemplateError(ValueError):
    """Raised by a template's own `raise_exception(...)` call."""


def _raise_exception(message: str) -> None:
    raise TemplateError(f"[chat_template] template raised: {message}")


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators=None,
    sort_keys: bool = False,
) -> str:
    # Unlike jinja2's built-in tojson, no HTML escaping (matches transformers).
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


@lru_cache(maxsize=16)
def _compile(template: str):
    try:
        from jinja2 import TemplateSyntaxError
        from jinja2.ext import loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError as exc:  # pragma: no cover - jinja2 is a hard dependency
        raise RuntimeError("[chat_template] jinja2 is required: pip install jinja2") from exc
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    try:
        return env.from_string(template)
    except TemplateSyntaxError as exc:
        raise ValueError(
            f"[chat_template] expected a valid jinja2 template, found a syntax error at line "
            f"{exc.lineno}: {exc.message}"
        ) from exc


def validate_messages(messages: Any) -> list[dict[str, Any]]:
    """Check `messages` is a list of {role: str, content: str|list|None} dicts."""
    if not isinstance(messages, (list, tuple)):
        raise ValueError(
            f"[chat_template] expected messages as a list of dicts, found {type(messages).__name__}"
        )
    for idx, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise ValueError(
                f"[chat_template] message {idx}: expected a dict with 'role' and 'content', "
                f"found {type(msg).__name__}"
            )
        role = msg.get("role")
        if not isinstance(role, str) or not role:
            raise ValueError(
                f"[chat_template] message {idx}: expected 'role' as a non-empty string "
                f"({_VALID_ROLES_HINT}), found {role!r}"
            )
        if "content" not in msg and not msg.get("tool_calls"):
            raise ValueError(f"[chat_template] message {idx}: expected a 'content' key, found none")
        content = msg.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise ValueError(
                f"[chat_template] message {idx}: expected 'content' as str or list, "
                f"found {type(content).__name__}"
            )
    return list(messages)


def render_chat_template(
    template: str,
    messages: list[dict[str, Any]],
    *,
    add_generation_prompt: bool = True,
    tools: list[dict[str, Any]] | None = None,
    bos_token: str = "",
    eos_token: str = "",
    **kwargs: Any,
) -> str:
    """Render `messages` with `template` the way transformers' apply_chat_template does."""
    if not isinstance(template, str) or not template:
        raise ValueError(f"[chat_template] expected a template string, found {template!r}")
    messages = validate_messages(messages)
    compiled = _compile(template)
    try:
        return compiled.render(
            messages=messages,
            tools=tools,
            add_generation_prompt=add_generation_prompt,
            bos_token=bos_token,
            eos_token=eos_token,
            **kwargs,
        )
    except TemplateError:
        raise
    except Exception as exc:  # jinja2 runtime errors (undefined, security, type errors)
        raise ValueError(
            f"[chat_template] rendering failed: expected the template to render these "
            f"messages, found {type(exc).__name__}: {exc}"
        ) from exc
