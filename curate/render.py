"""What a trainer trains on: export rows rendered with the target tokenizer into token ids and a loss mask.

This is the one rendering of the data path: `train sft` and `train reward` hand these ids to TRL's
trainers already tokenized (TRL then builds the labels from the mask, truncates, pads and packs),
`train score` scores them, `curate lengths` and the build's lengths step count them, and `--inspect`
shows them. The rules:

- **One end token.** A string example (prompt + completion, or text) that does not end with an end token
  (the tokenizer's EOS, or its template's end-of-turn token when the tokenizer has it as a special token)
  gets the EOS appended once; a conversation ends where its chat template closes the last assistant
  turn, whitespace after that token dropped.
- **One BOS.** Strings are tokenized with the tokenizer's own special tokens (its BOS, if it adds one)
  unless the text already starts with the BOS token (the llama2 template writes `<s>`); conversations are
  tokenized as `apply_chat_template` does (the chat template writes its BOS itself).
- **Loss.** prompt-completion: the completion and its end token; conversations: every assistant turn
  (end-of-turn token included, the separator after it not); conversational prompt-completion: the
  completion turns; text: everything. `loss="all"` trains on every token.
- **Untemplated preference strings** (`chat_strings`) become a user and an assistant turn rendered with the
  model's chat template, as `train reward` gives them to the model.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from curate import transcripts
from curate.errors import CurateError
from curate.templates import (
    Messages,
    Rendered,
    Span,
    Template,
    TokenizerTemplate,
    as_turns,
    load_template,
    template_token_problems,
    trim_after_end,
    user_turn,
)

Loss = Literal["completion", "all"]
BATCH = 256  # rows tokenized per call


@dataclass(frozen=True)
class Example:
    """Token ids as the trainer receives them and the loss mask (1: the model learns this token)."""

    input_ids: list[int]
    loss_mask: list[int]

    @property
    def prompt_length(self) -> int:
        """Tokens before the first one with loss (the whole example when none has loss)."""
        return next((i for i, bit in enumerate(self.loss_mask) if bit), len(self.loss_mask))


@dataclass(frozen=True)
class Piece:
    """One text to tokenize: its loss spans, whether the tokenizer adds its BOS, whether to close it with EOS."""

    text: str
    loss_spans: tuple[Span, ...]
    add_special_tokens: bool
    close: bool


class Renderer:
    """Renders export rows for one tokenizer: `examples` for SFT rows, `pairs` for preference rows.

    `template`: the export's template name (manifest `template.name`); conversations are rendered with it
    when it renders conversations (chatml, llama2), else with the tokenizer's own chat template.
    """

    def __init__(
        self,
        tokenizer: Any,
        template: str | None = None,
        *,
        default_system_prompt: bool = False,
        chat_strings: bool = False,
        loss: Loss = "completion",
    ):
        self.tokenizer = tokenizer
        own = getattr(tokenizer, "chat_template", None)
        self.template: Template | None = None
        if template and template.startswith("chat-template:"):
            # the export was rendered with a tokenizer's chat template: render with the model's own
            # (`template_warnings` says when the two differ)
            self.template = TokenizerTemplate(template, tokenizer, default_system_prompt)
        elif template:
            self.template = load_template(template)
        self.chat: Template | None = self.template if self.template and self.template.multi_turn else None
        if self.chat is None and own:
            self.chat = TokenizerTemplate("the tokenizer's chat template", tokenizer, default_system_prompt)
        self.chat_strings = chat_strings and template is None and self.chat is not None
        self.default_system_prompt = default_system_prompt
        self.loss = loss
        end_tokens = {tokenizer.eos_token, self.template.end_token if self.template else None} - {None}
        special = set(tokenizer.all_special_tokens)
        self.end_ids = {tokenizer.convert_tokens_to_ids(t) for t in end_tokens if t in special}
        if tokenizer.eos_token_id is None:
            raise CurateError("the tokenizer has no EOS token: examples could not be closed")

    # -- rows -> pieces ---------------------------------------------------------------------------------
    def _conversation(self, turns: Messages, learn_from: int = 0) -> Piece:
        """A conversation rendered with the chat template; loss on assistant turns from turn `learn_from` on."""
        if self.chat is None:
            raise CurateError(
                "the rows are conversations but the tokenizer has no chat template: build the export with a "
                "--template (chatml, llama2) or train a model whose tokenizer has one"
            )
        rendered = self.chat.render(turns)
        start = len(self.chat.render(turns[:learn_from], add_generation_prompt=True).text) if learn_from else 0
        text = trim_after_end(rendered.text, self.chat.end_token)
        spans = tuple((s, min(e, len(text))) for s, e in rendered.loss_spans if s >= start and s < len(text))
        # The model's own chat template closes its turns; one of ours gets the EOS where the tokenizer lacks
        # the template's end token (a mismatch `template_warnings` reports).
        return Piece(text, spans, add_special_tokens=False, close=not isinstance(self.chat, TokenizerTemplate))

    def _strings(self, prompt: str, answer: str, chat: bool) -> Piece:
        if chat:
            return self._conversation([{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}])
        text = prompt + answer
        return Piece(text, ((len(prompt), len(text)),), self._adds_bos(text), close=True)

    def _adds_bos(self, text: str) -> bool:
        bos = self.tokenizer.bos_token
        return not (bos and text.startswith(bos))

    def _answer(self, prompt: Any, answer: Any, chat: bool = False) -> Piece:
        """A prompt and one answer (strings, or turn lists) as the trainer sees them.

        A chat prompt written as an HH-RLHF transcript (`\n\nHuman: …\n\nAssistant:`) is given as its turns,
        never as one user turn holding the transcript.
        """
        if chat and isinstance(prompt, str) and isinstance(answer, str) and transcripts.is_transcript(prompt):
            prompt = transcripts.prompt_turns(prompt)
        if isinstance(prompt, str) and isinstance(answer, str):
            return self._strings(prompt, answer, chat)
        if isinstance(prompt, list) or isinstance(answer, list):
            prompt_turns = as_turns(prompt, "user")
            return self._conversation(prompt_turns + as_turns(answer, "assistant"), learn_from=len(prompt_turns))
        raise CurateError("prompt and completion must both be strings or both be lists of turns")

    def sft_piece(self, row: dict[str, Any]) -> Piece:
        """The piece of an SFT row: messages, prompt + completion, or text."""
        if "messages" in row:
            return self._conversation(list(row["messages"]))
        if "prompt" in row and "completion" in row:
            return self._answer(row["prompt"], row["completion"])
        if "prompt" in row and "response" in row:  # rated / reward rows: counted as prompt + answer
            return self._answer(row["prompt"], row["response"])
        if "text" in row:
            # labelled rows are classified, not generated: no EOS to learn; a sentence pair counts both sentences
            labelled = "labels" in row or "label" in row
            text = " ".join(row[k] for k in ("text", "text_pair") if row.get(k)) if labelled else row["text"]
            return Piece(text, ((0, len(text)),), self._adds_bos(text), close=not labelled)
        raise CurateError(
            f"no formatted text in columns {sorted(row)}: expected text, prompt+completion, messages, "
            "prompt+chosen+rejected or prompt+response"
        )

    def pair_pieces(self, row: dict[str, Any]) -> tuple[Piece, Piece]:
        """The chosen and rejected pieces of a preference row (prompt may be implicit in the answers)."""
        prompt = row.get("prompt", [] if isinstance(row["chosen"], list) else "")
        return (
            self._answer(prompt, row["chosen"], self.chat_strings),
            self._answer(prompt, row["rejected"], self.chat_strings),
        )

    # -- pieces -> tokens -------------------------------------------------------------------------------
    def encode(self, pieces: Sequence[Piece]) -> list[Example]:
        """Tokenize pieces (batched) into ids and loss masks, closing each with one end token."""
        out: list[Example | None] = [None] * len(pieces)
        for flag in (True, False):
            index = [i for i, p in enumerate(pieces) if p.add_special_tokens is flag]
            for start in range(0, len(index), BATCH):
                batch = index[start : start + BATCH]
                try:
                    enc = self.tokenizer(
                        [pieces[i].text for i in batch], add_special_tokens=flag, return_offsets_mapping=True
                    )
                except NotImplementedError:
                    raise CurateError("the tokenizer is not a fast tokenizer (no offsets): it cannot be used") from None
                for i, ids, offsets in zip(batch, enc["input_ids"], enc["offset_mapping"], strict=True):
                    out[i] = self._example(pieces[i], list(ids), offsets)
        return [e for e in out if e is not None]

    def _example(self, piece: Piece, ids: list[int], offsets: Sequence[Sequence[int]]) -> Example:
        if self.loss == "all":
            mask = [1] * len(ids)
        else:
            # A token is learned when it overlaps a loss span (transformers' rule for assistant masks).
            mask = [int(any(end > s and start < e for s, e in piece.loss_spans)) for start, end in offsets]
        if piece.close and (not ids or ids[-1] not in self.end_ids):
            ends_in_loss = self.loss == "all" or any(e >= len(piece.text) for _, e in piece.loss_spans)
            ids.append(self.tokenizer.eos_token_id)
            mask.append(int(ends_in_loss))
        return Example(ids, mask)

    def examples(self, rows: Iterable[dict[str, Any]]) -> list[Example]:
        """SFT examples of rows (messages, prompt + completion or text)."""
        return self.encode([self.sft_piece(row) for row in rows])

    def pairs(self, rows: Iterable[dict[str, Any]]) -> list[tuple[Example, Example]]:
        """(chosen, rejected) examples of preference rows."""
        pieces = [piece for row in rows for piece in self.pair_pieces(row)]
        encoded = self.encode(pieces)
        return list(zip(encoded[0::2], encoded[1::2], strict=True))

    def answers(self, items: Sequence[tuple[Any, Any]]) -> list[Example]:
        """Each (prompt, answer) as a reward model sees a preference row's chosen side."""
        return self.encode([self._answer(prompt, answer, self.chat_strings) for prompt, answer in items])

    def lengths(self, rows: Sequence[dict[str, Any]], where: Any = None) -> Iterator[int]:
        """Token count of each row as its trainer sees it (preference rows: the longer side)."""
        for start in range(0, len(rows), BATCH):
            batch = rows[start : start + BATCH]
            sizes: list[int] = []
            pieces: list[Piece] = []
            for i, row in enumerate(batch):
                try:
                    got = self.pair_pieces(row) if "chosen" in row and "rejected" in row else (self.sft_piece(row),)
                except CurateError as exc:
                    raise CurateError(f"{where(start + i) if where else f'row {start + i + 1}'}: {exc}") from None
                sizes.append(len(got))
                pieces.extend(got)
            encoded = iter(self.encode(pieces))
            for size in sizes:
                yield max(len(next(encoded).input_ids) for _ in range(size))

    # -- generation -----------------------------------------------------------------------------------
    def generation_prompt(
        self, prompt: str | Messages, conversational: bool = False, input_text: str | None = None
    ) -> str:
        """The text a model is given for a user's prompt, rendered as the training prompts were.

        `conversational`: the model trained on conversations (a messages export) rendered by its chat template.
        """
        template = self.template
        if template is not None and not isinstance(prompt, list):
            return template.prompt([user_turn(prompt, input_text, template.input_slot)])
        turns = as_turns(prompt, "user")
        if self.chat is not None and (isinstance(prompt, list) or conversational or self.chat_strings):
            return self.chat.prompt(turns)
        return prompt if isinstance(prompt, str) else "\n\n".join(m["content"] for m in turns)


def template_warnings(template: str | None, tokenizer: Any, tokenizer_name: str, strict: bool = False) -> list[str]:
    """Lines to warn with when a template writes special tokens the target tokenizer does not have.

    Such tokens would be trained as plain text (`<s>[INST]` read as letters) beside the model's own EOS;
    `strict` refuses instead.
    """
    if not template:
        return []
    spec_tokenizer = template.split(":", 1)[1] if template.startswith("chat-template:") else None
    if spec_tokenizer is not None and spec_tokenizer == tokenizer_name:
        return []
    loaded = load_template(template, tokenizer) if spec_tokenizer is None else load_template(template)
    missing = template_token_problems(loaded, tokenizer)
    if not missing:
        return []
    message = (
        f"template '{template}' writes {', '.join(missing)}, which tokenizer '{tokenizer_name}' does not have as "
        f"special tokens (its EOS: {tokenizer.eos_token}): they would be trained as plain text; use a template "
        "of this model (e.g. chat-template:<its tokenizer>)"
    )
    if strict:
        raise CurateError(message + " (refused: --strict)")
    return [message + ", or pass --strict to refuse"]


__all__ = ["Example", "Piece", "Renderer", "Rendered", "template_warnings"]
