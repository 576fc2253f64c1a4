"""Show examples exactly as a trainer receives them (axolotl's preprocess debug view, for curate and train).

Each example is printed from its token ids: the decoded text, the tokens the model learns (loss) set apart
from the context it only reads, special tokens marked, where max_length cuts it; then counts over the
split: rows, tokens, tokens with loss, rows truncated and rows the trainer drops. On a terminal the loss
part is green and special tokens reversed; elsewhere (a file, a pipe) the loss part is wrapped in ⟦ ⟧ and
special tokens in ⟨ ⟩, so the view reads the same without colour.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.text import Text

from curate.render import Example, Renderer

LOSS_STYLE, CONTEXT_STYLE, SPECIAL_STYLE, CUT_STYLE = "bold green", "dim", "reverse", "bold red"


@dataclass(frozen=True)
class Counts:
    """What a split amounts to once the trainer has it (TRL's truncation and filters applied)."""

    rows: int
    tokens: int
    loss_tokens: int
    truncated_rows: int
    truncated_tokens: int
    dropped_rows: int  # SFT: no loss token left after truncation; reward: a side longer than max_length

    def line(self, split: str, max_length: int | None, dropped_why: str) -> str:
        """One summary line."""
        share = self.loss_tokens / self.tokens if self.tokens else 0.0
        text = f"{split}: {self.rows:,} rows · {self.tokens:,} tokens · {self.loss_tokens:,} with loss ({share:.1%})"
        if max_length:
            text += (
                f" · max_length {max_length}: {self.truncated_rows:,} rows truncated "
                f"({self.truncated_tokens:,} tokens cut), {self.dropped_rows:,} dropped ({dropped_why})"
            )
        return text


def sft_counts(examples: Sequence[Example], max_length: int | None) -> Counts:
    """Counts of SFT examples truncated to max_length as SFTTrainer does (keep the start, drop rows without loss)."""
    cut = max_length or 10**12
    loss = sum(sum(e.loss_mask[:cut]) for e in examples)
    over = [len(e.input_ids) - cut for e in examples if len(e.input_ids) > cut]
    dropped = sum(1 for e in examples if not any(e.loss_mask[:cut]))
    tokens = sum(min(len(e.input_ids), cut) for e in examples)
    return Counts(len(examples), tokens, loss, len(over), sum(over), dropped)


def pair_counts(pairs: Sequence[tuple[Example, Example]], max_length: int | None) -> Counts:
    """Counts of preference pairs as RewardTrainer keeps them (pairs with a side over max_length are dropped)."""
    cut = max_length or 10**12
    tokens = sum(len(c.input_ids) + len(r.input_ids) for c, r in pairs)
    over = [p for p in pairs if max(len(p[0].input_ids), len(p[1].input_ids)) > cut]
    excess = sum(max(len(c.input_ids), len(r.input_ids)) - cut for c, r in over)
    return Counts(len(pairs), tokens, tokens, len(over), excess, len(over))


def token_text(example: Example, tokenizer: Any, max_length: int | None, plain: bool, loss: bool = True) -> Text:
    """The example's tokens decoded run by run: loss vs context, special tokens, the max_length cut."""
    special = set(tokenizer.all_special_ids)
    text = Text()
    runs: list[tuple[int, bool, list[int], bool]] = []  # (start index, learned, ids, special)
    for i, (token, bit) in enumerate(zip(example.input_ids, example.loss_mask, strict=True)):
        learned, is_special = bool(bit) and loss, token in special
        cut_here = max_length is not None and i == max_length
        if runs and not cut_here and not is_special and not runs[-1][3] and runs[-1][1] == learned:
            runs[-1][2].append(token)
        else:
            runs.append((i, learned, [token], is_special))
    open_span = False  # plain text: inside a ⟦ ⟧ span of learned tokens
    for start, learned, ids, is_special in runs:
        after_cut = max_length is not None and start >= max_length
        learned = learned and not after_cut
        if plain and open_span and not learned:
            text.append("⟧")
            open_span = False
        if max_length is not None and start == max_length:
            text.append(f" ✂ max_length {max_length} ✂ ", style=CUT_STYLE)
        piece = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if plain:
            if learned and not open_span:
                text.append("⟦")
                open_span = True
            text.append(f"⟨{piece}⟩" if is_special else piece)
            continue
        style = LOSS_STYLE if learned else CONTEXT_STYLE
        text.append(piece, style=f"{style} {SPECIAL_STYLE}" if is_special else style)
    if open_span:
        text.append("⟧")
    return text


def show(
    console: Console,
    rows: Sequence[Example | tuple[Example, Example]],
    names: Sequence[str],
    tokenizer: Any,
    max_length: int | None,
    title: str,
) -> None:
    """Print SFT examples (loss part marked, where max_length cuts) or preference pairs (each side scored whole)."""
    plain = not console.is_terminal or console.no_color
    pairs = bool(rows) and isinstance(rows[0], tuple)
    console.rule(title)
    if pairs:
        legend = "each side is scored whole, at its last token; special tokens " + ("⟨…⟩" if plain else "reversed")
    else:
        legend = "loss on ⟦…⟧, special tokens ⟨…⟩" if plain else "[bold green]learned (loss)[/] · [dim]context[/]"
    console.print(legend, highlight=False)
    for i, (row, name) in enumerate(zip(rows, names, strict=False), 1):
        if isinstance(row, tuple):
            longest = max(len(row[0].input_ids), len(row[1].input_ids))
            dropped = " → dropped: longer than max_length" if max_length and longest > max_length else ""
            console.print(f"#{i} {name}{dropped}", style="bold", highlight=False)
            for side, example in zip(("chosen", "rejected"), row, strict=True):
                console.print(f"{side} · {len(example.input_ids)} tokens", style="italic", highlight=False)
                console.print(token_text(example, tokenizer, None, plain, loss=False), highlight=False, soft_wrap=True)
            continue
        n, learned = len(row.input_ids), sum(row.loss_mask)
        head = f"#{i} {name} · {n} tokens · {learned} with loss"
        if max_length and n > max_length:
            head += f" · truncated to {max_length}" + (
                "" if any(row.loss_mask[:max_length]) else " → dropped: no loss left"
            )
        console.print(head, style="bold", highlight=False)
        console.print(token_text(row, tokenizer, max_length, plain), highlight=False, soft_wrap=True)


def inspect_splits(
    console: Console,
    splits: Mapping[str, Any],
    renderer: Renderer,
    pairs: bool,
    max_length: int | None,
    limit: int,
    title: str,
) -> None:
    """`--inspect`: the first `limit` train rows as the trainer receives them, then the counts of every split.

    `splits`: split name -> rows (dicts, or a `datasets.Dataset`); `pairs`: preference rows (RewardTrainer's rules).
    """
    lines = []
    for split, rows in splits.items():
        if not len(rows):
            continue
        rendered: Sequence[Any] = renderer.pairs(rows) if pairs else renderer.examples(rows)
        counts = pair_counts(rendered, max_length) if pairs else sft_counts(rendered, max_length)
        if split == "train":
            shown = [rows[i] for i in range(min(limit, len(rows)))]
            names = [f"id {row['id']}" if row.get("id") is not None else f"row {i + 1}" for i, row in enumerate(shown)]
            show(console, rendered[:limit], names, renderer.tokenizer, max_length, title)
        why = "a side longer than max_length" if pairs else "no loss token left"
        lines.append(counts.line(split, max_length, why))
    console.rule("counts")
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)
