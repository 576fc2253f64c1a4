"""`train score`: a reward per (prompt, answer) from a trained reward model.

An answer is rendered and tokenized exactly as `train reward` saw a `chosen` answer during
training (the same `curate.render.Renderer`, rebuilt from the run card), so a score here is the
reward the model was trained to give. The output is the input rows plus a
`reward` column, in the input's file type (JSONL, CSV or Parquet).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from curate.console import console, user_errors
from curate.errors import CurateError
from curate.render import Renderer
from curate.schema import as_turns
from curate.transcripts import is_transcript, prompt_turns

SCORE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def reward_renderer(tokenizer: Any, data: dict[str, Any]) -> Renderer:
    """The rendering a reward run trained with, from its run card's `data` section."""
    chat_strings = data.get("chat_strings")
    if chat_strings is None:  # cards written before chat_strings was recorded: untemplated strings ran as chat
        chat_strings = data.get("format") == "messages" and not data.get("template")
    return Renderer(
        tokenizer,
        data.get("template"),
        default_system_prompt=bool(data.get("default_system_prompt")),
        chat_strings=bool(chat_strings),
    )


def reward_scores(
    model: Any,
    tokenizer: Any,
    pairs: list[tuple[Any, Any]],
    renderer: Renderer,
    batch_size: int = 16,
    quiet: bool = True,
) -> list[float]:
    """Reward of each (prompt, answer), batched with right padding (the head reads the last non-pad token)."""
    import torch
    from rich.progress import track

    if tokenizer.pad_token_id is None or model.config.pad_token_id is None:
        raise CurateError("the reward model has no pad token: batches of more than one answer cannot be scored")
    ids = [example.input_ids for example in renderer.answers(pairs)]
    # Longest first, so a batch pads little and an out-of-memory shows at the first batch.
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    scores = [0.0] * len(ids)
    device = next(model.parameters()).device
    # A half-precision base with an fp32 head (as trained under mixed precision) needs autocast to run.
    half = {p.dtype for p in model.parameters()} & {torch.float16, torch.bfloat16}
    autocast = torch.autocast(device.type, dtype=half.pop()) if half else contextlib.nullcontext()
    model.eval()
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    with torch.no_grad():
        # A live bar only on a terminal: in a log it would be one stale line.
        for batch in track(batches, description="scoring", disable=quiet or not console.is_terminal, console=console):
            width = max(len(ids[i]) for i in batch)
            input_ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
            attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
                attention_mask[row, : len(ids[i])] = 1
            with autocast:
                logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
            for row, i in enumerate(batch):
                scores[i] = float(logits[row, 0].float())
    return scores


def load_reward_model(run_dir: str | Path, dtype: str = "auto") -> tuple[Any, Any, Renderer]:
    """Reward model (base + LoRA adapter with its saved `score` head, or a full model), tokenizer, text format."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from train.card import read_run_card
    from train.model import from_pretrained, model_path, resolve_dtype

    run_dir = Path(run_dir)
    card = read_run_card(run_dir)
    if card.get("verb") != "reward":
        raise CurateError(
            f"{run_dir}: a `train {card.get('verb')}` run, not a reward model; train one with `train reward`"
        )
    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    load_kwargs: dict[str, Any] = {"num_labels": 1, "dtype": resolve_dtype(dtype)}
    quantization = card.get("quantization") or {}
    quantized = quantization.get("quantize", "none") != "none" and torch.cuda.is_available()
    if quantized:  # a QLoRA adapter scores on the same 4/8-bit base it was trained on (on CPU: unquantized)
        from train.config import MemorySection
        from train.model import quantization_config

        memory = MemorySection(**{k: v for k, v in quantization.items() if k in MemorySection.model_fields})
        load_kwargs.update(quantization_config=quantization_config(memory), device_map={"": 0})
    if (run_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        base_path = card.get("base_model_path") or ""
        if not Path(base_path).exists():
            base_path = model_path(card["base_model"])
        base = from_pretrained(AutoModelForSequenceClassification, base_path, **load_kwargs)
        model = PeftModel.from_pretrained(base, run_dir)
    else:
        model = from_pretrained(AutoModelForSequenceClassification, str(run_dir), **load_kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    if torch.cuda.is_available() and not quantized:
        model.to("cuda")
    return model, tokenizer, reward_renderer(tokenizer, card.get("data", {}))


def read_answers(path: Path) -> tuple[list[dict[str, Any]] | Any, list[str]]:
    """JSONL rows as dicts (kept exactly, absent keys stay absent), or CSV/Parquet as a DataFrame; and the columns."""
    import pandas as pd

    if not path.is_file():
        raise CurateError(f"--data {path}: no such file")
    if path.suffix not in SCORE_SUFFIXES:
        raise CurateError(f"--data {path}: unsupported file type '{path.suffix}' (use {', '.join(SCORE_SUFFIXES)})")
    if path.suffix in (".jsonl", ".json"):
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CurateError(f"--data {path} line {number}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise CurateError(f"--data {path} line {number}: expected a JSON object per line")
            rows.append(row)
        return rows, list(dict.fromkeys(key for row in rows for key in row))
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, keep_default_na=False)
    except ValueError as exc:
        raise CurateError(f"--data {path}: cannot read it ({str(exc).splitlines()[0]})") from None
    return frame, [str(c) for c in frame.columns]


def read_rows(data: Path, needed: Sequence[str], hint: str) -> tuple[Any, list[dict[str, Any]]]:
    """`read_answers`, checked: every `needed` column is there (else one line ending with `hint`) and there is
    a row. Returns the table (to write back with `write_with_columns`) and its rows as dicts.
    """
    table, columns = read_answers(data)
    for column in needed:
        if column not in columns:
            raise CurateError(f"--data {data}: no '{column}' column (columns: {', '.join(columns) or 'none'}); {hint}")
    records = table if isinstance(table, list) else table.to_dict(orient="records")
    if not records:
        raise CurateError(f"--data {data}: the file holds no rows")
    return table, records


def output_file(data: Path, out: Path | None, tag: str) -> Path:
    """`--out`, else DATA with `.<tag>` before its extension (`rows.scored.jsonl`); the same file type as DATA."""
    out = out or data.with_name(f"{data.stem}.{tag}{data.suffix}")
    if out.suffix != data.suffix:
        raise CurateError(f"--out {out}: write the same file type as --data ({data.suffix})")
    return out


def score_file(
    run_dir: Path,
    data: Path,
    out: Path,
    prompt_column: str = "prompt",
    answer_column: str = "response",
    batch_size: int = 16,
    quiet: bool = False,
) -> list[float]:
    """Score every (prompt, answer) row of `data` with the run's reward model; write rows + `reward` to `out`."""
    table, records = read_rows(
        data, (prompt_column, answer_column), "name the columns with --prompt-column / --answer-column"
    )
    pairs = []
    for number, row in enumerate(records, start=1):
        prompt: Any = row.get(prompt_column)  # text, a list of turns, or Parquet's array of them
        answer = row.get(answer_column)
        if hasattr(prompt, "tolist"):  # a list column read by pandas from Parquet
            prompt = [dict(turn) for turn in prompt.tolist()]
        if isinstance(prompt, str) and is_transcript(prompt):  # HH-RLHF style: "\n\nHuman: …\n\nAssistant:"
            prompt = prompt_turns(prompt)
        if isinstance(prompt, list):  # conversational: the turns before the answer
            try:
                prompt = as_turns(prompt)
            except ValueError as exc:
                raise CurateError(f"--data {data} row {number}: '{prompt_column}': {exc}") from None
        if not isinstance(prompt, (str, list)) or not isinstance(answer, str):
            raise CurateError(
                f"--data {data} row {number}: '{prompt_column}' must be text or a list of turns "
                f"and '{answer_column}' text"
            )
        pairs.append((prompt, answer))
    model, tokenizer, renderer = load_reward_model(run_dir)
    rewards = reward_scores(model, tokenizer, pairs, renderer, batch_size, quiet)
    write_with_columns(table, out, {"reward": rewards})
    return rewards


def write_with_columns(table: list[dict[str, Any]] | Any, out: Path, added: dict[str, list[Any]]) -> None:
    """Write the rows `read_answers` read plus the `added` columns to `out`, in the input's file type.

    JSONL rows keep their keys exactly; in CSV, list and mapping cells are written as JSON.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(table, list):
        lines = (
            json.dumps({**row, **{name: values[i] for name, values in added.items()}}, ensure_ascii=False)
            for i, row in enumerate(table)
        )
        out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    elif out.suffix == ".parquet":
        table.assign(**added).to_parquet(out, index=False)
    else:
        as_text = {
            name: [json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v for v in values]
            for name, values in added.items()
        }
        table.assign(**as_text).to_csv(out, index=False)


@user_errors
def score_project(
    run_dir: Path, project: str, db: str | None, batch_size: int = 16, quiet: bool = False
) -> list[float]:
    """Score every answer of a review project and store the scores (source: the run's name) for the Admin page."""
    from curate.review.store import ReviewStore
    from curate.review.types import resolve_url

    store = ReviewStore(resolve_url(db), operator=True)
    answers = store.scores.answers(project)
    if answers.empty:
        raise CurateError(f"project {project!r} has no answers to score")
    model, tokenizer, renderer = load_reward_model(run_dir)
    pairs = list(zip(answers.prompt, answers.response, strict=True))
    rewards = reward_scores(model, tokenizer, pairs, renderer, batch_size, quiet)
    store.scores.record(project, Path(run_dir).resolve().name, zip(answers.answer_id, rewards, strict=True))
    store.close()
    return rewards


@user_errors
def score_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory from `train reward`.")],
    data: Annotated[
        Optional[Path], typer.Option("--data", help="Answers to score: JSONL, CSV or Parquet with prompt + answer.")
    ] = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="Output file (default: DATA with a .scored suffix).")
    ] = None,
    project: Annotated[
        Optional[str],
        typer.Option(help="Instead of --data: score every answer of this review project, for admins to see."),
    ] = None,
    db: Annotated[
        Optional[str], typer.Option("--db", help="With --project: the review database URL (default as curate review).")
    ] = None,
    prompt_column: Annotated[str, typer.Option(help="Column holding the question.")] = "prompt",
    answer_column: Annotated[str, typer.Option(help="Column holding the answer to score.")] = "response",
    batch_size: Annotated[int, typer.Option(min=1, help="Answers per forward pass.")] = 16,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Write a reward score per answer: the same rows plus a `reward` column (higher = better); or, with
    --project, store a score for every answer of a review project, shown beside it on the Admin page.

    \b
    Examples:
      train score runs/qa-reward --data data/qa/ratings.jsonl \\
          --out out/qa-ratings-scored.jsonl
      train score runs/qa-reward --project qa
    """
    from train.progress import on_terminal, silence_library_progress

    if (data is None) == (project is None):
        raise CurateError("give --data FILE (scores written to a file) or --project P (scores stored for admins)")
    if quiet or not on_terminal():  # transformers' weight-loading bar: carriage returns in a log
        silence_library_progress()
    if project is not None:
        rewards = score_project(run_dir, project, db, batch_size, quiet)
        where = f"project {project} (Admin page, source {Path(run_dir).resolve().name})"
    else:
        assert data is not None
        out = output_file(data, out, "scored")
        rewards = score_file(run_dir, data, out, prompt_column, answer_column, batch_size, quiet)
        where = str(out)
    console.print(
        f"Scored {len(rewards)} answers (reward min {min(rewards):.3f} · mean {sum(rewards) / len(rewards):.3f} · "
        f"max {max(rewards):.3f}) → [bold]{escape(where)}[/]",
        soft_wrap=True,
    )
