"""Test helpers (tokenizer tests): a tiny trained byte-level BPE, exported as a HF folder and as
a GGUF, and a GGUF metadata reader built on the `gguf` package (test-only dependency)."""

from __future__ import annotations

import json
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool>"]

CORPUS = [
    "The quick brown fox jumps over the lazy dog. 1234567890 3.14159",
    "def main():\n    print('hello, world')\n\treturn 0\n",
    "Café naïve résumé über straße — «quotes» “smart” ‘single’",
    "日本語のテキスト 中文文本 한국어 텍스트 😀🎉👍🏽 emoji",
    "    leading spaces   and   runs\n\n\nnewlines\r\n windows",
    "It's we're they've I'm you'll he'd SHOUTING MiXeD",
] * 20


def train_tiny_bpe(vocab_size: int = 400):
    """Train a small byte-level BPE (ids 0..3 are the special tokens)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def write_hf_folder(tok, folder: Path, add_bos: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    config = {
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "add_bos_token": add_bos,
        "chat_template": CHAT_TEMPLATE,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def write_gguf(
    tok,
    path: Path,
    add_bos: bool = False,
    pre: str = "gpt2",  # the trained tokenizer splits with the plain GPT-2 regex
    chat_template: str | None = CHAT_TEMPLATE,
    user_defined=("<tool>",),
) -> Path:
    import gguf

    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    tokens = [None] * len(vocab)
    for piece, idx in vocab.items():
        tokens[idx] = piece
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    types = [(4 if t in user_defined else 3) if t in SPECIALS else 1 for t in tokens]
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(add_bos)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def gguf_metadata_py(path) -> dict:
    """GGUF key/value metadata as plain Python values (str, int, float, bool, lists)."""
    from gguf import GGUFReader, GGUFValueType

    reader = GGUFReader(str(path))
    meta = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        kind = field.types[0]
        if kind == GGUFValueType.ARRAY:
            sub = field.types[-1]
            if sub == GGUFValueType.STRING:
                meta[key] = [bytes(field.parts[i]).decode("utf-8") for i in field.data]
            else:
                meta[key] = [field.parts[i].tolist()[0] for i in field.data]
        elif kind == GGUFValueType.STRING:
            meta[key] = bytes(field.parts[field.data[0]]).decode("utf-8")
        else:
            value = field.parts[field.data[0]].tolist()[0]
            meta[key] = bool(value) if kind == GGUFValueType.BOOL else value
    return meta
