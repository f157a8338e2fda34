"""Tokenizer: GGUF metadata and HF folders give the same ids; transformers is the oracle."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("gguf")

from longbow.tokenizer import Tokenizer, bytes_to_unicode  # noqa: E402
from tok_helpers import (  # noqa: E402
    CHAT_TEMPLATE,
    gguf_metadata_py,
    train_tiny_bpe,
    write_gguf,
    write_hf_folder,
)

TEXTS = [
    "",
    "Hello world",
    " Hello  world ",
    "Café naïve résumé über straße — «quotes»",
    "日本語のテキスト 中文文本 한국어",
    "emoji 😀🎉👍🏽 and flags 🇫🇷",
    "def f(x):\n\treturn x ** 2  # square\n",
    "12345678901234567890 3.14159 -42 1e-9",
    "   \n\n\t\t  \r\n   ",
    "<|im_start|>user\nhi<|im_end|>\n",
    "text<|im_end|>glued<|endoftext|> <tool> tool",
    "It's we're they've I'm you'll he'd",
    "a" * 300,
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tok = train_tiny_bpe()
    root = tmp_path_factory.mktemp("tok")
    folder = write_hf_folder(tok, root / "hf")
    gguf_path = write_gguf(tok, root / "tiny.gguf")
    return tok, folder, gguf_path


def test_bytes_to_unicode_is_a_bijection():
    table = bytes_to_unicode()
    assert len(table) == 256 and len(set(table.values())) == 256
    assert table[ord("A")] == "A" and table[ord(" ")] == "Ġ"


@pytest.mark.parametrize("text", TEXTS)
def test_gguf_matches_hf_folder(tiny, text):
    raw, folder, gguf_path = tiny
    from_gguf = Tokenizer.from_gguf_metadata(gguf_metadata_py(gguf_path))
    from_hf = Tokenizer.from_hf_folder(folder)
    ids = from_gguf.encode(text)
    assert ids == from_hf.encode(text)
    assert ids == raw.encode(text).ids
    assert from_gguf.decode(ids, skip_special_tokens=False) == text


def test_special_tokens_and_metadata(tiny):
    _, _, gguf_path = tiny
    tok = Tokenizer.from_gguf_metadata(gguf_metadata_py(gguf_path))
    assert tok.vocab_size == 400
    assert tok.bos_token_id == 1 and tok.bos_token == "<|im_start|>"
    assert tok.eos_token_id == 2
    assert tok.eos_token_ids == {0, 2}  # eos + <|endoftext|> by name
    assert tok.encode("<|im_end|>") == [2]
    assert tok.encode("<tool>") == [3]  # user-defined: matched whole
    assert tok.id_to_piece(2) == "<|im_end|>"
    assert tok.chat_template == CHAT_TEMPLATE
    # Control tokens are dropped by skip_special_tokens, user-defined ones are kept.
    hi = tok.encode("Hi")
    assert tok.decode([1, *hi, 2, 3]) == "Hi<tool>"
    assert tok.decode([1, *hi, 2], skip_special_tokens=False) == "<|im_start|>Hi<|im_end|>"
    assert tok.decode([1, 2, 0]) == ""
    assert tok.decode([3]) == "<tool>"
    assert tok.is_special(2) and not tok.is_special(3)


def test_add_bos(tmp_path):
    raw = train_tiny_bpe()
    tok = Tokenizer.from_gguf_metadata(
        gguf_metadata_py(write_gguf(raw, tmp_path / "b.gguf", add_bos=True))
    )
    hf = Tokenizer.from_hf_folder(write_hf_folder(raw, tmp_path / "hf", add_bos=True))
    for t in (tok, hf):
        assert t.encode("Hi")[0] == 1
        assert t.encode("Hi", add_special_tokens=False)[0] != 1
        assert t.encode("") == [1]
    assert tok.encode("Hello world") == hf.encode("Hello world")


def test_eot_token_is_end_of_generation(tiny):
    _, _, gguf_path = tiny
    meta = gguf_metadata_py(gguf_path)
    meta["tokenizer.ggml.eot_token_id"] = 3
    assert Tokenizer.from_gguf_metadata(meta).eos_token_ids == {0, 2, 3}


def test_bad_metadata_errors(tiny):
    _, _, gguf_path = tiny
    meta = gguf_metadata_py(gguf_path)
    with pytest.raises(ValueError, match=r"\[tokenizer\].*'rwkv'"):
        Tokenizer.from_gguf_metadata({**meta, "tokenizer.ggml.model": "rwkv"})
    with pytest.raises(ValueError, match="tokenizer.ggml.tokens"):
        Tokenizer.from_gguf_metadata({"tokenizer.ggml.model": "gpt2"})
    with pytest.raises(ValueError, match="token types"):
        Tokenizer.from_gguf_metadata({**meta, "tokenizer.ggml.token_type": [1, 1]})
    with pytest.raises(ValueError, match="eos_token_id expected in"):
        Tokenizer.from_gguf_metadata({**meta, "tokenizer.ggml.eos_token_id": 10**6})
    with pytest.raises(ValueError, match="merge 0"):
        Tokenizer.from_gguf_metadata({**meta, "tokenizer.ggml.merges": ["abc"]})
    tok = Tokenizer.from_gguf_metadata(meta)
    with pytest.raises(ValueError, match=r"found 400"):
        tok.decode([400])
    with pytest.raises(ValueError, match="expected str"):
        tok.encode(b"bytes")
    with pytest.raises(ValueError, match="tokenizer.json"):
        Tokenizer.from_hf_folder(gguf_path.parent)


def test_llama3_pre_tokenizer_split(tiny):
    raw, _, gguf_path = tiny
    meta = gguf_metadata_py(gguf_path)
    tok = Tokenizer.from_gguf_metadata({**meta, "tokenizer.ggml.pre": "llama-bpe"})
    # llama3 splits digits in groups of up to 3 before BPE.
    pieces = [tok.id_to_piece(i) for i in tok.encode("1234567")]
    joined = "".join(pieces)
    assert joined == "1234567"
    assert tok.decode(tok.encode("Hello 1234567 world")) == "Hello 1234567 world"


@pytest.mark.parametrize("pre", ["smollm", "starcoder"])
def test_digit_split_pre_tokenizers_isolate_digits_first(tiny, pre):
    # llama.cpp splits \p{N} before the GPT-2 regex for these (HF: Digits then ByteLevel): the
    # whitespace before a digit stays one piece.
    raw, _, gguf_path = tiny
    meta = gguf_metadata_py(gguf_path)
    tok = Tokenizer.from_gguf_metadata({**meta, "tokenizer.ggml.pre": pre})
    pieces = [p for p, _ in tok.backend.pre_tokenizer.pre_tokenize_str("x\n\n12 a")]
    assert pieces == ["x", "ĊĊ", "1", "2", "Ġa"]
    plain = Tokenizer.from_gguf_metadata({**meta, "tokenizer.ggml.pre": "gpt2"})
    assert [p for p, _ in plain.backend.pre_tokenizer.pre_tokenize_str("x\n\n12")] == [
        "x",
        "Ċ",
        "Ċ",
        "12",
    ]
    assert tok.decode(tok.encode("x\n\n12 a")) == "x\n\n12 a"


def test_sentencepiece_gguf_roundtrip():
    # A tiny SentencePiece-style vocab: byte fallback tokens, ▁ words, merges from scores.
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    tokens = (
        ["<unk>", "<s>", "</s>"]
        + byte_tokens
        + ["▁", "h", "e", "l", "o", "he", "ll", "▁he", "llo", "▁hello"]
    )
    scores = [0.0] * (3 + 256) + [-1.0, -2.0, -2.0, -2.0, -2.0, -3.0, -3.0, -4.0, -4.0, -5.0]
    types = [2, 3, 3] + [6] * 256 + [1] * 10
    meta = {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": scores,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.unknown_token_id": 0,
    }
    tok = Tokenizer.from_gguf_metadata(meta)
    ids = tok.encode("hello hello")
    assert ids[0] == 1  # BOS added by default for SentencePiece
    assert tok.id_to_piece(ids[1]) == "▁hello"
    assert tok.decode(ids) == "hello hello"
    # Unknown characters fall back to bytes.
    ids = tok.encode("hé")
    assert "<0xC3>" in [tok.id_to_piece(i) for i in ids]
    assert tok.decode(ids) == "hé"
    # token_bytes (the server's logprobs `bytes`): ▁ is a space, <0xNN> one byte.
    assert b"".join(tok.token_bytes(i) for i in ids[1:]) == " hé".encode()  # with the prefix space
    assert tok.token_bytes(tokens.index("▁hello")) == b" hello"
    assert tok.token_bytes(tokens.index("<0xC3>")) == b"\xc3"


@pytest.mark.parametrize("text", TEXTS)
def test_token_bytes_of_byte_level_bpe_join_to_the_text(tiny, text):
    _, folder, gguf_path = tiny
    for tok in [
        Tokenizer.from_gguf_metadata(gguf_metadata_py(gguf_path)),
        Tokenizer.from_hf_folder(folder),
    ]:
        ids = tok.encode(text, add_special_tokens=False)
        assert b"".join(tok.token_bytes(i) for i in ids) == text.encode()


@pytest.mark.slow
@pytest.mark.oracle
@pytest.mark.parametrize("add_bos,pre", [(False, "gpt2"), (True, "llama-bpe"), (False, "qwen2")])
def test_tiny_gguf_matches_transformers(tiny, tmp_path, add_bos, pre):
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    gguf_path = write_gguf(tiny[0], tmp_path / "t.gguf", add_bos=add_bos, pre=pre)
    ref = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    tok = Tokenizer.from_gguf_metadata(gguf_metadata_py(gguf_path))
    for text in TEXTS:
        assert tok.encode(text) == ref(text)["input_ids"], text


@pytest.mark.slow
def test_smollm2_gguf_matches_transformers():
    path = os.environ.get("LONGBOW_TEST_GGUF")
    if not path:
        pytest.skip("set LONGBOW_TEST_GGUF to a SmolLM2 GGUF file")
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    path = Path(path)
    ref = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    tok = Tokenizer.from_gguf_metadata(gguf_metadata_py(path))
    assert tok.vocab_size == len(ref)
    for text in TEXTS + [
        "Ünïcödé ÅÄÖ ñ ç ø ß",
        "for (int i = 0; i < n; ++i) { sum += a[i]; }",
        "3141592653589793238462643383279",
        "\t\tindented\n        more\n\n\n",
        "<|im_start|>system\nYou are helpful<|im_end|>\n<|im_start|>assistant\n",
        "Привет мир! مرحبا بالعالم",
    ]:
        ids = tok.encode(text)
        assert ids == ref(text)["input_ids"], text
        assert tok.decode(ids) == ref.decode(ids, skip_special_tokens=True), text
    # llama.cpp's tokenizer on this file (pre "smollm": digits split first) gives one "\n\n"
    # token, 1116, before a digit; a plain GPT-2 split would give "\n", "\n" (198, 198).
    assert tok.encode("Hello\n\n1")[-2:] == [1116, tok.encode("1")[0]]
    msgs = [{"role": "user", "content": "Hi"}]
    assert tok.apply_chat_template(msgs) == ref.apply_chat_template(
        msgs, tokenize=False, add_generation_prompt=True
    )
