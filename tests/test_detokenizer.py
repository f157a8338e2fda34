"""Incremental detokenization and stop strings."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from longbow.detokenizer import IncrementalDetokenizer, StopChecker
from longbow.tokenizer import Tokenizer
from tok_helpers import train_tiny_bpe

_TOK = Tokenizer(train_tiny_bpe())
_N = _TOK.vocab_size


def _stream(tok, ids, prompt=()):
    det = IncrementalDetokenizer(tok, prompt)
    parts = [det.push(i) for i in ids]
    return parts, det.flush()


def test_multibyte_character_split_over_tokens():
    # Byte-level tokens of single bytes: '中' is 3 bytes -> nothing until the third.
    text = "a中b"
    from longbow.tokenizer import bytes_to_unicode

    table = bytes_to_unicode()
    byte_ids = [_TOK.piece_to_id(table[b]) for b in text.encode("utf-8")]
    assert None not in byte_ids
    parts, tail = _stream(_TOK, byte_ids)
    assert parts == ["a", "", "", "中", "b"]
    assert tail == ""


def test_flush_emits_incomplete_tail():
    from longbow.tokenizer import bytes_to_unicode

    table = bytes_to_unicode()
    ids = [_TOK.piece_to_id(table[b]) for b in "x中".encode("utf-8")[:-1]]
    parts, tail = _stream(_TOK, ids)
    assert "".join(parts) == "x"
    assert tail == "\ufffd"


def test_prompt_context_and_special_tokens():
    prompt = _TOK.encode("<|im_start|>user\nHello there")
    gen = _TOK.encode(" world, café!<|im_end|>")
    det = IncrementalDetokenizer(_TOK, prompt)
    out = "".join(det.push(i) for i in gen) + det.flush()
    assert out == " world, café!"
    assert det.token_ids == gen


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=_N - 1), max_size=40))
def test_concat_of_pushes_equals_full_decode(ids):
    parts, tail = _stream(_TOK, ids)
    assert "".join(parts) + tail == _TOK.decode(ids)
    # No emitted piece ends in half a character.
    assert all(not p.endswith("\ufffd") for p in parts)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60), st.text(max_size=60))
def test_text_roundtrip_with_prompt(prompt_text, gen_text):
    prompt = _TOK.encode(prompt_text + " ")
    gen = _TOK.encode(gen_text, add_special_tokens=False)
    parts, tail = _stream(_TOK, gen, prompt)
    full = _TOK.decode(prompt + gen)
    assert "".join(parts) + tail == full[len(_TOK.decode(prompt)) :]


def test_sentencepiece_leading_space():
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    tokens = ["<unk>", "<s>", "</s>"] + byte_tokens + ["▁", "h", "i", "hi", "▁hi"]
    meta = {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": [0.0] * 259 + [-1.0, -2.0, -2.0, -2.5, -3.0],
        "tokenizer.ggml.token_type": [2, 3, 3] + [6] * 256 + [1] * 5,
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
    }
    tok = Tokenizer.from_gguf_metadata(meta)
    ids = tok.encode("hi hi é")
    assert [tok.id_to_piece(i) for i in ids[:3]] == ["<s>", "▁hi", "▁hi"]
    parts, tail = _stream(tok, ids[1:], ids[:1])
    assert "".join(parts) + tail == "hi hi é"
    parts, tail = _stream(tok, ids[2:], ids[:2])
    assert "".join(parts) + tail == " hi é"


def _run_stop(stops, chunks):
    sc = StopChecker(stops)
    out = []
    for c in chunks:
        text, stopped = sc.push(c)
        out.append(text)
        if stopped:
            return "".join(out), True, sc
    return "".join(out) + sc.flush(), False, sc


def test_stop_string_across_chunks():
    text, stopped, sc = _run_stop(["</end>"], ["Hello </", "en", "d> tail"])
    assert (text, stopped, sc.matched) == ("Hello ", True, "</end>")


def test_held_text_is_released_when_not_a_stop():
    sc = StopChecker(["STOP"])
    assert sc.push("abc ST") == ("abc ", False)
    assert sc.push("ART") == ("START", False)
    assert sc.push("ST") == ("", False)
    assert sc.flush() == "ST"


def test_first_completed_stop_wins_and_after_stop_nothing():
    text, stopped, sc = _run_stop(["bb", "a"], ["xxbba"])
    assert (text, sc.matched) == ("xx", "bb")
    text, stopped, sc = _run_stop(["b", "abb"], ["aabb"])
    assert (text, sc.matched) == ("aa", "b")
    assert sc.push("more") == ("", True)


def test_bad_stop_strings():
    with pytest.raises(ValueError, match=r"\[stop\]"):
        StopChecker([""])


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="abc", max_size=30),
    st.lists(st.text(alphabet="abc", min_size=1, max_size=4), max_size=3),
    st.lists(st.integers(min_value=1, max_value=5), max_size=10),
)
def test_stop_property(text, stops, cuts):
    chunks, pos = [], 0
    for c in cuts:
        chunks.append(text[pos : pos + c])
        pos += c
    chunks.append(text[pos:])
    out, stopped, _ = _run_stop(stops, chunks)
    # Oracle: the stop string whose first occurrence ends earliest (ties: longest) wins.
    hits = [(text.find(s) + len(s), -len(s), text.find(s)) for s in stops if s in text]
    if hits:
        assert stopped and out == text[: min(hits)[2]]
    else:
        assert not stopped and out == text
