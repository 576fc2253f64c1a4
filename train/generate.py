"""`train generate`: answer with trained runs, rendering each prompt like the training data.

Two uses:

- `train generate RUN --prompt TEXT`: read what one run writes (greedy or beam search).
- `train generate RUN --prompts SRC --n K --out items.jsonl` (and `--run B` for more runs): sample K
  answers per prompt from each run and write the items file `curate review import` takes, each answer
  tagged with the run that wrote it (`run name (base model)`), so labelers compare models blind.
  SRC is an export directory (its prompts), a JSONL / CSV / Parquet file with a prompt column, or a
  review project's prompts (`review:PROJECT`).

The run card names the template the export was built with (e.g. `latex`), so a bare sentence
becomes the exact prompt the model learned on (`curate.render.Renderer.generation_prompt`, the
rendering training used). Works on an adapter run directory and on the standalone model
`train merge` writes; a reward model is refused (it scores, it does not write).
"""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Annotated, Any, Optional

import torch
import typer
from pydantic import BaseModel, ConfigDict, Field, model_validator
from rich.markup import escape

from curate.config import Flag, FlagValues, from_flags, with_flags
from curate.console import console, progress_bar, user_errors
from curate.errors import CurateError
from curate.io.atomic import replace_file
from curate.render import Renderer
from train.card import read_run_card
from train.model import model_path, resolve_dtype


class Sampling(BaseModel):
    """How `train generate --prompts` samples answers (transformers' `generate`, batched with left padding)."""

    model_config = ConfigDict(extra="forbid")

    n: int = Field(default=4, ge=1, description="--prompts: answers sampled per prompt from each run.")
    temperature: float = Field(
        default=0.8, ge=0.0, description="--prompts: sampling temperature; 0 decodes greedily (then --n must be 1)."
    )
    top_p: float = Field(
        default=0.95,
        gt=0.0,
        le=1.0,
        description="--prompts: nucleus sampling, from the smallest set of tokens this likely.",
    )
    seed: int = Field(
        default=0, description="--prompts: sampler seed; the same seed, runs and prompts give the same answers."
    )
    max_new_tokens: int | None = Field(
        default=None, ge=1, description="Most tokens per answer; null: the run's generation.max_new_tokens."
    )
    batch_size: int = Field(default=8, ge=1, description="--prompts: prompts per generate call.")

    @model_validator(mode="after")
    def _greedy_gives_one(self) -> Sampling:
        if self.temperature == 0 and self.n > 1:
            raise ValueError(f"--n {self.n} needs sampling: greedy decoding (--temperature 0) gives one answer")
        return self


def render_prompt(card: dict[str, Any], text: str, tokenizer: Any) -> str:
    """Render a user's text the way the training prompts were rendered (template, chat template or as is)."""
    data = card.get("data", {})
    renderer = Renderer(tokenizer, data.get("template"), default_system_prompt=bool(data.get("default_system_prompt")))
    return renderer.generation_prompt(text, conversational=data.get("format") == "messages")


@torch.inference_mode()
def generate_texts(
    model: Any, tokenizer: Any, prompts: list[str], num_beams: int = 1, max_new_tokens: int = 64
) -> list[str]:
    """Greedy or beam-search completions of already-rendered prompts (new text only, special tokens dropped)."""
    model.eval()
    outputs = []
    for prompt in prompts:
        inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
        generated = model.generate(
            **inputs,
            num_beams=num_beams,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            early_stopping=num_beams > 1,
            pad_token_id=tokenizer.pad_token_id,
        )
        outputs.append(tokenizer.decode(generated[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True))
    return outputs


@torch.inference_mode()
def sample_answers(
    model: Any, tokenizer: Any, prompts: list[str], sampling: Sampling, max_new_tokens: int, advance: Any = None
) -> list[list[str]]:
    """`sampling.n` answers to each already-rendered prompt, `batch_size` prompts per call, left-padded.

    Left padding puts every prompt's last token at the same position, so one `generate` call continues
    them all; the attention mask keeps the pads out. `advance(k)` is called after each batch of k prompts.
    """
    model.eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    answers: list[list[str]] = []
    for start in range(0, len(prompts), sampling.batch_size):
        batch = prompts[start : start + sampling.batch_size]
        inputs = tokenizer(batch, return_tensors="pt", padding=True).to(model.device)
        sampled = {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p}
        generated = model.generate(
            **inputs,
            **(sampled if sampling.temperature > 0 else {"do_sample": False}),
            num_return_sequences=sampling.n,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
        )
        texts = tokenizer.batch_decode(generated[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        answers += [texts[i : i + sampling.n] for i in range(0, len(texts), sampling.n)]  # prompt-major order
        if advance is not None:
            advance(len(batch))
    return answers


def policy_card(run_dir: str | Path) -> dict[str, Any]:
    """The run card of a run that writes text; a reward model's is refused in one line."""
    card = read_run_card(run_dir)
    if card.get("verb") == "reward":
        raise CurateError(
            f"{run_dir}: a reward model (`train reward`) scores answers but does not write them: generate with a "
            "`train sft` (or dpo) run, and score answers with `train score`"
        )
    return card


def load_run(run_dir: str | Path, dtype: str = "auto") -> tuple[Any, Any, dict[str, Any]]:
    """Model (base + adapter, or a merged model), tokenizer and run card of a run that writes text (not a reward run)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = Path(run_dir)
    card = policy_card(run)
    torch_dtype = resolve_dtype(dtype)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(run)
    model: Any
    if (run / "adapter_config.json").is_file():
        from peft import PeftModel

        base_path = card.get("base_model_path") or card["base_model"]
        if not Path(base_path).exists():
            base_path = model_path(card["base_model"])  # e.g. the model cache was cleared: materialize again
        base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch_dtype)
        model = PeftModel.from_pretrained(base, run)
    elif (run / "config.json").is_file():
        model = AutoModelForCausalLM.from_pretrained(run, dtype=torch_dtype)
    else:
        raise CurateError(f"{run_dir}: holds neither an adapter nor model weights (was training interrupted?)")
    return model.to(device), tokenizer, card


def model_tag(run_dir: Path, card: dict[str, Any]) -> str:
    """How an answer's model is named in the items file: the run (its directory's name) and its base model."""
    return f"{run_dir.resolve().name} ({card.get('base_model')})"


REVIEW_SOURCE = "review:"  # --prompts review:PROJECT: the prompts of a review project


def read_prompts(source: str, column: str = "prompt", db: str | None = None) -> tuple[list[str], bool]:
    """Distinct prompts of SRC in first-seen order, and whether they are already rendered (an export's template).

    SRC: an export directory (its `prompt` column, or the user turn of one-turn `messages`), a JSONL, CSV or
    Parquet file with a `column` of prompts, or `review:PROJECT` (the project's prompts in the review database
    `db`). Errors name the file, row and field.
    """
    from curate.io.manifest import has_manifest, read_manifest
    from curate.io.readers import read_rows

    if source.startswith(REVIEW_SOURCE):
        from curate.review.store import ReviewStore
        from curate.review.types import resolve_url

        store = ReviewStore(resolve_url(db), operator=True)
        asked = store.prompts(source[len(REVIEW_SOURCE) :])
        store.close()
        if not asked:
            raise CurateError(f"--prompts {source}: the project has no prompts yet")
        return asked, False
    path = Path(source)
    rendered = False
    files = source
    if path.is_dir() and has_manifest(path):
        manifest = read_manifest(path)
        rendered = bool(manifest.template and manifest.template.name)
        files = str(path / "data")
    prompts: dict[str, None] = {}
    for raw in read_rows([files]):
        value = raw.data.get(column)
        if value is None and column == "prompt" and "messages" in raw.data:
            users = [m["content"] for m in raw.data["messages"] if m.get("role") == "user"]
            value = users[0] if len(users) == 1 else None
            if value is None:
                raise CurateError(
                    f"{raw.source} {raw.unit} {raw.row}: field 'messages': a conversation of {len(users)} user turns "
                    "is not one prompt to answer"
                )
        if not isinstance(value, str) or not value.strip():
            problem = "missing" if value is None else "not a non-empty text"
            raise CurateError(
                f"{raw.source} {raw.unit} {raw.row}: field '{column}': {problem} (choose the column with "
                "--prompt-column)"
            )
        prompts.setdefault(value)
    return list(prompts), rendered


def collect_items(prompts: list[str], answers_by_run: list[tuple[str, list[list[str]]]]) -> tuple[list[dict], int, int]:
    """Items for `curate review import`: per prompt, every run's answers with their model tags.

    Whitespace around answers is trimmed; an empty answer is dropped (the import refuses it) and an answer
    two samples or runs wrote word for word is kept once, tagged with every model that wrote it. Returns
    the items (prompts left with no answer are left out), and the counts of empty and merged answers.
    """
    from curate.review.types import ReviewItem

    items, empty, merged = [], 0, 0
    for i, prompt in enumerate(prompts):
        tags: dict[str, list[str]] = {}
        for tag, answers in answers_by_run:
            for text in answers[i]:
                text = text.strip()
                if not text:
                    empty += 1
                elif text in tags:
                    merged += 1
                    tags[text] += [tag] if tag not in tags[text] else []
                else:
                    tags[text] = [tag]
        if tags:
            item = ReviewItem(prompt=prompt, answers=list(tags), models=[" | ".join(t) for t in tags.values()])
            items.append(item.model_dump(exclude_none=True))
    return items, empty, merged


def generate_items(
    runs: list[Path],
    source: str,
    out: Path,
    sampling: Sampling,
    prompt_column: str = "prompt",
    raw: bool = False,
    dtype: str = "auto",
    quiet: bool = False,
    db: str | None = None,
) -> dict[str, Any]:
    """Sample `sampling.n` answers per prompt of `source` from every run; write the review items file `out`.

    Every run is checked (a run card, not a reward model) before any model loads. Returns counts for the summary.
    """
    from transformers import set_seed

    cards = [policy_card(run) for run in runs]
    tags = [model_tag(run, card) for run, card in zip(runs, cards, strict=True)]
    if len(set(tags)) < len(tags):
        raise CurateError(f"the runs {', '.join(map(str, runs))} share a name: each run's answers need their own tag")
    prompts, rendered = read_prompts(source, prompt_column, db)
    if rendered and not raw and not quiet:
        console.print(f"{source}: its prompts are already rendered with the export's template; sent as they are")
    answers_by_run: list[tuple[str, list[list[str]]]] = []
    with progress_bar(unit="prompts", disable=quiet) as bar:
        for run, tag in zip(runs, tags, strict=True):
            model, tokenizer, card = load_run(run, dtype)
            inputs = prompts if raw or rendered else [render_prompt(card, p, tokenizer) for p in prompts]
            limit = sampling.max_new_tokens or card.get("generation", {}).get("max_new_tokens", 64)
            task = bar.add_task(run.resolve().name[:16], total=len(prompts))
            set_seed(sampling.seed)
            answers = sample_answers(
                model, tokenizer, inputs, sampling, limit, lambda k, task=task: bar.advance(task, k)
            )
            answers_by_run.append((tag, answers))
            del model  # one run's weights in memory at a time
            gc.collect()
    items, empty, merged = collect_items(prompts, answers_by_run)
    if not items:
        raise CurateError(f"every answer the runs wrote was empty: nothing written to {out}")
    replace_file(out, "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items).encode())
    return {
        "prompts": len(prompts),
        "items": len(items),
        "answers": sum(len(item["answers"]) for item in items),
        "empty": empty,
        "merged": merged,
        "models": tags,
    }


# Sampling's keys as flags (type, help and default from its fields); --max-new-tokens serves --prompt too.
SAMPLING_FLAGS = (
    Flag("n"),
    Flag("temperature"),
    Flag("top_p"),
    Flag("seed"),
    Flag("max_new_tokens"),
    Flag("batch_size"),
)


@user_errors
@with_flags(Sampling, SAMPLING_FLAGS)
def generate_command(
    run_dir: Annotated[
        Optional[Path], typer.Argument(help="A run directory from `train sft` (or a `train merge` output).")
    ] = None,
    prompt: Annotated[
        Optional[list[str]],
        typer.Option("--prompt", "-p", help="Text to answer (repeatable); rendered with the data's template."),
    ] = None,
    prompts: Annotated[
        Optional[str],
        typer.Option(
            help="Answer every prompt of an export directory, a JSONL/CSV/Parquet file or review:PROJECT (needs --out)."
        ),
    ] = None,
    db: Annotated[
        Optional[str], typer.Option("--db", help="--prompts review:PROJECT: the review database (as curate review).")
    ] = None,
    runs: Annotated[
        Optional[list[Path]], typer.Option("--run", help="--prompts: another run answering the same prompts.")
    ] = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="--prompts: the items file to write (JSONL).")
    ] = None,
    flags: FlagValues = None,
    prompt_column: Annotated[str, typer.Option(help="--prompts: the column holding the prompts.")] = "prompt",
    num_beams: Annotated[
        Optional[int], typer.Option(help="--prompt: beam search width (default: the run's generation.num_beams).")
    ] = None,
    raw: Annotated[bool, typer.Option("--raw", help="Send the prompt as is, without the data's template.")] = False,
    dtype: Annotated[str, typer.Option(help="auto | bf16 | fp16 | fp32 (auto: fp32 on CPU).")] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="--prompts: no progress bar.")] = False,
) -> None:
    """Generate with trained runs, rendering each prompt with the template its data was built with.

    --prompt TEXT prints one run's answers; --prompts SRC --out FILE samples --n answers per prompt from
    every run and writes the items file `curate review import` takes, each answer tagged with its run.

    \b
    Examples:
      train generate runs/latex-sft --num-beams 2 --max-new-tokens 24 \\
          --prompt "g of x equals integral from 0 to 1 of x squared"
      train generate runs/qa-sft --run runs/qa-dpo --prompts out/qa-sft --n 4 \\
          --temperature 0.8 --out out/qa-items.jsonl
      train generate runs/qa-sft --prompts review:qa --out out/qa-new.jsonl
    """
    if dtype not in ("auto", "bf16", "fp16", "fp32"):
        raise CurateError(f"--dtype {dtype}: use auto, bf16, fp16 or fp32")
    all_runs = ([run_dir] if run_dir else []) + list(runs or [])
    if not all_runs:
        raise CurateError("give a run directory to generate with (RUN_DIR, or --run RUN)")
    if prompts is not None:
        if prompt:
            raise CurateError("give --prompt TEXT or --prompts SRC, not both")
        if out is None:
            raise CurateError("--prompts needs --out FILE: the items file to write")
        sampling = from_flags(Sampling, SAMPLING_FLAGS, flags or {})
        done = generate_items(all_runs, prompts, out, sampling, prompt_column, raw, dtype, quiet, db)
        console.print(
            f"{done['answers']} answers to {done['items']} prompts from {', '.join(map(escape, done['models']))} "
            f"→ [bold]{escape(str(out))}[/] ({done['merged']} duplicate(s) merged, {done['empty']} empty dropped); "
            f"import with `curate review import {escape(str(out))} --project P`",
            highlight=False,
        )
        return
    if not prompt:
        raise CurateError("give --prompt TEXT (repeatable) or --prompts SRC --out FILE")
    sampled = [flag.option for flag in SAMPLING_FLAGS if flag.key != "max_new_tokens" and flag.key in (flags or {})]
    if sampled:
        raise CurateError(
            f"{', '.join(sampled)}: sampling options of --prompts; --prompt decodes greedily (--num-beams)"
        )
    if len(all_runs) > 1:
        raise CurateError("--prompt answers with one run; to compare runs, use --prompts SRC --out FILE")
    model, tokenizer, card = load_run(all_runs[0], dtype)
    generation = card.get("generation", {})
    rendered = [text if raw else render_prompt(card, text, tokenizer) for text in prompt]
    outputs = generate_texts(
        model,
        tokenizer,
        rendered,
        num_beams=num_beams or generation.get("num_beams", 1),
        max_new_tokens=(flags or {}).get("max_new_tokens") or generation.get("max_new_tokens", 64),
    )
    for text, output in zip(prompt, outputs, strict=True):
        console.print(f"[dim]{escape(text)}[/]", highlight=False)
        console.print(output.strip(), highlight=False, markup=False)
