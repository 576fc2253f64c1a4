"""`curate review flags` lists and clears flags; `curate review init --claim-hours` sets the claim expiry."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from curate.cli import app
from curate.review.store import ReviewStore


def curate(*args: str, db: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["review", *args, "--db", db], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_flags_are_listed_cleared_by_an_admin_and_kept_as_history(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'review.db'}"
    code, out = curate("init", "--project", "qa", "--claim-hours", "6", db=db)
    assert code == 0 and "claims expire after 6 h" in out
    store = ReviewStore(db, password_rounds=4)
    assert store.project("qa").claim_hours == 6
    store.import_items("qa", [{"prompt": "2 + 2?", "answers": ["4", "5"]}])
    ann = store.accounts.authenticate("ann", store.accounts.add_labeler("ann")).id
    store.accounts.add_labeler("boss", role="admin")
    task = store.next_rating_task(ann, "qa")
    store.flag(ann, task.answer_id, "[bold]odd[/bold] answer")
    flag_id = int(store.reports.flagged("qa").flag_id.iloc[0])

    code, out = curate("flags", "--project", "qa", db=db)
    assert code == 0 and "[bold]odd[/bold] answer" in out and "ann" in out  # rich markup shown literally
    code, out = curate("flags", "--project", "qa", "--clear", str(flag_id), db=db)
    assert code == 1 and "--clear needs --by NAME" in out
    code, out = curate("flags", "--project", "qa", "--clear", str(flag_id), "--by", "ann", db=db)
    assert code == 1 and "only an admin may clear a flag" in out and "Traceback" not in out
    code, out = curate("flags", "--project", "qa", "--clear", str(flag_id), "--by", "boss", db=db)
    assert code == 0 and f"Flag {flag_id} cleared by boss" in out
    assert store.reports.flagged("qa").empty
    code, out = curate("flags", "--project", "qa", db=db)
    assert code == 0 and "No open flags." in out
    code, out = curate("flags", "--project", "qa", "--all", db=db)
    assert code == 0 and "[bold]odd[/bold] answer" in out and "by boss at " in out
    store.close()


def test_project_shows_settings_and_changes_claim_hours(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'review.db'}"
    assert curate("init", "--project", "qa", "--overlap", "3", db=db)[0] == 0
    code, out = curate("project", "--project", "qa", db=db)
    assert code == 0 and "overlap 3, rate, claims expire after 24 h" in out
    code, out = curate("project", "--project", "qa", "--claim-hours", "8", db=db)
    assert code == 0 and "claims expire after 8 h" in out
    store = ReviewStore(db, password_rounds=4)
    assert store.project("qa").claim_hours == 8
    store.close()
    code, out = curate("project", "--project", "qa", "--claim-hours", "0", db=db)
    assert code == 1 and "Traceback" not in out and "claim" in out
    code, out = curate("project", "--project", "nope", db=db)
    assert code == 1 and "no project named 'nope'" in out
