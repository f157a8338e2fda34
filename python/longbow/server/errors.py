"""Errors the server answers with, as OpenAI's JSON error body and status code."""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    """An error response: {"error": {"message", "type", "param", "code"}} with `status`."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        kind: str = "invalid_request_error",
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.kind = kind
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }


def bad_request(message: str, param: str | None = None) -> APIError:
    return APIError(400, message, param)


# Union branch labels pydantic puts into an error's location ("list[str]", "function-after[...]").
def _is_branch_label(item: Any) -> bool:
    return isinstance(item, str) and not item.isidentifier()


def from_validation_error(exc) -> APIError:
    """A 400 naming the first offending field of a pydantic ValidationError."""
    err = exc.errors(include_url=False)[0]
    path = [p for p in err["loc"] if not _is_branch_label(p) and p not in _TYPE_NAMES]
    where = ".".join(str(p) for p in path)
    param = str(path[0]) if path and isinstance(path[0], str) else None
    if err["type"] == "extra_forbidden":
        return bad_request(
            f"unsupported field '{where}': longbow does not implement it (a field that changes "
            "the output is never ignored)",
            param,
        )
    if err["type"] == "json_invalid":
        return bad_request(f"request body is not valid JSON: {err['msg']}")
    if not path:
        return bad_request(f"request body: {err['msg']}")
    return bad_request(f"{where}: {err['msg']}", param)


_TYPE_NAMES = {"str", "int", "float", "bool", "list", "dict", "none"}
