"""OpenAI-compatible HTTP server: /v1/completions, /v1/chat/completions (streaming with
server-sent events), /v1/models, /health, /stats (JSON) and /metrics (Prometheus). Needs the
`server` extra (FastAPI, uvicorn, prometheus-client).

    longbow serve --model model.gguf --port 8000
    curl localhost:8000/v1/chat/completions -d '{"messages":[{"role":"user","content":"Hi"}]}'

Every request goes through one AsyncEngine, so concurrent clients share continuous batching.
protocol.py holds the request models, handlers.py the endpoints' logic, app.py the FastAPI
application, metrics.py the Prometheus metrics, settings.py the admission limits.
"""

import importlib

# Imported on first use: `longbow serve --help` and ServerSettings need none of the server extra.
_EXPORTS = {
    "APIError": ".errors",
    "OpenAIServer": ".handlers",
    "ServerSettings": ".settings",
    "create_app": ".app",
    "sampling_params_from": ".handlers",
    "serve": ".app",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'longbow.server' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
