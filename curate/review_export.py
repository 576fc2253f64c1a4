"""Ratings from the review store as a dataset export: `curate review export` and the Admin page call this.

The store only reads the rated rows (`Reports.rated_rows`, admins only); a `curate build`
of kind `rated` then derives the dataset with the recipe's own typed sections
(`RatingsConfig`, `SplitConfig`), so the rules are validated once, where recipes define them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from curate.config import load_recipe
from curate.errors import CurateError
from curate.io.ingest import Ingested
from curate.pipeline import BuildResult, build
from curate.recipe import BuildRecipe, RatingsConfig, SplitConfig
from curate.review.ratings import DeriveKind
from curate.schema import Kind, validate_row

if TYPE_CHECKING:
    from curate.review.store import ReviewStore

EXPORT_KINDS: tuple[str, ...] = (*get_args(DeriveKind), "rated")
# One folder of an export name: starts with a letter or digit (so never "..", "~" or hidden), then safe characters.
_FOLDER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def export_target(root: Path, name: str) -> Path:
    """Where an export called `name` goes under the export directory `root` (the review app's only place to
    write): `name` is folder names (letters, digits, '.', '_', '-') joined by '/'; an absolute path, '~', '..'
    or a symbolic link leading out of `root` is a CurateError."""
    if not isinstance(name, str) or not all(_FOLDER.fullmatch(part) for part in name.split("/")):
        raise CurateError(
            f"export name {name!r} must be a folder name under the export directory (letters, digits, '.', '_', "
            "'-', and '/' between folders): no absolute path, '~' or '..'"
        )
    base = root.expanduser().resolve()
    target = (base / name).resolve()
    if not target.is_relative_to(base):
        raise CurateError(f"export name {name!r} leads out of the export directory {base} (a symbolic link)")
    return target


def safe_name(text: str) -> str:
    """`text` (e.g. a project name, any printable characters) as one valid export folder name."""
    folder = re.sub(r"[^A-Za-z0-9._-]+", "_", text).lstrip("._-")[:100]
    return folder or "export"


def export_rules(keys: dict[str, Any]) -> tuple[RatingsConfig, SplitConfig]:
    """The ratings and split sections of a recipe from dotted keys (`ratings.min_gap`, `split.seed`; the rest
    default), checked as a recipe's are."""
    recipe = load_recipe(BuildRecipe, None, keys)
    return recipe.ratings, recipe.split


def export_ratings(
    store: ReviewStore,
    project: str,
    out: Path,
    kind: str,
    *,
    ratings: RatingsConfig | None = None,
    split: SplitConfig | None = None,
    actor: int | None = None,
    quiet: bool = True,
) -> BuildResult:
    """Write a project's current ratings as an export directory (like `curate build`) of `kind`
    sft | preference | reward | rated; flagged answers are left out, and the split is grouped by prompt,
    so no prompt straddles train and test. `actor`: the admin asking (the review app must say)."""
    if kind not in EXPORT_KINDS:
        raise CurateError(f"unknown export kind {kind!r}: use one of {', '.join(EXPORT_KINDS)}")
    source = f"{store.db.display_url}#{project}"
    rows = store.reports.rated_rows(project, actor=actor)
    records = [validate_row(Kind.rated, dict(row), source, i) for i, row in enumerate(rows, 1)]
    if not records:
        raise CurateError(f"project {project!r} has no ratings yet: nothing to export")
    recipe = BuildRecipe(
        name=Path(out).name,
        inputs=[source],
        out=str(out),
        kind=Kind.rated,
        derive=None if kind == "rated" else kind,  # type: ignore[arg-type]  # checked against EXPORT_KINDS above
        ratings=ratings or RatingsConfig(),
        split=(split or SplitConfig()).model_copy(update={"group_by": "prompt"}),
    )
    return build(recipe, quiet=quiet, ingested=Ingested(Kind.rated, records, [], len(records)))
