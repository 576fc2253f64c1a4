"""The export manifest: the contract between `curate build` (which writes it) and `train` (which reads it).

A typed, versioned model in the spirit of HF `datasets`' `DatasetInfo`: validated when it is written
and when it is read, so a broken manifest, or one from a newer curatrain, stops with one line
instead of a `KeyError` deep inside training. Build steps fill their own section of `StepSections`
(`ctx.manifest.split = SplitInfo(...)`); the pipeline adds what the whole build knows (`BuildInfo`);
the export writer adds the identity of the files it wrote (`Manifest`).

Versioning: `SCHEMA_VERSION` goes up whenever a field is added, renamed or changes meaning. A reader
accepts its own and older versions (new fields are optional, so older manifests still validate) and
refuses newer ones with a line saying to upgrade. `docs/design.md` lists the fields
(`python -m curate.io.manifest` prints that table; a test keeps the two in sync).
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from curate.errors import CurateError
from curate.io.owned import MARKER_FIELD, WRITTEN_BY, Marker
from curate.lengths import LengthStats
from curate.recipe import RatingsConfig
from curate.schema import Kind

# 2: template.default_system_prompt, template.last_turn_only_rows, notes; 3: skipped_files, per-source counts;
# 4: derive.raters
SCHEMA_VERSION = 4
MANIFEST = "manifest.json"


class Section(BaseModel):
    """A manifest section: unknown keys are errors (a newer schema bumps `schema_version` instead)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Counts(Section):
    """Rows read, rows refused by validation, and rows in each split of the export."""

    rows_read: int = Field(ge=0)
    invalid: int = Field(ge=0, description="rows that failed validation (listed in invalid_rows.jsonl)")
    splits: dict[str, int] = Field(description="rows per split written, e.g. {train: 40, test: 10}")


class StepCount(Section):
    """Rows into and out of one build step, and its time."""

    step: str = Field(description="the step's name, e.g. normalize, exact_dedupe, split")
    rows_in: int = Field(ge=0)
    rows_out: int = Field(ge=0)
    dropped: int = Field(ge=0, description="rows_in - rows_out")
    seconds: float = Field(ge=0)


class SourceInfo(Section):
    """One input as given (file, directory or `hf:` dataset) and the sha256 of its bytes.

    Per-source counts (rows read, invalid, kept) belong here, beside the path they describe.
    """

    path: str = Field(description="the input as given")
    sha256: str = Field(description="sha256:<hex> of the file (a directory: of all its files), or 'remote'")
    # With several sources (or any given as {path, name, weight | max_rows, map}): its rows through the build.
    name: str | None = Field(default=None, description="the source's name, its rows' `source` column")
    rows_read: int | None = Field(default=None, ge=0, description="rows read from it")
    invalid: int | None = Field(default=None, ge=0, description="of those, rows that failed validation")
    sample: str | None = Field(default=None, description="how it was sampled ('weight 0.5', 'max_rows 100')")
    kept: int | None = Field(default=None, ge=0, description="valid rows its sample kept")
    steps: dict[str, int] | None = Field(default=None, description="step -> its rows left after that step")
    splits: dict[str, int] | None = Field(default=None, description="split -> its rows exported there")


class SkippedFile(Section):
    """A file in an input directory that was not read (another type, hidden, a .gz of unknown content)."""

    path: str = Field(description="the file")
    reason: str = Field(description="why it was not read")


class TemplateInfo(Section):
    """How the rows were rendered: the prompt template (None: raw strings) and the TRL format."""

    name: str | None = Field(description="template name (curate/templates.py), None for untemplated text")
    format: Literal["prompt-completion", "messages", "text"] = Field(description="TRL dataset format of the rows")
    default_system_prompt: bool = Field(
        default=False, description="a chat template may add its own default system prompt (else an empty system turn)"
    )
    last_turn_only_rows: int = Field(
        default=0, ge=0, description="multi-turn rows written as prompt-completion: only their last answer is learned"
    )


class SplitInfo(Section):
    """The seeded train/test split."""

    test_size: float = Field(ge=0, lt=1, description="share of groups sent to test")
    seed: int
    group_by: str | None = Field(description="column whose equal values stay in one split (None: each row)")
    groups: int = Field(ge=0, description="groups split")
    test_groups: int = Field(ge=0, description="groups in test")


class SemanticDedupeInfo(Section):
    """Near-duplicate removal by embedding cosine similarity (keep rule: curate/similarity/dedupe.py)."""

    fields: list[str] = Field(description="the text fields embedded (joined)")
    threshold: float = Field(description="a row >= this cosine similar to an earlier kept row is dropped")
    embedder: str = Field(description="sentence-transformers model name or path")
    embed_backend: str = Field(description="bf16, onnx or torch (curate/similarity/embed.py)")
    dim: int = Field(ge=1, description="embedding dimension")
    index: str = Field(description="FAISS search used: exact, ivf or hnsw")
    rows_in: int = Field(ge=0)
    dropped: int = Field(ge=0)
    kept: int = Field(ge=0)
    seconds_embed: float = Field(ge=0)
    seconds_search: float = Field(ge=0)


class CrossSplitPair(Section):
    """A test row found near a train row."""

    test_id: str
    train_id: str
    similarity: float


class CrossSplitInfo(Section):
    """Test rows >= threshold similar to a train row, and what was done with them."""

    threshold: float
    embedder: str
    action: Literal["move", "drop", "report"] = Field(description="what happened to flagged test rows")
    train_rows: int = Field(ge=0)
    test_rows: int = Field(ge=0)
    flagged: int = Field(ge=0, description="test rows >= threshold similar to a train row")
    moved: int = Field(ge=0, description="test rows moved to train (whole groups with split.group_by)")
    dropped: int = Field(ge=0)
    examples: list[CrossSplitPair] = Field(description="the first flagged pairs (at most 20)")


class JudgeInfo(Section):
    """An LLM judge against the human consensus on the answers both rated, and whether it passed the trust gate."""

    name: str = Field(description="the judge's labeler name (its model)")
    shared: int = Field(ge=0, description="answers the judge and at least one human rated")
    alpha: float | None = Field(description="Krippendorff's interval alpha, judge vs mean human rating")
    spearman: float | None = Field(description="Spearman's rho, judge vs mean human rating")
    mean_offset: float | None = Field(description="mean of judge - human consensus (> 0: the judge is more generous)")
    counted: bool = Field(description="passed the gate: its ratings count in the rows")
    reason: str = Field(description="why it counts or not, in words")


class RaterInfo(Section):
    """Who rated the usable answers and how much they agreed (rules: curate/review/ratings.py)."""

    humans: int = Field(ge=0, description="distinct human raters")
    alpha_humans: float | None = Field(description="Krippendorff's ordinal alpha of the human ratings")
    alpha_with_judges: float | None = Field(description="the same over humans and the judges that count")
    alpha_calibrated: float | None = Field(description="interval alpha of the calibrated ratings (ratings.calibrate)")
    calibrated: bool = Field(description="means, margins and agreement use calibrated ratings (ratings.calibrate)")
    judges: list[JudgeInfo] = Field(description="every judge found in the ratings, counted or not")
    judge_only_rows: int = Field(ge=0, description="rows made only of a judge's ratings (no human rated them)")


class DeriveInfo(Section):
    """How rated rows became the exported set (rules: curate/review/ratings.py)."""

    kind: Literal["sft", "preference", "reward"] = Field(description="the derived dataset")
    rules: RatingsConfig
    ratings: int = Field(ge=0, description="rating rows read")
    answers: int = Field(ge=0, description="distinct (prompt, answer) pairs rated")
    prompts: int = Field(ge=0, description="distinct prompts")
    rows: int = Field(ge=0, description="rows derived")
    skipped: dict[str, int] = Field(description="reason -> answers or prompts left out")
    raters: RaterInfo | None = Field(default=None, description="who rated, how much they agreed, the judges' gate")


class LengthsInfo(Section):
    """Token lengths of the formatted rows, counted with `tokenizer` (curate/lengths.py).

    `recommended_max_length` holds for that tokenizer only: `train` recounts with the model's own
    tokenizer when they differ.
    """

    tokenizer: str = Field(description="the tokenizer the counts are in (a model name, alias or path)")
    stats: LengthStats | None = Field(description="min/mean/p50/p90/p95/p99/max of the kept rows; None: no rows")
    recommended_max_length: int | None = Field(description="smallest multiple of 64 >= p99 (what `train` uses)")
    max_length: int | None = Field(default=None, description="the cut truncation is reported at")
    truncated_rows: int | None = Field(default=None, ge=0, description="rows longer than max_length")
    truncated_tokens: int | None = Field(default=None, ge=0, description="tokens those rows lose at max_length")
    rule: str | None = Field(default=None, description="how recommended_max_length was chosen, in words")
    min_tokens: int | None = Field(default=None, description="rows with fewer tokens were dropped")
    max_tokens: int | None = Field(default=None, description="rows with more tokens were dropped")
    dropped: int = Field(default=0, ge=0, description="rows outside [min_tokens, max_tokens]")


class StepSections(Section):
    """What the build steps report, one section per step that ran (None: the step did not run)."""

    template: TemplateInfo | None = None
    split: SplitInfo | None = None
    semantic_dedupe: SemanticDedupeInfo | None = None
    cross_split: CrossSplitInfo | None = None
    derive: DeriveInfo | None = None
    lengths: LengthsInfo | None = None


class BuildInfo(StepSections):
    """Everything a build knows about its export, before the files are written."""

    name: str = Field(description="the export's name (recipe `name`, else the --out folder name)")
    kind: Kind = Field(description="record kind of the exported rows")
    columns: list[str] = Field(description="the data files' columns, in order")
    counts: Counts
    steps: list[StepCount]
    dropped_reasons: dict[str, int] = Field(description="'step: reason' -> rows (each in duplicates.parquet)")
    notes: list[str] = Field(
        default_factory=list, description="warnings the build printed (template vs tokenizer, ...)"
    )
    sources: list[SourceInfo]
    skipped_files: list[SkippedFile] = Field(
        default_factory=list, description="files in the input directories that were not read, and why"
    )
    recipe: dict[str, Any] = Field(description="the resolved build recipe (curate/recipe.py BuildRecipe)")
    versions: dict[str, str] = Field(description="python and the packages that shaped the export")


class Manifest(BuildInfo):
    """manifest.json of an export directory: the build's info plus the identity of the files written."""

    schema_version: int = Field(default=SCHEMA_VERSION, ge=1, description="the manifest schema this file follows")
    written_by: Marker = Field(default=WRITTEN_BY, description="marks an export this tool wrote (and may replace)")
    content_hash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$", description="sha256 over data/*.parquet")
    files: list[str] = Field(description="every file of the export directory")

    def to_json(self) -> str:
        """The manifest.json text: every field in FIELD_ORDER, sections of steps that did not run as null."""
        dumped = self.model_dump(mode="json")
        return json.dumps({key: dumped[key] for key in FIELD_ORDER}, indent=2, ensure_ascii=False) + "\n"


# The order of manifest.json's keys: identity, what was built, how (one section per step), from what, files.
FIELD_ORDER = (
    "schema_version",
    "written_by",
    "name",
    "kind",
    "columns",
    "counts",
    "steps",
    "dropped_reasons",
    "notes",
    *StepSections.model_fields,
    "sources",
    "skipped_files",
    "recipe",
    "versions",
    "content_hash",
    "files",
)


def first_error(exc: ValidationError) -> str:
    """The first problem of a validation error as `field 'a.b': message`."""
    error = exc.errors()[0]
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
    return f"field '{key}': {message}"


def parse_manifest(text: str, where: str) -> Manifest:
    """Validate manifest.json text; every problem is one CurateError line naming `where`."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CurateError(f"{where}: not valid JSON (line {exc.lineno}: {exc.msg}); rebuild the export") from None
    if not isinstance(raw, dict) or raw.get(MARKER_FIELD) != WRITTEN_BY:
        raise CurateError(f"{where}: not a manifest written by curatrain (no {MARKER_FIELD}: {WRITTEN_BY})")
    version = raw.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CurateError(f"{where}: no valid schema_version ({version!r}); rebuild the export with `curate build`")
    if version > SCHEMA_VERSION:
        raise CurateError(
            f"{where}: manifest schema version {version} is newer than this curatrain reads ({SCHEMA_VERSION}); "
            "upgrade curatrain"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise CurateError(f"{where}: invalid manifest: {first_error(exc)}; rebuild the export") from None


def has_manifest(directory: str | Path) -> bool:
    """Whether `directory` holds a manifest.json; an export a killed build left mid-swap is put back first."""
    path = Path(directory)
    if not path.exists() and path.parent.is_dir():
        from curate.io.atomic import recover  # the export may sit beside it, hidden

        recover(path, MANIFEST)
    return (path / MANIFEST).is_file()


def read_manifest(export_dir: str | Path) -> Manifest:
    """Load and validate an export's manifest.json, with one clear line when it is missing or broken."""
    path = Path(export_dir) / MANIFEST
    if not has_manifest(export_dir):
        raise CurateError(f"{export_dir}: not a curate export (no {MANIFEST}); build one with `curate build`")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CurateError(f"{path}: cannot read it ({exc})") from None
    return parse_manifest(text, str(path))


def fields_markdown(model: type[BaseModel] = Manifest, prefix: str = "") -> list[str]:
    """Markdown table rows `| field | type | meaning |` of a manifest model, sub-models expanded (for the docs)."""
    names = FIELD_ORDER if model is Manifest else tuple(model.model_fields)
    rows = []
    for name in names:
        info = model.model_fields[name]
        inner = _model_in(info.annotation)
        doc = (inner.__doc__ or "").strip().splitlines()[0] if inner else ""
        rows.append(f"| `{prefix}{name}` | {_type_name(info.annotation)} | {info.description or doc} |")
        if inner is not None:
            many = typing.get_origin(info.annotation) is list
            rows += fields_markdown(inner, f"{prefix}{name}{'[]' if many else ''}.")
    return rows


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (alone, in a list, or or-None), if any."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _type_name(annotation: Any) -> str:
    """A reader's name for a field type: `int`, `list of str`, `SplitInfo or null`, `"a" or "b"`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " or ".join(json.dumps(a) for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"{_type_name(args[0])} → {_type_name(args[1])}"
    if args:  # X | None
        return " or ".join("null" if a is type(None) else _type_name(a) for a in args)
    return "any" if annotation is Any else getattr(annotation, "__name__", str(annotation))


if __name__ == "__main__":  # python -m curate.io.manifest: the field table docs/design.md holds
    print("\n".join(["| field | type | meaning |", "|---|---|---|", *fields_markdown()]))
