"""Prompt templates: turn (system, prompt, response) into TRL prompt/completion strings.

Named templates are Jinja2 pairs (prompt part, completion part) so that custom
templates from a file work the same way: a file defines `{% block prompt %}` and
`{% block completion %}`. `chat-template:<tokenizer>` uses the tokenizer's own
`apply_chat_template` instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import jinja2

from curate.errors import CurateError

_ENV = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined, autoescape=False)

# name -> (prompt part, completion part). `system` may be empty.
NAMED: dict[str, tuple[str, str]] = {
    "latex": ("Convert English to LaTeX\nEnglish: {{ prompt }}\nLaTeX:", " {{ response }}"),
    "alpaca": (
        "{{ system or 'Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request.' }}\n\n"
        "### Instruction:\n{{ prompt }}\n\n### Response:\n",
        "{{ response }}",
    ),
    "llama2": (
        "<s>[INST] {% if system %}<<SYS>>\n{{ system }}\n<</SYS>>\n\n{% endif %}{{ prompt }} [/INST]",
        " {{ response }} </s>",
    ),
    "chatml": (
        "{% if system %}<|im_start|>system\n{{ system }}<|im_end|>\n{% endif %}"
        "<|im_start|>user\n{{ prompt }}<|im_end|>\n<|im_start|>assistant\n",
        "{{ response }}<|im_end|>\n",
    ),
}


class Template(Protocol):
    """Renders the prompt part and the completion part of one example."""

    name: str

    def render(self, messages: list[dict[str, str]]) -> tuple[str, str]:
        """Return (prompt, completion) for a conversation ending in an assistant turn."""
        ...


def _single_turn(messages: list[dict[str, str]], template: str) -> tuple[str, str, str]:
    roles = [m["role"] for m in messages]
    if roles not in (["user", "assistant"], ["system", "user", "assistant"]):
        raise CurateError(
            f"template '{template}' renders single-turn examples (optional system, user, assistant); "
            f"got turns {roles}: use --template chat-template:<tokenizer> for multi-turn data"
        )
    system = messages[0]["content"] if roles[0] == "system" else ""
    return system, messages[-2]["content"], messages[-1]["content"]


@dataclass
class JinjaTemplate:
    """A prompt/completion template written in Jinja2 (named or from a file)."""

    name: str
    prompt_part: Callable[..., str]
    completion_part: Callable[..., str]

    def render(self, messages: list[dict[str, str]]) -> tuple[str, str]:
        system, prompt, response = _single_turn(messages, self.name)
        try:
            return (
                self.prompt_part(system=system, prompt=prompt),
                self.completion_part(system=system, prompt=prompt, response=response),
            )
        except jinja2.UndefinedError as exc:
            raise CurateError(f"template '{self.name}': {exc} (it may use system, prompt, response)") from None


@dataclass
class ChatTemplate:
    """Uses a tokenizer's own chat template; the completion is what the assistant turn adds."""

    name: str
    tokenizer: Any

    def render(self, messages: list[dict[str, str]]) -> tuple[str, str]:
        if messages[-1]["role"] != "assistant":
            raise CurateError("chat template: the conversation must end with an assistant turn")
        prompt = self.tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
        full = self.tokenizer.apply_chat_template(messages, tokenize=False)
        if not full.startswith(prompt):
            raise CurateError(
                f"{self.name}: the tokenizer's chat template does not render the prompt as a prefix "
                "of the full conversation, so prompt and completion cannot be split"
            )
        return prompt, full[len(prompt) :]


def load_template(spec: str) -> Template:
    """Resolve a template spec: a name, `chat-template:<tokenizer>`, or a Jinja2 file path."""
    if spec in NAMED:
        prompt_text, completion_text = NAMED[spec]
        return JinjaTemplate(spec, _ENV.from_string(prompt_text).render, _ENV.from_string(completion_text).render)
    if spec.startswith("chat-template:"):
        from curate.hub import load_tokenizer

        tokenizer = load_tokenizer(spec.split(":", 1)[1])
        if not getattr(tokenizer, "chat_template", None):
            raise CurateError(f"{spec}: this tokenizer has no chat template")
        return ChatTemplate(spec, tokenizer)
    path = Path(spec)
    if path.is_file():
        return _template_from_file(path)
    raise CurateError(
        f"unknown template '{spec}': use one of {sorted(NAMED)}, chat-template:<tokenizer>, "
        "or a Jinja2 file with {% block prompt %} and {% block completion %}"
    )


def _template_from_file(path: Path) -> JinjaTemplate:
    try:
        source = path.read_text(encoding="utf-8")
        parsed = _ENV.from_string(source)
    except (OSError, UnicodeDecodeError, jinja2.TemplateSyntaxError) as exc:
        raise CurateError(f"{path}: not a readable Jinja2 template ({exc})") from None
    missing = [block for block in ("prompt", "completion") if block not in parsed.blocks]
    if missing:
        raise CurateError(f"{path}: the template must define {{% block {missing[0]} %}}...{{% endblock %}}")
    return JinjaTemplate(
        str(path), partial(_render_block, parsed, "prompt"), partial(_render_block, parsed, "completion")
    )


def _render_block(template: jinja2.Template, block: str, **context: Any) -> str:
    """Render one named block of a template on its own."""
    return "".join(template.blocks[block](template.new_context(context)))
