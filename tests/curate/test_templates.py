"""Every named template rendered against a known string, chat templates, Jinja2 files, formats."""

from __future__ import annotations

from pathlib import Path

import pytest

from curate.errors import CurateError
from curate.schema import Kind
from curate.steps.template import Format
from curate.templates import load_template

TURNS = [{"role": "user", "content": "two plus two"}, {"role": "assistant", "content": "2 + 2"}]
WITH_SYSTEM = [{"role": "system", "content": "Be brief."}, *TURNS]


@pytest.mark.parametrize(
    ("name", "conversation", "prompt", "completion"),
    [
        ("latex", TURNS, "Convert English to LaTeX\nEnglish: two plus two\nLaTeX:", " 2 + 2"),
        (
            "alpaca",
            TURNS,
            "Below is an instruction that describes a task. Write a response that appropriately completes the request."
            "\n\n### Instruction:\ntwo plus two\n\n### Response:\n",
            "2 + 2",
        ),
        ("llama2", TURNS, "<s>[INST] two plus two [/INST]", " 2 + 2 </s>"),
        ("llama2", WITH_SYSTEM, "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\ntwo plus two [/INST]", " 2 + 2 </s>"),
        ("chatml", TURNS, "<|im_start|>user\ntwo plus two<|im_end|>\n<|im_start|>assistant\n", "2 + 2<|im_end|>\n"),
        (
            "chatml",
            WITH_SYSTEM,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\ntwo plus two<|im_end|>\n<|im_start|>assistant\n",
            "2 + 2<|im_end|>\n",
        ),
    ],
)
def test_named_templates(name: str, conversation: list, prompt: str, completion: str) -> None:
    assert load_template(name).render(conversation) == (prompt, completion)


def test_latex_template_matches_design_prompt() -> None:
    prompt, completion = load_template("latex").render(
        [
            {"role": "user", "content": "g of x equals integral from 0 to 1 of x squared"},
            {"role": "assistant", "content": r"g(x) = \int_{0}^{1} x^2 \,dx"},
        ]
    )
    assert prompt + completion == (
        "Convert English to LaTeX\nEnglish: g of x equals integral from 0 to 1 of x squared\n"
        r"LaTeX: g(x) = \int_{0}^{1} x^2 \,dx"
    )


def test_chat_template_of_the_shipped_smollm2_tokenizer() -> None:
    template = load_template("chat-template:smollm2")
    prompt, completion = template.render(WITH_SYSTEM)
    assert prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\ntwo plus two<|im_end|>\n<|im_start|>assistant\n"
    )
    assert completion == "2 + 2<|im_end|>\n"


def test_jinja2_template_file(tmp_path: Path) -> None:
    path = tmp_path / "qa.jinja"
    path.write_text(
        "{% block prompt %}Q: {{ prompt }}\nA:{% endblock %}{% block completion %} {{ response }}{% endblock %}"
    )
    assert load_template(str(path)).render(TURNS) == ("Q: two plus two\nA:", " 2 + 2")
    (tmp_path / "bad.jinja").write_text("{% block prompt %}{{ prompt }}{% endblock %}")
    with pytest.raises(CurateError, match="block completion"):
        load_template(str(tmp_path / "bad.jinja"))


def test_unknown_template_lists_choices() -> None:
    with pytest.raises(CurateError, match="unknown template 'nope'.*alpaca"):
        load_template("nope")


def test_multi_turn_needs_a_chat_template() -> None:
    turns = [*TURNS, {"role": "user", "content": "and 3?"}, {"role": "assistant", "content": "3"}]
    with pytest.raises(CurateError, match="chat-template"):
        load_template("chatml").render(turns)


def test_formats_of_instruction_and_preference_rows() -> None:
    data = {"prompt": "two plus two", "response": "2 + 2"}
    latex = load_template("latex")
    assert Format(Kind.instruction, latex, "text").format(dict(data)) == {
        "text": "Convert English to LaTeX\nEnglish: two plus two\nLaTeX: 2 + 2"
    }
    assert Format(Kind.instruction, None, "messages").format(dict(data)) == {"messages": TURNS}
    assert Format(Kind.instruction, None, "prompt-completion").format(dict(data)) == {
        "prompt": "two plus two",
        "completion": "2 + 2",
    }
    pref = {"prompt": "q", "chosen": "good", "rejected": "bad", "margin": 2.0}
    assert Format(Kind.preference, load_template("chatml"), "prompt-completion").format(pref) == {
        "prompt": "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n",
        "chosen": "good<|im_end|>\n",
        "rejected": "bad<|im_end|>\n",
        "margin": 2.0,
    }
    assert Format(Kind.preference, None, "messages").format(pref)["chosen"] == [
        {"role": "assistant", "content": "good"}
    ]


def test_format_misuse_is_explained() -> None:
    with pytest.raises(CurateError, match="--format text needs a --template"):
        Format(Kind.instruction, None, "text")
    with pytest.raises(CurateError, match="not to 'labelled'"):
        Format(Kind.labelled, load_template("latex"), "prompt-completion")
    with pytest.raises(CurateError, match="keeps the raw conversation"):
        Format(Kind.instruction, load_template("latex"), "messages")
