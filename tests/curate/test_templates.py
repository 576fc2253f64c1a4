"""Every named template rendered against a known string, chat templates, Jinja2 files, formats.

What these strings become as token ids and loss masks in the trainer is tested in tests/train/test_formatting.py.
"""

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
        (  # Stanford Alpaca's PROMPT_DICT["prompt_no_input"] (train.py); the answer follows "### Response:"
            "alpaca",
            TURNS,
            "Below is an instruction that describes a task. Write a response that appropriately completes the request."
            "\n\n### Instruction:\ntwo plus two\n\n### Response:",
            "2 + 2",
        ),
        (  # PROMPT_DICT["prompt_input"]: Alpaca's `input` in its own block, with the longer preamble
            "alpaca",
            [{"role": "user", "content": "Add the numbers.", "input": "2, 2"}, TURNS[1]],
            "Below is an instruction that describes a task, paired with an input that provides further context. "
            "Write a response that appropriately completes the request.\n\n### Instruction:\nAdd the numbers."
            "\n\n### Input:\n2, 2\n\n### Response:",
            "2 + 2",
        ),
        ("llama2", TURNS, "<s>[INST] two plus two [/INST]", " 2 + 2 </s>"),
        ("llama2", WITH_SYSTEM, "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\ntwo plus two [/INST]", " 2 + 2 </s>"),
        ("chatml", TURNS, "<|im_start|>user\ntwo plus two<|im_end|>\n<|im_start|>assistant\n", "2 + 2<|im_end|>"),
        (
            "chatml",
            WITH_SYSTEM,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\ntwo plus two<|im_end|>\n<|im_start|>assistant\n",
            "2 + 2<|im_end|>",  # ends on the end-of-turn token: TRL's endswith(eos) finds it, no second EOS
        ),
    ],
)
def test_named_templates(name: str, conversation: list, prompt: str, completion: str) -> None:
    assert load_template(name).split(conversation) == (prompt, completion)


def test_latex_template_matches_design_prompt() -> None:
    prompt, completion = load_template("latex").split(
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
    prompt, completion = template.split(WITH_SYSTEM)
    assert prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\ntwo plus two<|im_end|>\n<|im_start|>assistant\n"
    )
    assert completion == "2 + 2<|im_end|>"


def test_chat_template_default_system_prompt_is_explicit_and_switchable() -> None:
    """SmolLM2's template inserts "You are a helpful AI assistant named SmolLM…" into rows without a system turn:
    only when asked; otherwise the row gets an empty system turn."""
    plain = load_template("chat-template:smollm2")
    assert plain.injected_system_prompt == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    prompt, _ = plain.split(TURNS)
    assert "SmolLM" not in prompt and prompt.startswith("<|im_start|>system\n<|im_end|>\n<|im_start|>user")
    prompt, _ = load_template("chat-template:smollm2", default_system_prompt=True).split(TURNS)
    assert prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    # a row's own system prompt is always kept as is
    assert load_template("chat-template:smollm2").split(WITH_SYSTEM)[0].startswith("<|im_start|>system\nBe brief.")


def test_jinja2_template_file(tmp_path: Path) -> None:
    path = tmp_path / "qa.jinja"
    path.write_text(
        "{% block prompt %}Q: {{ prompt }}\nA:{% endblock %}{% block completion %} {{ response }}{% endblock %}"
    )
    assert load_template(str(path)).split(TURNS) == ("Q: two plus two\nA:", " 2 + 2")
    (tmp_path / "bad.jinja").write_text("{% block prompt %}{{ prompt }}{% endblock %}")
    with pytest.raises(CurateError, match="block completion"):
        load_template(str(tmp_path / "bad.jinja"))


def test_unknown_template_lists_choices() -> None:
    with pytest.raises(CurateError, match="unknown template 'nope'.*alpaca"):
        load_template("nope")


MULTI = [*TURNS, {"role": "user", "content": "and 3?"}, {"role": "assistant", "content": "3"}]


def test_chatml_and_llama2_render_every_turn_and_mark_each_answer() -> None:
    chatml = load_template("chatml").render(MULTI)
    assert chatml.text == (
        "<|im_start|>user\ntwo plus two<|im_end|>\n<|im_start|>assistant\n2 + 2<|im_end|>\n"
        "<|im_start|>user\nand 3?<|im_end|>\n<|im_start|>assistant\n3<|im_end|>\n"
    )
    assert [chatml.text[s:e] for s, e in chatml.loss_spans] == ["2 + 2<|im_end|>", "3<|im_end|>"]
    # Meta's Llama-2 chat format: one <s>[INST] … [/INST] … </s> per exchange, the system prompt in the first
    llama2 = load_template("llama2").render([{"role": "system", "content": "Be brief."}, *MULTI])
    assert llama2.text == (
        "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\ntwo plus two [/INST] 2 + 2 </s><s>[INST] and 3? [/INST] 3 </s>"
    )
    assert [llama2.text[s:e] for s, e in llama2.loss_spans] == [" 2 + 2 </s>", " 3 </s>"]


def test_single_exchange_templates_refuse_several_turns() -> None:
    for name in ("alpaca", "latex"):
        with pytest.raises(CurateError, match=f"template '{name}' renders one instruction and one answer"):
            load_template(name).render(MULTI)


def test_formats_of_instruction_and_preference_rows() -> None:
    data = {"prompt": "two plus two", "response": "2 + 2"}
    latex = load_template("latex")
    assert Format(Kind.instruction, latex, "text").format(dict(data)) == {
        "text": "Convert English to LaTeX\nEnglish: two plus two\nLaTeX: 2 + 2"
    }
    assert Format(Kind.instruction, None, "messages").format(dict(data)) == {"messages": TURNS}

    pref = {"prompt": "q", "chosen": "good", "rejected": "bad", "margin": 2.0}
    assert Format(Kind.preference, load_template("chatml"), "prompt-completion").format(pref) == {
        "prompt": "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n",
        "chosen": "good<|im_end|>",
        "rejected": "bad<|im_end|>",
        "margin": 2.0,
    }
    assert Format(Kind.preference, None, "messages").format(pref)["chosen"] == [
        {"role": "assistant", "content": "good"}
    ]


def test_format_misuse_is_explained() -> None:
    with pytest.raises(CurateError, match="--format text of instruction rows needs a --template"):
        Format(Kind.instruction, None, "text")
    with pytest.raises(CurateError, match="prompt and answer would be glued together"):
        Format(Kind.instruction, None, "prompt-completion")
    assert Format(Kind.instruction, None, None).fmt == "messages"  # the default without a template
    with pytest.raises(CurateError, match="not to 'labelled'"):
        Format(Kind.labelled, load_template("latex"), "prompt-completion")
    with pytest.raises(CurateError, match="'latex' renders one exchange only"):
        Format(Kind.instruction, load_template("latex"), "messages")
