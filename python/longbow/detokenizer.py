"""Streaming text out of token ids, and stop strings.

IncrementalDetokenizer decodes a short sliding window of ids (vLLM's prefix/read offsets):
text is emitted only once it no longer ends in U+FFFD (half a UTF-8 character, e.g. split
byte-fallback or byte-level tokens), and the window keeps leading-space conventions (a
SentencePiece "▁" at the start of a decode is stripped) consistent with a full decode.
"""

from __future__ import annotations

from typing import Iterable, Sequence

_REPLACEMENT = "\ufffd"
# How many prompt tokens seed the window, so the first generated token decodes in context.
_PROMPT_CONTEXT_TOKENS = 5


class IncrementalDetokenizer:
    """Push token ids one at a time; get back only newly completed text."""

    def __init__(
        self, tokenizer, prompt_ids: Sequence[int] = (), skip_special_tokens: bool = True
    ) -> None:
        self._tokenizer = tokenizer
        self._skip_special = skip_special_tokens
        self._ids: list[int] = [int(i) for i in prompt_ids]  # (num_prompt + num_generated,)
        self._num_prompt = len(self._ids)
        # Window: ids[prefix_offset:read_offset] is already emitted context.
        self._read_offset = len(self._ids)
        self._prefix_offset = max(len(self._ids) - _PROMPT_CONTEXT_TOKENS, 0)

    @property
    def token_ids(self) -> list[int]:
        """Generated ids pushed so far (prompt excluded)."""
        return self._ids[self._num_prompt :]

    def _decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=self._skip_special)

    def push(self, token_id: int) -> str:
        """Add one token; return the text it completes ('' while a character is unfinished)."""
        self._ids.append(int(token_id))
        prefix_text = self._decode(self._ids[self._prefix_offset : self._read_offset])
        new_text = self._decode(self._ids[self._prefix_offset :])
        if len(new_text) <= len(prefix_text) or new_text.endswith(_REPLACEMENT):
            return ""
        delta = new_text[len(prefix_text) :]
        self._prefix_offset = self._read_offset
        self._read_offset = len(self._ids)
        return delta

    def push_many(self, token_ids: Iterable[int]) -> str:
        """push() each id; return the concatenated text."""
        return "".join(self.push(t) for t in token_ids)

    def flush(self) -> str:
        """At the end of generation: return held text, incomplete characters as U+FFFD."""
        prefix_text = self._decode(self._ids[self._prefix_offset : self._read_offset])
        new_text = self._decode(self._ids[self._prefix_offset :])
        self._prefix_offset = self._read_offset
        self._read_offset = len(self._ids)
        if len(new_text) <= len(prefix_text):
            return ""
        return new_text[len(prefix_text) :]


class StopChecker:
    """Find stop strings in streamed text, holding back text that may start one.

    `push(text)` returns `(emit, stopped)`: `emit` is safe to show; once a stop string is
    complete (the first to complete wins), `emit` holds the text before it (the stop string itself is dropped) and
    `stopped` is True. Call `flush()` at the end to get held-back text.
    """

    def __init__(self, stop_strings: Iterable[str] = ()) -> None:
        stops = list(stop_strings or ())
        for s in stops:
            if not isinstance(s, str) or not s:
                raise ValueError(f"[stop] expected non-empty stop strings, found {s!r}")
        self.stop_strings: list[str] = stops
        self._held = ""
        self.stopped = False
        self.matched: str | None = None

    def _held_suffix_len(self, text: str) -> int:
        """Length of the longest suffix of `text` that is a proper prefix of a stop string."""
        best = 0
        for stop in self.stop_strings:
            for n in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:n]):
                    best = n
                    break
        return best

    def push(self, text: str) -> tuple[str, bool]:
        if self.stopped:
            return "", True
        if not self.stop_strings:
            return text, False
        buf = self._held + text
        # The stop string that completes first in the stream wins (ties: the longer one), so
        # the result does not depend on how the text was chunked.
        first_idx, first_stop, first_key = -1, None, None
        for stop in self.stop_strings:
            idx = buf.find(stop)
            key = (idx + len(stop), -len(stop))
            if idx != -1 and (first_key is None or key < first_key):
                first_idx, first_stop, first_key = idx, stop, key
        if first_stop is not None:
            self.stopped = True
            self.matched = first_stop
            self._held = ""
            return buf[:first_idx], True
        keep = self._held_suffix_len(buf)
        self._held = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep], False

    def flush(self) -> str:
        """Return (and clear) text held back because it could have started a stop string."""
        if self.stopped:
            return ""
        out, self._held = self._held, ""
        return out
