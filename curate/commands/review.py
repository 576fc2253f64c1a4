"""`curate review`: set up a rating project, add labelers, serve the Streamlit app, export ratings as datasets.

The database is `--db URL` (sqlite:///path.db or postgresql://user@host/db), else
$CURATRAIN_REVIEW_DB, else sqlite:///review.db in the current directory.
"""

from __future__ import annotations

import math
import os
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import pandas as pd
import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.progress import track
from rich.table import Table
from rich.text import Text

from curate.commands.build import print_summary
from curate.config import Flag, FlagValues, from_flags, with_flags
from curate.console import console, user_errors
from curate.errors import CurateError, RowError
from curate.extras import require
from curate.io.readers import read_rows
from curate.recipe import BuildRecipe, RatingsConfig
from curate.review.judge import JudgeConfig
from curate.review.types import DEFAULT_CLAIM_HOURS, DEFAULT_EXPORT_DIR, ENV_DB, ENV_EXPORTS, ReviewItem, resolve_url
from curate.review_export import export_ratings, export_rules

if TYPE_CHECKING:
    from curate.review.store import ReviewStore

review_app = typer.Typer(
    help="Labelers rate answers 1-10 in a Streamlit app; ratings become SFT, preference and reward datasets.",
    no_args_is_help=True,
)
labeler_app = typer.Typer(help="Add labelers and admins, or list them.", no_args_is_help=True)
review_app.add_typer(labeler_app, name="labeler")


@review_app.callback()
@user_errors
def _review() -> None:
    """Labelers rate answers 1-10 in a Streamlit app; ratings become SFT, preference and reward datasets."""
    # The store (SQLAlchemy), the app (Streamlit) and agreement (krippendorff, SciPy) are imported only below,
    # so `curate build` works without them; every `curate review` verb needs them.
    require("review", "curate review")


Db = Annotated[
    Optional[str],
    typer.Option("--db", help=f"Database URL (sqlite:///path.db or postgresql://...); default ${ENV_DB} or review.db."),
]
ProjectName = Annotated[str, typer.Option("--project", "-p", help="Project name.")]


def open_store(db: str | None) -> ReviewStore:
    """The store at --db (or the default), which must be a review database at this version's schema revision.

    The operator's store: whoever runs `curate review` holds the database URL (and could read every
    row with sqlite3/psql), and must set it up before any admin exists; so no acting admin is asked for.
    """
    from curate.review.store import ReviewStore

    return ReviewStore(resolve_url(db), operator=True)


def read_items(path: str, quiet: bool = False, prompts: set[str] | None = None) -> list[dict]:
    """Validate every row of an items file (prompt, answers[, models, source]); errors name file, row, field.

    `prompts`: the only prompts the file may hold (a prompt not among them is an error naming its row).
    """
    items = []
    rows = read_rows([path])
    for raw in rows if quiet else track(rows, description="reading items", console=console):
        try:
            item = ReviewItem.model_validate(raw.data)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "(row)"
            message = "missing required field" if first["type"] == "missing" else first["msg"]
            if first["type"] == "extra_forbidden":
                message = "unknown column: an item has prompt, answers, and optionally models and source"
            raise RowError(raw.source, raw.row, field, message, raw.unit) from None
        if prompts is not None and item.prompt not in prompts:
            raise RowError(
                raw.source,
                raw.row,
                "prompt",
                "not a prompt of the project (--new-answers-only): nothing imported",
                raw.unit,
            )
        items.append(item.model_dump())
    if not items:
        raise CurateError(f"{path}: no items to import")
    return items


@review_app.command("init")
@user_errors
def init_command(
    project: Annotated[Optional[str], typer.Option("--project", "-p", help="Also create this project.")] = None,
    db: Db = None,
    overlap: Annotated[int, typer.Option(help="How many labelers rate each item (for agreement).")] = 2,
    mode: Annotated[str, typer.Option(help="rate (one answer at a time) or compare (two side by side).")] = "rate",
    claim_hours: Annotated[
        float,
        typer.Option(
            help="Hours a claimed item holds its slot; an unfinished claim then frees it for another labeler."
        ),
    ] = DEFAULT_CLAIM_HOURS,
) -> None:
    """Create the review database, or upgrade an older one to this version's schema; with --project, add a project.

    The only command that changes a schema: every other one refuses a database that is not at this version's.

    \b
    Example:
      curate review init --db sqlite:///review.db --project qa --overlap 2
    """
    from curate.review.store import ReviewStore

    store = ReviewStore(resolve_url(db), operator=True, migrate=True)
    where = escape(store.db.display_url)
    if project is None:
        console.print(f"Review database {where} is ready")
        return
    store.create_project(project, overlap=overlap, mode=mode, claim_hours=claim_hours)
    console.print(
        f"Project [bold]{escape(project)}[/] (overlap {overlap}, {mode}, claims expire after {claim_hours:g} h) in {where}"
    )


@review_app.command("project")
@user_errors
def project_command(
    project: ProjectName,
    db: Db = None,
    claim_hours: Annotated[
        Optional[float], typer.Option(help="Change how long a claimed item holds its slot (claims from now on).")
    ] = None,
) -> None:
    """Show a project's settings; change its claim expiry with --claim-hours.

    \b
    Example:
      curate review project --project qa --claim-hours 8
    """
    store = open_store(db)
    if claim_hours is not None:
        store.set_claim_hours(project, claim_hours)
    settings = store.project(project)
    console.print(
        f"Project [bold]{escape(project)}[/]: overlap {settings.overlap}, {settings.mode}, "
        f"claims expire after {settings.claim_hours:g} h"
    )


@review_app.command("import")
@user_errors
def import_command(
    file: Annotated[
        str, typer.Argument(help="JSONL, CSV or Parquet: prompt, answers (list; JSON text in CSV), models?")
    ],
    project: ProjectName,
    db: Db = None,
    new_answers_only: Annotated[
        bool,
        typer.Option(
            "--new-answers-only",
            help="The file adds answers to prompts already in the project (e.g. from `train generate --prompts "
            "review:P`); a prompt that is not there stops the import, before anything is added.",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Import prompts with 1..n candidate answers; re-importing adds only answers not there yet.

    \b
    Example:
      curate review import data/qa/items.jsonl --project qa
    """
    store = open_store(db) if new_answers_only else None  # else the file is checked before the database
    items = read_items(file, quiet, set(store.prompts(project)) if store else None)
    added = (store or open_store(db)).import_items(project, items)
    console.print(
        f"{len(items)} prompts read from {escape(file)}; {added} new answers added to [bold]{escape(project)}[/]"
    )


@labeler_app.command("add")
@user_errors
def labeler_add_command(
    name: Annotated[str, typer.Argument(help="The labeler's login name.")],
    db: Db = None,
    admin: Annotated[bool, typer.Option("--admin", help="An admin sees everyone's ratings and the stats.")] = False,
    reset: Annotated[bool, typer.Option("--reset", help="Give an existing labeler a new one-time password.")] = False,
) -> None:
    """Add a labeler (or admin) and print their one-time password; only its bcrypt hash is stored.

    \b
    Example:
      curate review labeler add alice
    """
    store = open_store(db)
    password = (
        store.accounts.reset_password(name)
        if reset
        else store.accounts.add_labeler(name, "admin" if admin else "labeler")
    )
    console.print(f"{'Admin' if admin else 'Labeler'} [bold]{escape(name)}[/] - one-time password (shown only now):")
    console.print(password, highlight=False, markup=False)


@labeler_app.command("deactivate")
@user_errors
def labeler_deactivate_command(
    name: Annotated[str, typer.Argument(help="The labeler's login name.")], db: Db = None
) -> None:
    """Lock a labeler out; their ratings stay, and items they never started go back to the pool."""
    released = open_store(db).accounts.deactivate_labeler(name)
    console.print(f"Labeler [bold]{escape(name)}[/] deactivated; {released} untouched item(s) released")


@labeler_app.command("list")
@user_errors
def labeler_list_command(db: Db = None) -> None:
    """List labelers and admins."""
    table = Table("name", "role", "active", "created")
    for labeler in open_store(db).accounts.labelers():
        table.add_row(Text(labeler.name), labeler.role, str(labeler.active), f"{labeler.created_at:%Y-%m-%d %H:%M}")
    console.print(table)


@review_app.command("serve")
@user_errors
def serve_command(
    db: Db = None,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8501,
    host: Annotated[str, typer.Option(help="Address to bind; 127.0.0.1 keeps it on this machine.")] = "127.0.0.1",
    export_dir: Annotated[
        Path, typer.Option(help="The one directory the Admin page writes exports under (admins only give a name).")
    ] = Path(DEFAULT_EXPORT_DIR),
) -> None:
    """Start the review app (streamlit run review_app/app.py) on the database.

    \b
    Example:
      curate review serve --db sqlite:///review.db --port 8501 \\
          --export-dir /srv/review-exports
    """
    url = resolve_url(db)
    store = open_store(url)  # fail here, with a clear message, rather than inside the app
    store.close()
    spec = find_spec("review_app")
    if spec is None or spec.origin is None:
        raise CurateError("the review_app package is not installed next to curate")
    app = Path(spec.origin).parent / "app.py"
    exports = export_dir.expanduser().resolve()
    os.environ[ENV_DB] = url
    os.environ[ENV_EXPORTS] = str(exports)
    command = [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", host, "--server.port", str(port)]
    # Labelers get no developer menu or Deploy button: "minimal" from the very first page (the app's own
    # st.set_option only takes effect from the second run of each session).
    command += ["--server.headless", "true", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal"]
    command += ["--", "--db", url, "--export-dir", str(exports)]
    console.print(f"Review app on http://{escape(host)}:{port} (database {escape(store.db.display_url)})")
    console.print(f"Exports from the Admin page go under {escape(str(exports))}")
    sys.stdout.flush()
    # Become Streamlit (no child process): stopping `curate review serve` stops the server.
    os.execv(sys.executable, command)


# The rules of an export as flags, each generated from its recipe field (type, help, default): the same keys
# `curate build --derive` takes as KEY=VALUE (ratings.min_gap=3), validated the same way.
EXPORT_FLAGS = (
    Flag("ratings.min_rating"),
    Flag("ratings.min_gap"),
    Flag("ratings.margin_scale"),
    Flag("ratings.min_ratings"),
    Flag("ratings.calibrate", "--calibrate/--raw-ratings"),
    Flag("ratings.min_agreement"),
    Flag("ratings.judge_min_alpha"),
    Flag("ratings.judge_min_items"),
    Flag("ratings.judge_fill", "--judge-fill/--no-judge-fill"),
    Flag("split.test_size"),
    Flag("split.seed"),
)


@review_app.command("export")
@user_errors
@with_flags(BuildRecipe, EXPORT_FLAGS)
def export_command(
    project: ProjectName,
    out: Annotated[Path, typer.Option("--out", "-o", help="Export directory to write (replaced atomically).")],
    kind: Annotated[
        str, typer.Option(help="sft (best answer per prompt) | preference (pairs) | reward (mean per answer) | rated.")
    ] = "preference",
    db: Db = None,
    flags: FlagValues = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or summary.")] = False,
) -> None:
    """Write the project's current ratings as a dataset export (same layout as `curate build`).

    Flagged answers are left out; the split is grouped by prompt. Rules: README "Review app".

    \b
    Examples:
      curate review export --project qa --kind preference --out out/qa-pairs
      curate review export --project qa --kind preference --calibrate \\
          --min-agreement 0.75 --out out/qa-pairs-agreed
    """
    ratings, split = export_rules(flags or {})
    result = export_ratings(open_store(db), project, out, kind, ratings=ratings, split=split, quiet=quiet)
    if not quiet:
        print_summary(result)


# Every key of the judge as a flag (type, help and default from the JudgeConfig field).
JUDGE_FLAGS = tuple(Flag(key, "--model", "-m") if key == "model" else Flag(key) for key in JudgeConfig.model_fields)


@review_app.command("judge")
@user_errors
@with_flags(JudgeConfig, JUDGE_FLAGS)
def judge_command(
    project: ProjectName,
    db: Db = None,
    flags: FlagValues = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Ask again about answers whose reply never parsed.")
    ] = False,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Judge at most this many answers this time.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Rate the project's answers with an LLM judge, one more rater (a labeler of kind judge named after its model).

    Its ratings are tagged in every export, never shown to labelers, and count in datasets only when it agrees
    with the people (see `curate review stats`). Running it again rates only what is missing.

    \b
    Examples:
      curate review judge --project qa --model smollm2
      curate review judge --project qa --endpoint http://localhost:8000/v1 \\
          --model Qwen/Qwen2.5-7B-Instruct
    """
    from curate.console import progress_bar
    from curate.review.judge import judge_project

    config = from_flags(JudgeConfig, JUDGE_FLAGS, flags or {})
    store = open_store(db)
    with progress_bar(unit="answers", disable=quiet) as bar:
        task = bar.add_task("judging", total=None)
        run = judge_project(
            store, project, config, retry_failed=retry_failed, limit=limit, advance=lambda k: bar.advance(task, k)
        )
    who = escape(run.judge)
    if not run.to_judge:
        console.print(f"Judge [bold]{who}[/]: nothing left to judge in {escape(project)}")
    else:
        console.print(
            f"Judge [bold]{who}[/] ({run.mode}): {run.rated} of {run.to_judge} answer(s) rated, {run.failed} "
            "unparseable (kept with the reply; --retry-failed asks again)",
            highlight=False,
        )
    if run.single_answer_items:
        console.print(f"{run.single_answer_items} item(s) with a single answer left out: compare needs two")
    if run.bias and run.bias["replies"]:
        console.print(
            f"Position bias: the answer shown first scored {run.bias['mean_first_minus_second']:+.2f} on average "
            f"against the same answer shown second; first preferred in {run.bias['first_preferred']:.0%} of "
            f"{run.bias['replies']} replies (50%: no lean)",
            highlight=False,
        )
    judges = judges_table(store.reports.ratings_frame(project))
    if judges is not None:
        console.print(judges)


@review_app.command("stats")
@user_errors
def stats_command(project: ProjectName, db: Db = None) -> None:
    """Progress, pace and bias per labeler, agreement among the people, and each LLM judge against them."""
    from curate.review.agreement import krippendorff_alpha, pairwise_spearman

    store = open_store(db)
    stats = store.reports.labeler_stats(project)
    table = Table("labeler", "done / assigned", "s / rating", "mean", "bias", title=Text(f"project {project}"))
    for row in stats.itertuples(index=False):
        table.add_row(
            Text(row.labeler + (" (judge)" if row.kind == "judge" else "")),
            f"{row.done} / {row.assigned}",
            _fmt(row.seconds_per_rating),
            _fmt(row.mean_rating),
            _fmt(row.bias, signed=True),
        )
    console.print(table)
    ratings = store.reports.ratings_frame(project)
    people = ratings[ratings.labeler_kind != "judge"] if len(ratings) else ratings
    if len(people):
        console.print(f"Krippendorff's alpha (ordinal) among people: {_fmt(krippendorff_alpha(people), 3)}")
        for row in pairwise_spearman(people).itertuples(index=False):
            console.print(
                f"Spearman {row.labeler_a} ~ {row.labeler_b}: {_fmt(row.spearman, 3)} ({row.n_common} shared)",
                markup=False,
            )
    judges = judges_table(ratings)
    if judges is not None:
        console.print(judges)
    flagged = store.reports.flagged(project)
    if len(flagged):
        console.print(f"{len(flagged)} flagged answer(s); see the admin page")


def judges_table(ratings: Any) -> Table | None:
    """Each LLM judge against the people's consensus, and whether exports count it (default gate); None: no judge."""
    from curate.review.agreement import judges_vs_humans
    from curate.review.ratings import judge_gate

    judges = judges_vs_humans(ratings) if len(ratings) else None
    if judges is None or judges.empty:
        return None
    rules = RatingsConfig()
    table = Table("judge", "shared answers", "alpha", "Spearman", "mean offset", "counts in exports", title="judges")
    for row in judges.itertuples(index=False):
        alpha = None if math.isnan(row.alpha) else float(row.alpha)
        counted, reason = judge_gate(int(row.n_shared), alpha, rules)
        table.add_row(
            Text(str(row.judge)),
            str(row.n_shared),
            _fmt(row.alpha, 3),
            _fmt(row.spearman, 3),
            _fmt(row.mean_offset, signed=True),
            Text(("yes: " if counted else "no: ") + reason),
        )
    return table


@review_app.command("flags")
@user_errors
def flags_command(
    project: ProjectName,
    db: Db = None,
    clear: Annotated[Optional[int], typer.Option("--clear", help="Clear the flag with this id.")] = None,
    by: Annotated[Optional[str], typer.Option("--by", help="The admin who clears it (with --clear).")] = None,
    history: Annotated[bool, typer.Option("--all", help="Also list cleared flags, with who cleared them.")] = False,
) -> None:
    """List flagged answers (they stay out of every export), or clear one; a cleared flag stays in the history.

    \b
    Example:
      curate review flags --project qa --clear 3 --by boss
    """
    store = open_store(db)
    if clear is not None:
        admin = next((lab for lab in store.accounts.labelers() if lab.name == by), None)
        if admin is None:
            raise CurateError("--clear needs --by NAME: the admin who clears the flag")
        store.clear_flag(admin.id, clear)
        console.print(f"Flag {clear} cleared by {by}: its answer counts in exports again", markup=False)
        return
    flags = store.reports.flagged(project, history=history)
    if flags.empty:
        console.print("No flags." if history else "No open flags.")
        return
    table = Table("id", "labeler", "reason", "answer", title=Text(f"project {project}"))
    if history:
        table.add_column("cleared")
    for row in flags.itertuples(index=False):
        cells = [str(row.flag_id), row.labeler, row.reason, row.response[:60]]
        if history:
            cleared = pd.notna(row.cleared_at)
            cells.append(
                f"by {row.cleared_by or '(removed)'} at {row.cleared_at:%Y-%m-%d %H:%M}" if cleared else "open"
            )
        table.add_row(*(Text(c) for c in cells))  # people's text, shown literally (no rich markup)
    console.print(table)


def _fmt(value: float, digits: int = 2, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
