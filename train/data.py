"""The one loader `train` uses: an export directory, a saved HF dataset, or a hub dataset -> DatasetDict.

An export directory (what `curate build` writes) comes with its manifest (curate/io/manifest.py,
validated on read): the record kind, the template the prompts were rendered with, the token
lengths behind the recommended max_length and the content hash that run cards record. Other
datasets must already be in a TRL format; their columns are checked for the verb before any
model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.errors import CurateError
from curate.hub import same_model
from curate.io.manifest import Manifest, has_manifest, read_manifest

# Column sets each verb accepts (TRL's standard dataset formats), and the record kinds of an export.
FORMATS: dict[str, list[tuple[str, ...]]] = {
    "sft": [("prompt", "completion"), ("messages",), ("text",)],
    "reward": [("chosen", "rejected")],
    "dpo": [("chosen", "rejected")],
    **dict.fromkeys(("ppo", "rloo", "grpo"), [("prompt",), ("messages",)]),  # online RL: any export's questions
    "classify": [("text", "labels"), ("text", "label")],
}
KINDS: dict[str, tuple[str, ...]] = {
    "sft": ("instruction",),
    "reward": ("preference",),
    "dpo": ("preference",),
    **dict.fromkeys(("ppo", "rloo", "grpo"), ("instruction", "preference", "rated", "reward")),
    "classify": ("labelled",),
}
BUILD_HINT: dict[str, str] = {
    "sft": "build an instruction export, e.g. `curate build recipes/latex-build.yaml`",
    "reward": "build a preference export (prompt, chosen, rejected, margin) from rated answers",
    "dpo": "build a preference export, e.g. `curate build recipes/qa-pairs-build.yaml`",
    **dict.fromkeys(
        ("ppo", "rloo", "grpo"), "give an export with questions, e.g. `curate build recipes/qa-sft-build.yaml`"
    ),
    "classify": "build a labelled export (text + labels, or text [+ text_pair] + label), "
    "e.g. `curate build recipes/genres-build.yaml`",
}
EVAL_SPLITS = ("test", "validation", "eval")


@dataclass
class TrainData:
    """Train/eval splits plus what the export says about them (no manifest for non-export datasets)."""

    source: str
    dataset: Any  # datasets.DatasetDict with "train" and, when present, "test"
    manifest: Manifest | None = None

    @property
    def is_export(self) -> bool:
        return self.manifest is not None

    @property
    def content_hash(self) -> str | None:
        return self.manifest.content_hash if self.manifest else None

    @property
    def template(self) -> str | None:
        """The template name the prompts were rendered with (None: plain text or not an export)."""
        return self.manifest.template.name if self.manifest and self.manifest.template else None

    @property
    def name(self) -> str:
        return self.manifest.name if self.manifest else Path(self.source.rstrip("/")).name or "data"

    @property
    def columns(self) -> list[str]:
        return list(self.dataset["train"].column_names)

    @property
    def format(self) -> tuple[str, ...]:
        """The TRL format the columns match, e.g. ("prompt", "completion")."""
        cols = set(self.columns)
        for verb_formats in FORMATS.values():
            for fmt in verb_formats:
                if set(fmt) <= cols:
                    return fmt
        return ()

    @property
    def eval(self) -> Any:
        """The test split, or None when the data has none."""
        return self.dataset.get("test")


def _load(source: str) -> tuple[Any, Manifest | None]:
    from datasets import DatasetDict, load_dataset, load_from_disk
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    path = Path(source)
    if has_manifest(path):
        manifest = read_manifest(path)
        files = {s: str(f) for s in ("train", "test") for f in sorted((path / "data").glob(f"{s}-*.parquet"))}
        if "train" not in files:
            raise CurateError(f"{source}: the export has no train split (data/train-*.parquet)")
        return load_dataset("parquet", data_files=files), manifest
    if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file()):
        loaded = load_from_disk(str(path))
        return (loaded if isinstance(loaded, DatasetDict) else DatasetDict({"train": loaded})), None
    if path.exists() or source.startswith((".", "/", "~")):
        if not path.exists():
            raise CurateError(f"--data {source}: no such file or directory")
        # A file or a plain directory of data files: let `datasets` pick the builder (json, csv, parquet).
        suffix = path.suffix.lstrip(".") if path.is_file() else ""
        builder = {"jsonl": "json", "json": "json", "csv": "csv", "parquet": "parquet"}.get(suffix)
        try:
            return (load_dataset(builder, data_files=str(path)) if builder else load_dataset(str(path))), None
        except (OSError, ValueError) as exc:
            raise CurateError(f"--data {source}: cannot load it as a dataset ({str(exc).splitlines()[0]})") from None
    try:
        return load_dataset(source), None
    except Exception as exc:  # datasets raises many types for a missing hub dataset (offline, 404, ...)
        raise CurateError(
            f"--data {source}: not an export directory, saved dataset or reachable hub dataset ({exc})"
        ) from None


def _with_eval_split(dataset: Any) -> Any:
    from datasets import DatasetDict

    if "train" not in dataset:
        raise CurateError(f"the dataset has no 'train' split (splits: {', '.join(dataset)})")
    splits = {"train": dataset["train"]}
    for name in EVAL_SPLITS:
        if name in dataset:
            splits["test"] = dataset[name]
            break
    return DatasetDict(splits)


def check_columns(data: TrainData, verb: str) -> None:
    """Fail with one clear line when the data cannot feed `train <verb>` (wrong kind or missing columns)."""
    kind = data.manifest.kind.value if data.manifest else None
    if kind and kind not in KINDS[verb]:
        raise CurateError(
            f"{data.source}: a '{kind}' export (columns {', '.join(data.columns)}) cannot train `train {verb}`, "
            f"which needs {' or '.join(KINDS[verb])} data: {BUILD_HINT[verb]}"
        )
    cols = set(data.columns)
    if verb == "sft" and "text" in cols and {"labels", "label"} & cols:
        raise CurateError(
            f"{data.source}: columns {', '.join(data.columns)} look like classification data (text + labels); "
            f"`train sft` needs prompt/completion, messages or text-only data: {BUILD_HINT[verb]}"
        )
    if not any(set(fmt) <= cols for fmt in FORMATS[verb]):
        wanted = " | ".join("+".join(fmt) for fmt in FORMATS[verb])
        raise CurateError(
            f"{data.source}: missing columns for `train {verb}`: it needs {wanted}; "
            f"found {', '.join(data.columns) or 'none'}"
        )
    if len(data.dataset["train"]) == 0:
        raise CurateError(f"{data.source}: the train split is empty")


def load_data(source: str, verb: str) -> TrainData:
    """Load `source` for `train <verb>` and validate its columns; errors name the source and what is missing."""
    dataset, manifest = _load(source)
    data = TrainData(source=source, dataset=_with_eval_split(dataset), manifest=manifest)
    check_columns(data, verb)
    return data


def export_max_length(
    data: TrainData, model: str, renderer: Any, splits: list[Any] | None = None
) -> tuple[int | None, str]:
    """The export's recommended max_length, valid for `model`'s tokenizer, and one line saying where it came from.

    The export counted tokens with the tokenizer in `manifest.lengths.tokenizer` (SmolLM2 by default); another
    model's tokenizer splits the same text differently, so then the rows (`splits`, default every split, as the
    trainer will see them) are recounted with `renderer` (curate.render.Renderer: the model's tokenizer, rendering
    the rows as the trainer receives them) under the same rule (curate/lengths.py).
    (None, reason) when the data carries no recommendation.
    """
    lengths = data.manifest.lengths if data.manifest else None
    if lengths is None or lengths.recommended_max_length is None:
        return None, "the data has no token-length analysis"
    if same_model(lengths.tokenizer, model):
        return lengths.recommended_max_length, f"the export's recommendation (counted with {lengths.tokenizer})"
    from curate.lengths import length_stats, recommended_max_length, token_counts

    rows = [row for split in (splits if splits is not None else data.dataset.values()) for row in split]
    stats = length_stats(token_counts(rows, renderer))
    recounted = recommended_max_length(stats.p99)
    return recounted, (
        f"recounted with {model}'s tokenizer (p99 {stats.p99:g} tokens): the export's "
        f"{lengths.recommended_max_length} was counted with {lengths.tokenizer}"
    )
