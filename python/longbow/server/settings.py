"""How the server admits and bounds work (the `longbow serve` flags of the same names)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(kw_only=True)
class ServerSettings:
    model_name: str | None = None  # id reported by /v1/models (default: the file's stem)
    # Requests allowed to wait beyond those the engine runs at once (max_num_seqs); more get a
    # 429 with Retry-After.
    max_queue: int = 128
    # Largest request body; bigger ones get a 413 before they are read.
    max_request_bytes: int = 16 << 20
    # Seconds SIGTERM waits for running requests before aborting them.
    shutdown_timeout: float = 30.0
    # Default output length when a request gives none.
    default_max_tokens: int = 256

    def __post_init__(self) -> None:
        if self.max_queue < 0:
            raise ValueError(f"[server] max_queue must be >= 0, got {self.max_queue}")
        if self.max_request_bytes < 1024:
            raise ValueError(
                f"[server] max_request_bytes must be >= 1024, got {self.max_request_bytes}"
            )
        if self.shutdown_timeout < 0:
            raise ValueError(f"[server] shutdown_timeout must be >= 0, got {self.shutdown_timeout}")
        if self.default_max_tokens < 1:
            raise ValueError(
                f"[server] default_max_tokens must be >= 1, got {self.default_max_tokens}"
            )
