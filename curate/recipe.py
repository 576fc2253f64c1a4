"""`curate build` recipes: a pydantic model, loaded from YAML, overridable from the CLI.

A recipe file opens with a comment giving the command that runs it (see recipes/).
Unknown keys are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from curate.errors import CurateError
from curate.schema import Kind


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NormalizeConfig(_Section):
    """Text cleaning: rows with a required text field shorter than `min_chars` are dropped."""

    min_chars: int = Field(default=1, ge=0)
    lowercase_match: bool = False  # compare case-insensitively; stored text keeps its case


class SemanticDedupeConfig(_Section):
    """Near-duplicate removal by embedding similarity (keep rule in curate/similarity/dedupe.py).

    Rows are visited in input order; a row is dropped if the cosine similarity of its `fields`'
    embedding to an already kept row is >= `threshold`. The threshold is a hyperparameter to tune
    per embedder and data: `curate dedupe --sweep 0.80:0.99:0.01` shows what each value drops.
    """

    fields: list[str] | None = None  # text fields embedded (joined); default: the kind's main text
    threshold: float = Field(default=0.95, ge=-1.0, le=1.0)
    embedder: str = "all-MiniLM-L6-v2"  # sentence-transformers name or path (offline copy by default)
    index: Literal["auto", "exact", "ivf", "hnsw"] = "auto"  # auto: exact up to 20k rows, ivf above
    device: str | None = None  # embedding device: cpu, cuda (default: cuda when available)
    backend: Literal["auto", "bf16", "onnx", "torch"] = "auto"  # curate/similarity/embed.py; onnx/torch = exact fp32
    cross_split: Literal["move", "drop", "report", "off"] = "move"  # test rows near a train row


class DedupeConfig(_Section):
    """Exact dedupe on normalized `fields` (default: the kind's content fields); optional semantic dedupe."""

    exact: bool = True
    fields: list[str] | None = None
    semantic: SemanticDedupeConfig | None = None


class SplitConfig(_Section):
    """Seeded split; rows sharing a `group_by` value never straddle train and test."""

    test_size: float = Field(default=0.2, ge=0.0, lt=1.0)
    seed: int = 42
    group_by: str | None = None


class RatingsConfig(_Section):
    """Thresholds for `derive` (rules in curate/review/ratings.py): SFT min mean rating, pair min gap, margin scale."""

    min_rating: float = Field(default=7.0, ge=1.0, le=10.0)
    min_gap: float = Field(default=2.0, ge=0.0, le=9.0)
    margin_scale: float = Field(default=1.0, ge=0.0)
    min_ratings: int = Field(default=1, ge=1)


class LengthsConfig(_Section):
    """Token-length analysis of the formatted rows (curate/lengths.py); rows outside [min_tokens, max_tokens] are dropped."""

    tokenizer: str = "smollm2"
    max_length: int | None = Field(default=None, ge=1)  # cut to report truncation at (default: the recommended one)
    min_tokens: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=1)


class BuildRecipe(_Section):
    """Everything `curate build` needs; the same recipe and inputs give byte-identical data files."""

    name: str | None = None
    inputs: list[str] = Field(default_factory=list)
    out: str | None = None
    kind: Kind | None = None
    map: dict[str, str] = Field(default_factory=dict)
    ignore: list[str] = Field(default_factory=list)
    skip_invalid: bool = False
    system_prompt: str | None = None
    normalize: NormalizeConfig = Field(default_factory=NormalizeConfig)
    dedupe: DedupeConfig = Field(default_factory=DedupeConfig)
    template: str | None = None
    # None: prompt-completion with a template; instruction rows without one become messages (curate/steps/template.py)
    format: Literal["prompt-completion", "messages", "text"] | None = None
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
    derive: Literal["sft", "preference", "reward"] | None = None  # rated input -> this dataset
    ratings: RatingsConfig = Field(default_factory=RatingsConfig)
    lengths: LengthsConfig | None = None  # token-length analysis after the template step

    @property
    def export_name(self) -> str:
        return self.name or Path(self.out or "export").name


def load_recipe(path: str | Path) -> BuildRecipe:
    """Read and validate a YAML recipe; errors name the file and the key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise CurateError(f"{path}: cannot read the recipe ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise CurateError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise CurateError(f"{path}: a recipe is a mapping of keys to values")
    return recipe_from_dict(raw, str(path))


def recipe_from_dict(raw: dict[str, Any], origin: str = "recipe") -> BuildRecipe:
    """Validate a recipe given as a dict (from YAML or the CLI)."""
    try:
        return BuildRecipe.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise CurateError(f"{origin}: '{key}': {message}") from None


def apply_overrides(recipe: BuildRecipe, overrides: dict[str, Any]) -> BuildRecipe:
    """Return a copy with dotted keys (`split.seed`) replaced; None values are ignored."""
    data = recipe.model_dump()
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            if node.get(part) is None:  # setting a key of an absent optional section (e.g. lengths) enables it
                node[part] = {}
            node = node[part]
        node[leaf] = value
    return recipe_from_dict(data, "command line")
