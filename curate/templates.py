"""Prompt templates: render a conversation into text, with the spans the model learns (its own turns).

Every template renders a conversation (`messages`, TRL's conversational format) into one string and
returns, beside it, the character spans of the assistant turns, i.e. the text that carries the loss:

- Named templates (`NAMED`: alpaca, latex, chatml, llama2) are Hugging Face chat templates (Jinja over
  `messages`) with `{% generation %}` markers, rendered by transformers' own renderer, so the same text
  comes out of `tokenizer.apply_chat_template(..., chat_template=chat_template(name))`. chatml and llama2
  render any number of turns; alpaca and latex define one instruction and one answer.
- `chat-template:<tokenizer>` uses that tokenizer's chat template (`TokenizerTemplate`); its assistant
  spans come from its `{% generation %}` markers when it has them, else from rendering the conversation
  turn by turn (`turn_spans`).
- A Jinja2 file with `{% block prompt %}` and `{% block completion %}` renders one exchange (`FileTemplate`).

Stanford Alpaca's shape (instruction + optional input) is native: a user turn may carry `input`, which
the alpaca template writes in its `### Input:` block exactly as Alpaca's train.py (PROMPT_DICT) does;
every other template gets the input appended to the instruction after a blank line (`user_turn`).
"""

from __future__ import annotations

import functools
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta

from curate.errors import CurateError

Messages = list[dict[str, Any]]
Span = tuple[int, int]

# Alpaca's two preambles, verbatim from tatsu-lab/stanford_alpaca train.py (PROMPT_DICT): the prompt ends
# with "### Response:" and the answer follows it directly; a `system` turn replaces the preamble.
ALPACA_PREAMBLE = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
)
ALPACA_PREAMBLE_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request."
)


@dataclass(frozen=True)
class NamedSpec:
    """A named template: its chat template source and the special tokens it writes as text."""

    source: str
    multi_turn: bool
    special_tokens: tuple[str, ...] = ()  # must be single special tokens of the target tokenizer
    end_token: str | None = None  # what closes an assistant turn; None: the tokenizer's EOS is appended
    input_slot: bool = False  # renders a user turn's `input` in its own block


def _jinja(*parts: str) -> str:
    return "".join(parts)


NAMED: dict[str, NamedSpec] = {
    "alpaca": NamedSpec(
        _jinja(
            "{%- set ns = namespace(system='') -%}",
            "{%- for m in messages -%}",
            "{%- if m.role == 'system' -%}{%- set ns.system = m.content -%}",
            "{%- elif m.role == 'user' and m.input -%}",
            "{{ (ns.system or '" + ALPACA_PREAMBLE_INPUT + "') + '\\n\\n### Instruction:\\n' + m.content",
            " + '\\n\\n### Input:\\n' + m.input + '\\n\\n### Response:' }}",
            "{%- elif m.role == 'user' -%}",
            "{{ (ns.system or '" + ALPACA_PREAMBLE + "') + '\\n\\n### Instruction:\\n' + m.content",
            " + '\\n\\n### Response:' }}",
            "{%- else -%}{% generation %}{{ m.content }}{% endgeneration %}",
            "{%- endif -%}{%- endfor -%}",
        ),
        multi_turn=False,
        input_slot=True,
    ),
    "latex": NamedSpec(
        _jinja(
            "{%- for m in messages -%}",
            "{%- if m.role == 'user' -%}{{ 'Convert English to LaTeX\\nEnglish: ' + m.content + '\\nLaTeX:' }}",
            "{%- elif m.role == 'assistant' -%}{% generation %}{{ ' ' + m.content }}{% endgeneration %}",
            "{%- endif -%}{%- endfor -%}",
        ),
        multi_turn=False,
    ),
    # ChatML: every turn `<|im_start|>role\ncontent<|im_end|>\n`; the model learns content + <|im_end|>.
    "chatml": NamedSpec(
        _jinja(
            "{%- for m in messages -%}",
            "{%- if m.role == 'assistant' -%}",
            "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ m.content + '<|im_end|>' }}{% endgeneration %}",
            "{{ '\\n' }}",
            "{%- else -%}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}",
            "{%- endif -%}{%- endfor -%}",
            "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}",
        ),
        multi_turn=True,
        special_tokens=("<|im_start|>", "<|im_end|>"),
        end_token="<|im_end|>",
    ),
    # Llama-2 chat (Meta's chat_completion): each exchange `<s>[INST] user [/INST] answer </s>`, the system
    # prompt inside the first [INST] between <<SYS>> markers.
    "llama2": NamedSpec(
        _jinja(
            "{%- set ns = namespace(system='') -%}",
            "{%- for m in messages -%}",
            "{%- if m.role == 'system' -%}{%- set ns.system = m.content -%}",
            "{%- elif m.role == 'user' -%}",
            "{{ '<s>[INST] ' }}{%- if ns.system -%}{{ '<<SYS>>\\n' + ns.system + '\\n<</SYS>>\\n\\n' }}",
            "{%- set ns.system = '' -%}{%- endif -%}{{ m.content + ' [/INST]' }}",
            "{%- else -%}{% generation %}{{ ' ' + m.content + ' </s>' }}{% endgeneration %}",
            "{%- endif -%}{%- endfor -%}",
        ),
        multi_turn=True,
        special_tokens=("<s>", "</s>"),
        end_token="</s>",
    ),
}


@dataclass(frozen=True)
class Rendered:
    """A rendered conversation and the character spans of what the model learns (its assistant turns)."""

    text: str
    loss_spans: tuple[Span, ...]


def user_turn(prompt: str, input_text: str | None, input_slot: bool) -> dict[str, Any]:
    """A user turn from an instruction and Alpaca's optional input (kept apart only where a template has a slot)."""
    if not input_text:
        return {"role": "user", "content": prompt}
    if input_slot:
        return {"role": "user", "content": prompt, "input": input_text}
    return {"role": "user", "content": f"{prompt}\n\n{input_text}"}


def as_turns(value: Any, role: str) -> Messages:
    """A field as conversation turns: a list of turns as is, a string as one turn of `role`."""
    return [dict(m) for m in value] if isinstance(value, list) else [{"role": role, "content": value}]


def check_turns(messages: Messages, template: str, multi_turn: bool) -> None:
    """Refuse a conversation a template does not define (several exchanges for a single-turn template)."""
    roles = [m["role"] for m in messages]
    exchanges = roles.count("user")
    if not multi_turn and (exchanges > 1 or roles.count("assistant") > 1):
        raise CurateError(
            f"template '{template}' renders one instruction and one answer; this conversation has {exchanges} "
            "user turns: use --template chatml, llama2 or chat-template:<tokenizer> for multi-turn data"
        )


class Template(ABC):
    """Renders conversations into text plus the spans of the assistant turns (see the module docstring)."""

    name: str
    multi_turn: bool = True
    special_tokens: tuple[str, ...] = ()
    end_token: str | None = None
    input_slot: bool = False

    @abstractmethod
    def _render(self, messages: Messages, add_generation_prompt: bool) -> Rendered: ...

    def render(self, messages: Messages, add_generation_prompt: bool = False) -> Rendered:
        """The conversation as text; `add_generation_prompt` ends it where the assistant's answer would start."""
        check_turns(messages, self.name, self.multi_turn)
        return self._render(messages, add_generation_prompt)

    def prompt(self, messages: Messages) -> str:
        """The text a model is given to answer the conversation's next (or final) assistant turn."""
        if messages and messages[-1]["role"] == "assistant":
            messages = messages[:-1]
        return self.render(messages, add_generation_prompt=True).text

    def split(self, messages: Messages) -> tuple[str, str]:
        """(prompt, completion) strings of a conversation ending in an assistant turn (TRL prompt-completion).

        Whitespace after the final end-of-turn token is dropped: the completion ends with the token the model
        must learn to stop on, so TRL's `endswith(eos)` check does not append a second one.
        """
        if not messages or messages[-1]["role"] != "assistant":
            raise CurateError(f"template '{self.name}': the conversation must end with an assistant turn")
        prompt = self.prompt(messages)
        full = self.render(messages).text
        if not full.startswith(prompt):
            raise CurateError(
                f"{self.name}: the template does not render the prompt as a prefix of the full conversation, "
                "so prompt and completion cannot be split"
            )
        return prompt, trim_after_end(full[len(prompt) :], self.end_token)


def trim_after_end(text: str, end_token: str | None) -> str:
    """Drop whitespace after a final end-of-turn token (the separator before a next turn that never comes)."""
    stripped = text.rstrip()
    return stripped if end_token and stripped.endswith(end_token) else text


def render_chat_template(source: str, messages: Messages, add_generation_prompt: bool, **kwargs: Any) -> Rendered:
    """Render a chat template with transformers' renderer; spans come from its `{% generation %}` markers."""
    from transformers.utils.chat_template_utils import render_jinja_template

    try:
        rendered: Any = render_jinja_template(  # annotated `-> str`, returns (texts, generation spans)
            [messages],
            chat_template=source,
            return_assistant_tokens_mask=True,
            add_generation_prompt=add_generation_prompt,
            **kwargs,
        )
    except jinja2.TemplateError as exc:
        raise CurateError(f"chat template: {exc}") from None
    texts, spans = rendered
    return Rendered(texts[0], tuple((int(s), int(e)) for s, e in spans[0]))


class NamedTemplate(Template):
    """One of `NAMED`: a chat template of ours with generation markers."""

    def __init__(self, name: str):
        spec = NAMED[name]
        self.name = name
        self.spec = spec
        self.multi_turn = spec.multi_turn
        self.special_tokens = spec.special_tokens
        self.end_token = spec.end_token
        self.input_slot = spec.input_slot

    def _render(self, messages: Messages, add_generation_prompt: bool) -> Rendered:
        return render_chat_template(self.spec.source, messages, add_generation_prompt)


def has_generation_markers(source: str) -> bool:
    """Whether a chat template marks the assistant's text with `{% generation %}` (TRL's test, same regex)."""
    return re.search(r"\{%-?\s*generation\s*-?%\}", source) is not None


class TokenizerTemplate(Template):
    """A tokenizer's own chat template (`chat-template:<tokenizer>`, or the model's at training time).

    Some templates add a default system prompt to conversations without one (SmolLM2: "You are a helpful AI
    assistant named SmolLM, trained by Hugging Face"). That happens only with `default_system_prompt=True`;
    otherwise such a conversation gets an empty system turn, the nearest the template can render to none.
    """

    def __init__(self, name: str, tokenizer: Any, default_system_prompt: bool = False):
        if not getattr(tokenizer, "chat_template", None):
            raise CurateError(f"{name}: this tokenizer has no chat template")
        self.name = name
        self.tokenizer = tokenizer
        self.default_system_prompt = default_system_prompt
        self.end_token = tokenizer.eos_token
        source = tokenizer.chat_template
        self.source: str = source["default"] if isinstance(source, dict) else source
        self.markers = has_generation_markers(self.source)
        # The special tokens its template writes literally: a model without them would read them as plain text.
        self.special_tokens = tuple(t for t in tokenizer.all_special_tokens if t in self.source)

    @functools.cached_property
    def injected_system_prompt(self) -> str | None:
        """The system prompt the template adds when a conversation has none (None: it adds nothing)."""
        return injected_system_prompt(lambda turns: self._text(turns, False))

    def _text(self, messages: Messages, add_generation_prompt: bool) -> str:
        return str(
            self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
        )

    def with_system_policy(self, messages: Messages) -> Messages:
        """The conversation as it is rendered: an empty system turn where the template would insert its default."""
        if self.default_system_prompt or not messages or messages[0]["role"] == "system":
            return messages
        if self.injected_system_prompt is None:
            return messages
        return [{"role": "system", "content": ""}, *messages]

    def _render(self, messages: Messages, add_generation_prompt: bool) -> Rendered:
        messages = self.with_system_policy(messages)
        if self.markers:
            kwargs = dict(self.tokenizer.special_tokens_map)
            return render_chat_template(self.source, messages, add_generation_prompt, **kwargs)
        text = self._text(messages, add_generation_prompt)
        return Rendered(text, turn_spans(messages, text, lambda turns, gen: self._text(turns, gen), self.name))


def turn_spans(messages: Messages, full: str, render: Any, name: str) -> tuple[Span, ...]:
    """Assistant spans of a template without generation markers, found by rendering the conversation turn by turn.

    Turn i's span runs from the end of the rendered prompt before it (with the generation prompt) to the end of
    the conversation rendered through it, less trailing whitespace (the separator before the next turn).
    """
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(messages[:i], True)
        through = render(messages[: i + 1], False).rstrip()
        if not (full.startswith(before) and full.startswith(through) and len(through) >= len(before)):
            raise CurateError(
                f"{name}: the chat template does not render each turn as a prefix of the whole conversation, "
                "so the assistant turns cannot be found for the loss mask"
            )
        spans.append((len(before), len(through)))
    return tuple(spans)


def injected_system_prompt(render: Any) -> str | None:
    """The system prompt a template inserts into a conversation without one, found by rendering two probes.

    A conversation with a user turn only, and the same with a marker system prompt: the text before the
    shared tail is the inserted system block in the first, and the block's frame around the marker in the second.
    """
    marker, user = "\x01", [{"role": "user", "content": "\x02"}]
    plain = render(user)
    framed = render([{"role": "system", "content": marker}, *user])
    tail = 0
    while tail < min(len(plain), len(framed)) and plain[-1 - tail] == framed[-1 - tail]:
        tail += 1
    inserted, frame = plain[: len(plain) - tail], framed[: len(framed) - tail]
    head, _, rest = frame.partition(marker)
    if not inserted or not inserted.startswith(head) or not inserted.endswith(rest):
        return None
    return inserted[len(head) : len(inserted) - len(rest)] or None


class FileTemplate(Template):
    """A Jinja2 file with `{% block prompt %}` and `{% block completion %}` (variables: system, prompt, input,
    response); it renders one exchange, and the whole completion block is learned."""

    multi_turn = False

    def __init__(self, path: Path):
        try:
            source = path.read_text(encoding="utf-8")
            parsed = _FILE_ENV.from_string(source)
        except (OSError, UnicodeDecodeError, jinja2.TemplateSyntaxError) as exc:
            raise CurateError(f"{path}: not a readable Jinja2 template ({exc})") from None
        missing = [block for block in ("prompt", "completion") if block not in parsed.blocks]
        if missing:
            raise CurateError(f"{path}: the template must define {{% block {missing[0]} %}}...{{% endblock %}}")
        self.name = str(path)
        self.parsed = parsed
        self.input_slot = "input" in jinja2.meta.find_undeclared_variables(_FILE_ENV.parse(source))

    def _block(self, block: str, **context: Any) -> str:
        try:
            return "".join(self.parsed.blocks[block](self.parsed.new_context(context)))
        except jinja2.UndefinedError as exc:
            raise CurateError(f"template '{self.name}': {exc} (it may use system, prompt, input, response)") from None

    def _render(self, messages: Messages, add_generation_prompt: bool) -> Rendered:
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        user = next((m for m in messages if m["role"] == "user"), {"content": ""})
        context = {"system": system, "prompt": user["content"], "input": user.get("input") or ""}
        prompt = self._block("prompt", **context)
        answer = next((m["content"] for m in messages if m["role"] == "assistant"), None)
        if answer is None:
            return Rendered(prompt, ())
        completion = self._block("completion", **context, response=answer)
        return Rendered(prompt + completion, ((len(prompt), len(prompt) + len(completion)),))


_FILE_ENV = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined, autoescape=False)


def chat_template(name: str) -> str:
    """The Hugging Face chat template (Jinja) of a named template, e.g. for TRL's `SFTConfig(chat_template_path=...)`."""
    return NAMED[name].source


def load_template(spec: str, tokenizer: Any = None, default_system_prompt: bool = False) -> Template:
    """Resolve a template spec: a name, `chat-template:<tokenizer>`, or a Jinja2 file path.

    `tokenizer`: an already loaded tokenizer for `chat-template:` (else it is loaded by name).
    """
    if spec in NAMED:
        return NamedTemplate(spec)
    if spec.startswith("chat-template:"):
        if tokenizer is None:
            from curate.hub import cached_tokenizer

            tokenizer = cached_tokenizer(spec.split(":", 1)[1])
        return TokenizerTemplate(spec, tokenizer, default_system_prompt)
    path = Path(spec)
    if path.is_file():
        return FileTemplate(path)
    raise CurateError(
        f"unknown template '{spec}': use one of {sorted(NAMED)}, chat-template:<tokenizer>, "
        "or a Jinja2 file with {% block prompt %} and {% block completion %}"
    )


def template_token_problems(template: Template, tokenizer: Any) -> list[str]:
    """The special tokens a template writes as text that are not single special tokens of `tokenizer`."""
    special = set(getattr(tokenizer, "all_special_tokens", [])) | {
        str(t) for t in getattr(tokenizer, "added_tokens_decoder", {}).values() if getattr(t, "special", False)
    }
    return [token for token in template.special_tokens if token not in special]
