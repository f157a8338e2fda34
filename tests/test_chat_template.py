"""Chat templates rendered with jinja2 the way transformers does."""

from __future__ import annotations

import pytest

from longbow.chat_template import (
    CHATML_TEMPLATE,
    TemplateError,
    render_chat_template,
    validate_messages,
)

MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def test_chatml_render():
    out = render_chat_template(CHATML_TEMPLATE, MSGS)
    assert out == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    out = render_chat_template(CHATML_TEMPLATE, MSGS, add_generation_prompt=False)
    assert out.endswith("Hi<|im_end|>\n")


def test_trim_and_lstrip_blocks():
    tpl = "{% for m in messages %}\n    {% if m.role == 'user' %}\n[{{ m.content }}]\n    {% endif %}\n{% endfor %}"
    assert render_chat_template(tpl, MSGS) == "[Hi]\n"


def test_globals_and_filters():
    tpl = (
        "{{ bos_token }}{{ messages | tojson }}|{{ tools | tojson }}|{{ strftime_now('%Y') | length }}"
        "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m.role }}{% endfor %}"
        "{{ eos_token }}"
    )
    out = render_chat_template(
        tpl,
        [{"role": "user", "content": "é<b>"}],
        tools=[{"name": "f"}],
        bos_token="<s>",
        eos_token="</s>",
    )
    assert out == '<s>[{"role": "user", "content": "é<b>"}]|[{"name": "f"}]|4user</s>'


def test_raise_exception():
    tpl = (
        "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}"
    )
    with pytest.raises(TemplateError, match="first must be user"):
        render_chat_template(tpl, MSGS)
    assert issubclass(TemplateError, ValueError)


def test_sandbox_blocks_attribute_access():
    tpl = "{{ messages.__class__.__mro__ }}"
    with pytest.raises(ValueError, match=r"\[chat_template\] rendering failed"):
        render_chat_template(tpl, MSGS)
    with pytest.raises(ValueError, match="append"):
        render_chat_template("{{ messages.append(1) }}", MSGS)


@pytest.mark.parametrize(
    "messages,match",
    [
        ("hi", "list of dicts"),
        (["hi"], "message 0: expected a dict"),
        ([{"content": "x"}], "role"),
        ([{"role": "user"}], "'content' key"),
        ([{"role": "user", "content": 3}], "str or list"),
    ],
)
def test_validate_messages(messages, match):
    with pytest.raises(ValueError, match=match):
        validate_messages(messages)


def test_syntax_error():
    with pytest.raises(ValueError, match="syntax error at line 1"):
        render_chat_template("{% for %}", MSGS)


def test_tokenizer_without_template(tmp_path):
    from tokenizers import Tokenizer as HFTokenizer, models

    from longbow.tokenizer import Tokenizer

    tok = Tokenizer(HFTokenizer(models.BPE(vocab={"a": 0}, merges=[])))
    with pytest.raises(ValueError, match="no.*chat template|chat template.*found none"):
        tok.apply_chat_template(MSGS)
    assert tok.apply_chat_template(MSGS, fallback_chatml=True).endswith("<|im_start|>assistant\n")
