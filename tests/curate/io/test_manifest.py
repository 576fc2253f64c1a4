"""The export manifest is a typed, versioned contract: validated when written and when read, one line when broken."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from curate.errors import CurateError
from curate.io.manifest import FIELD_ORDER, SCHEMA_VERSION, Manifest, read_manifest
from curate.pipeline import build
from curate.recipe import BuildRecipe

DATA = Path(__file__).resolve().parents[3] / "data"


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("manifest") / "latex"
    recipe = BuildRecipe(
        inputs=[str(DATA / "latex" / "pairs.jsonl")],
        out=str(out),
        map={"english": "prompt", "latex": "response"},
        template="latex",
    )
    build(recipe, quiet=True)
    return out


def edited(export: Path, tmp_path: Path, change: Any) -> Path:
    """A copy of the export whose manifest.json went through `change(dict)` (or was replaced by a str)."""
    copy = tmp_path / "copy"
    shutil.copytree(export, copy)
    raw = json.loads((copy / "manifest.json").read_text())
    result = change(raw)
    text = result if isinstance(result, str) else json.dumps(raw)
    (copy / "manifest.json").write_text(text)
    return copy


def test_the_written_manifest_reads_back_typed_and_in_order(export: Path) -> None:
    manifest = read_manifest(export)
    assert isinstance(manifest, Manifest)
    assert (manifest.schema_version, manifest.written_by) == (SCHEMA_VERSION, "curatrain")
    assert manifest.kind == "instruction" and manifest.template is not None and manifest.template.name == "latex"
    assert manifest.split is not None and manifest.split.seed == 42
    assert manifest.semantic_dedupe is None and manifest.lengths is None  # steps that did not run: null
    raw = json.loads((export / "manifest.json").read_text())
    assert list(raw) == list(FIELD_ORDER) and set(FIELD_ORDER) == set(Manifest.model_fields)
    assert raw["semantic_dedupe"] is None


def delete(key: str) -> Any:
    return lambda raw: raw.pop(key) and None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda raw: raw.update(schema_version=SCHEMA_VERSION + 1), "is newer than this curatrain reads"),
        (delete("schema_version"), "no valid schema_version (None)"),
        (delete("written_by"), "not a manifest written by curatrain (no written_by: curatrain)"),
        (delete("counts"), "invalid manifest: field 'counts': Field required"),
        (lambda raw: raw["split"].update(seed="soon"), "invalid manifest: field 'split.seed': Input should be"),
        (lambda raw: raw.update(extra_key=1), "invalid manifest: field 'extra_key': unknown field"),
        (lambda raw: raw.update(content_hash="md5:0"), "field 'content_hash': String should match pattern"),
        (lambda raw: '{"schema_version": 1,', "not valid JSON (line 1"),
    ],
)
def test_a_broken_or_newer_manifest_is_one_line_naming_the_file(
    export: Path, tmp_path: Path, change: Any, expected: str
) -> None:
    copy = edited(export, tmp_path, change)
    with pytest.raises(CurateError) as caught:
        read_manifest(copy)
    message = str(caught.value)
    assert message.startswith(f"{copy / 'manifest.json'}: ") and expected in message
    assert "\n" not in message


def test_train_refuses_a_manifest_from_a_newer_curatrain_with_one_line(export: Path, tmp_path: Path) -> None:
    from train.cli import app

    copy = edited(export, tmp_path, lambda raw: raw.update(schema_version=SCHEMA_VERSION + 1))
    args = ["sft", "--data", str(copy), "--model", "smollm2", "--out", str(tmp_path / "run"), "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines() == [
        f"error: {copy / 'manifest.json'}: manifest schema version {SCHEMA_VERSION + 1} is newer than this "
        f"curatrain reads ({SCHEMA_VERSION}); upgrade curatrain"
    ]
    assert not (tmp_path / "run").exists()


def test_a_step_section_is_validated_when_a_step_writes_it() -> None:
    from pydantic import ValidationError

    from curate.steps.base import BuildContext

    ctx = BuildContext(quiet=True)
    with pytest.raises(ValidationError):
        ctx.manifest.split = {"seed": "not a number"}  # type: ignore[assignment]
