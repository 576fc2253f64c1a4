"""`curate build` recipes: a pydantic model whose fields declare each key once (default + help).

A recipe file opens with a comment giving the command that runs it (see recipes/). It is read
by curate/config.py's one loader, like the `train` recipes: `KEY=VALUE` arguments and the
flags of `curate build` set the same dotted keys. Unknown keys are errors, so a typo never
silently falls back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from curate.config import merge, read_yaml, validate
from curate.schema import Kind


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NormalizeConfig(_Section):
    """Text cleaning: rows with a required text field shorter than `min_chars` are dropped."""

    min_chars: int = Field(default=1, ge=0, description="Drop rows with a required text field shorter than this.")
    lowercase_match: bool = Field(
        default=False, description="Compare case-insensitively in exact dedupe; stored text keeps its case."
    )


class SemanticDedupeConfig(_Section):
    """Near-duplicate removal by embedding similarity (keep rule in curate/similarity/dedupe.py).

    Rows are visited in input order; a row is dropped if the cosine similarity of its `fields`'
    embedding to an already kept row is >= `threshold`. The threshold is a hyperparameter to tune
    per embedder and data: `curate dedupe --sweep 0.80:0.99:0.01` shows what each value drops.
    """

    fields: list[str] | None = Field(default=None, description="Text fields embedded (joined); null: the kind's text.")
    threshold: float = Field(
        default=0.95,
        ge=-1.0,
        le=1.0,
        description="Drop a row this cosine-similar to an earlier kept row; tune it with `curate dedupe --sweep`.",
    )
    embedder: str = Field(
        default="all-MiniLM-L6-v2", description="sentence-transformers name or path (offline copy by default)."
    )
    index: Literal["auto", "exact", "ivf", "hnsw"] = Field(
        default="auto", description="Similarity search; auto: exact up to 20k rows, ivf above."
    )
    device: str | None = Field(default=None, description="Embedding device: cpu or cuda; null: cuda when present.")
    backend: Literal["auto", "bf16", "onnx", "torch"] = Field(
        default="auto", description="Embedding backend (curate/similarity/embed.py); onnx/torch: exact fp32."
    )
    cross_split: Literal["move", "drop", "report", "off"] = Field(
        default="move", description="Test rows >= threshold similar to a train row: move them to train, drop, ..."
    )


class DedupeConfig(_Section):
    """Exact dedupe on normalized `fields` (default: the kind's content fields); optional semantic dedupe."""

    exact: bool = Field(default=True, description="Drop exact duplicates after normalization.")
    fields: list[str] | None = Field(
        default=None, description="Fields compared by exact dedupe; null: the kind's content fields."
    )
    semantic: SemanticDedupeConfig | None = Field(
        default=None, description="Semantic dedupe, off unless set (setting any of its keys turns it on)."
    )


class SplitConfig(_Section):
    """Seeded split; rows sharing a `group_by` value never straddle train and test."""

    test_size: float = Field(default=0.2, ge=0.0, lt=1.0, description="Share of rows (or groups) in the test split.")
    seed: int = Field(default=42, description="Seed of the split.")
    group_by: str | None = Field(default=None, description="Column whose equal values stay in one split.")


class RatingsConfig(_Section):
    """Rules turning ratings into datasets (curate/review/ratings.py): thresholds, calibration, agreement, judge gate.

    Used by `derive` in a build and by `curate review export`.
    """

    min_rating: float = Field(
        default=7.0, ge=1.0, le=10.0, description="derive sft: keep a prompt's best answer if its mean is >= this."
    )
    min_gap: float = Field(
        default=2.0, ge=0.0, le=9.0, description="derive preference: pair answers whose means differ by >= this."
    )
    margin_scale: float = Field(default=1.0, ge=0.0, description="derive preference: margin = rating gap x this.")
    min_ratings: int = Field(default=1, ge=1, description="Leave out answers rated by fewer labelers than this.")
    calibrate: bool = Field(
        default=False,
        description="Use calibrated ratings (each rater's lean and spread against the other raters removed) "
        "for means, margins and agreement.",
    )
    min_agreement: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Drop rows whose raters agree less than this (0-1; see `agreement`); null: keep every row.",
    )
    judge_min_alpha: float = Field(
        default=0.667,
        ge=-1.0,
        le=1.0,
        description="A judge's ratings count only if its Krippendorff alpha against the human consensus reaches "
        "this (0.667: Krippendorff's lowest bar for tentative conclusions).",
    )
    judge_min_items: int = Field(
        default=20,
        ge=1,
        description="The judge gate needs at least this many answers the judge and a human both rated.",
    )
    judge_fill: bool = Field(
        default=True,
        description="A judge that passed the gate also rates answers no human rated (rows marked judge_only).",
    )


class LengthsConfig(_Section):
    """Token-length analysis of the formatted rows (curate/lengths.py); rows outside [min_tokens, max_tokens] are dropped."""

    tokenizer: str = Field(default="smollm2", description="Tokenizer counted with: smollm2 (offline), hub id or path.")
    max_length: int | None = Field(
        default=None, ge=1, description="Report what this max_length truncates; null: the recommended one."
    )
    min_tokens: int | None = Field(default=None, ge=0, description="Drop formatted rows with fewer tokens.")
    max_tokens: int | None = Field(default=None, ge=1, description="Drop formatted rows with more tokens.")


class InputSource(_Section):
    """One source of a build, sampled with the build's seed (`split.seed`); its rows keep its name as `source`.

    `weight` keeps that fraction of the source's valid rows, `max_rows` at most that many (a seeded sample,
    in input order). Upsampling is not offered: repeated rows would be dropped again by exact dedupe.
    """

    path: str = Field(description="A file, directory, saved HF dataset or hf:NAME[:split].")
    name: str | None = Field(default=None, description="The `source` value of its rows (default: the path).")
    weight: float | None = Field(default=None, gt=0.0, le=1.0, description="Keep this fraction of its rows.")
    max_rows: int | None = Field(default=None, ge=1, description="Keep at most this many of its rows.")
    map: dict[str, str] = Field(default_factory=dict, description="Column renames OLD: NEW for this source only.")

    @model_validator(mode="after")
    def _one_way_to_sample(self) -> InputSource:
        if self.weight is not None and self.max_rows is not None:
            raise ValueError("give a source either a weight or max_rows, not both")
        return self

    @property
    def label(self) -> str:
        """The name its rows carry in the `source` column and the per-source counts."""
        return self.name or self.path


class BuildRecipe(_Section):
    """Everything `curate build` needs; the same recipe and inputs give byte-identical data files."""

    name: str | None = Field(default=None, description="Export name; null: the out directory's name.")
    inputs: list[str | InputSource] = Field(
        default_factory=list,
        description="JSONL, CSV, Parquet files or directories, saved HF datasets, hf:NAME[:split]; or sources "
        "{path, name, weight | max_rows, map} to mix.",
    )
    out: str | None = Field(default=None, description="Export directory to write (replaced atomically).")
    kind: Kind | None = Field(default=None, description="Record kind; null: detected from the columns.")
    map: dict[str, str] = Field(
        default_factory=dict, description="Rename input columns, {old: new} (flag: --map OLD=NEW, repeatable)."
    )
    ignore: list[str] = Field(default_factory=list, description="Input columns dropped before validation.")
    skip_invalid: bool = Field(
        default=False, description="Drop bad rows and list them in invalid_rows.jsonl; false: stop at the first."
    )
    system_prompt: str | None = Field(default=None, description="System prompt for instruction rows that have none.")
    normalize: NormalizeConfig = Field(default_factory=NormalizeConfig)
    dedupe: DedupeConfig = Field(default_factory=DedupeConfig)
    template: str | None = Field(
        default=None,
        description="Prompt template: chat-template:<tokenizer> (its own), latex, alpaca, llama2, chatml, or a Jinja2 file.",
    )
    format: Literal["prompt-completion", "messages", "text"] | None = Field(
        default=None,
        description="TRL dataset format of the export; null: prompt-completion with a template, instruction rows "
        "without one become messages (curate/steps/template.py).",
    )
    default_system_prompt: bool = Field(
        default=False,
        description="Let a chat template add its own default system prompt to rows without one (SmolLM2's "
        "'You are a helpful AI assistant named SmolLM...'); off: such rows get an empty system turn.",
    )
    strict: bool = Field(
        default=False,
        description="Refuse, instead of warning, when the template writes special tokens the lengths tokenizer lacks.",
    )
    split: SplitConfig = Field(default_factory=SplitConfig)
    derive: Literal["sft", "preference", "reward"] | None = Field(
        default=None, description="From rated rows, export: the best answer per prompt, pairs, or every answer."
    )
    ratings: RatingsConfig = Field(default_factory=RatingsConfig)
    lengths: LengthsConfig | None = Field(
        default=None, description="Token-length analysis after the template step, off unless set."
    )

    @field_validator("inputs", mode="before")
    @classmethod
    def _sources_from_mappings(cls, value: Any) -> Any:
        # Validated here so a typo names the source and key, not the str/InputSource union's members.
        if not isinstance(value, list):
            return value
        inputs = []
        for number, item in enumerate(value, start=1):
            if isinstance(item, dict):
                try:
                    item = InputSource.model_validate(item)
                except ValidationError as exc:
                    first = exc.errors()[0]
                    key = ".".join(str(p) for p in first["loc"]) or "(source)"
                    message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
                    raise PydanticCustomError(
                        "input_source", f"source {number}: '{key}': {message.removeprefix('Value error, ')}"
                    ) from None
            inputs.append(item)
        labels = [i.label if isinstance(i, InputSource) else i for i in inputs]
        repeated = sorted({label for label in labels if isinstance(label, str) and labels.count(label) > 1})
        if repeated and any(isinstance(i, InputSource) for i in inputs):
            raise PydanticCustomError(
                "input_source", f"two sources are called '{repeated[0]}': give each a distinct `name`"
            )
        return inputs

    @property
    def sources(self) -> list[InputSource]:
        """Every input as a source (a plain path: all its rows, its columns mapped by `map` only)."""
        return [i if isinstance(i, InputSource) else InputSource(path=i) for i in self.inputs]

    @property
    def mixes_sources(self) -> bool:
        """True when rows should carry their source: several inputs, or any given as a source mapping."""
        return len(self.inputs) > 1 or any(isinstance(i, InputSource) for i in self.inputs)

    @property
    def export_name(self) -> str:
        return self.name or Path(self.out or "export").name


def load_recipe(path: str | Path) -> BuildRecipe:
    """Read and validate a YAML recipe; errors name the file and the key."""
    return recipe_from_dict(read_yaml(path), str(path))


def recipe_from_dict(raw: dict[str, Any], origin: str = "recipe") -> BuildRecipe:
    """Validate a recipe given as a dict (from YAML or the CLI)."""
    return validate(BuildRecipe, raw, origin)


def apply_overrides(recipe: BuildRecipe, overrides: dict[str, Any]) -> BuildRecipe:
    """Return a copy with dotted keys (`split.seed`) set; None values are left out (not given)."""
    return recipe_from_dict(merge(recipe.model_dump(), overrides), "command line")
