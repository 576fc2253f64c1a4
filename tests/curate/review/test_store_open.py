"""Opening a review database: only `init` creates or upgrades a schema; every other opener refuses, with one line
that says what to run, a database that is missing, empty, another application's, older or newer than this code,
or that SQLite cannot read (the files of tests/corpus/review_db/) — and changes nothing in it."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect
from typer.testing import CliRunner

from curate.cli import app
from curate.errors import CurateError
from curate.review.store import MIGRATIONS, ReviewStore

CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "review_db"
_SCRIPTS = Config()
_SCRIPTS.set_main_option("script_location", str(MIGRATIONS))
HEAD = ScriptDirectory.from_config(_SCRIPTS).get_current_head()  # this code's schema revision
INIT = "upgrade it with `curate review init --db sqlite:///"
REFUSED = {  # corpus file -> what the one line says
    "empty.db": "holds no review database yet: create it with `curate review init --db sqlite:///",
    "random-bytes.db": "is not a SQLite database or is damaged (file is not a database): restore it from a backup",
    "truncated.db": "is not a SQLite database or is damaged (database disk image is malformed)",
    "corrupt-page.db": "is damaged (SQLite quick_check: Page 7: btreeInitPage() returns error code 11)",
    "foreign-app.db": "is not a curatrain review database (it holds other tables: customers, invoices): pass the",
    "foreign-alembic-app.db": "is not a curatrain review database (it holds other tables: alembic_version, projects)",
    "future-revision.db": f"was written by a newer curatrain (schema revision 0099; this one knows up to {HEAD})",
    "old-revision-0002.db": f"has schema revision 0002, this curatrain needs {HEAD}: {INIT}",
}
# What `init` does with each: refuse like every other command, or create/upgrade the schema.
INIT_MIGRATES = {"empty.db", "old-revision-0002.db"}


def _copy(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copyfile(CORPUS / name, target)
    return target


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def curate(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["review", *args], env={"COLUMNS": "300"})
    return result.exit_code, result.output


def test_the_corpus_is_the_table_above() -> None:
    assert {p.name for p in CORPUS.glob("*.db")} == set(REFUSED)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_every_command_but_init_refuses_with_one_line_and_changes_nothing(name: str, tmp_path: Path) -> None:
    path = _copy(name, tmp_path)
    before = _digest(path)
    with pytest.raises(CurateError) as refused:
        ReviewStore(str(path))
    assert REFUSED[name] in str(refused.value)
    for command in (["stats", "--project", "qa"], ["labeler", "list"], ["serve", "--port", "1"]):
        code, out = curate(*command, "--db", f"sqlite:///{path}")
        assert code == 1 and out.count("\n") == 1 and "Traceback" not in out, out
        assert REFUSED[name] in " ".join(out.split()), out
    assert _digest(path) == before  # nothing created, migrated or switched to WAL
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no -wal/-shm files either


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_init_upgrades_only_our_older_or_empty_databases(name: str, tmp_path: Path) -> None:
    path = _copy(name, tmp_path)
    before = _digest(path)
    code, out = curate("init", "--db", f"sqlite:///{path}")
    if name not in INIT_MIGRATES:
        assert code == 1 and out.count("\n") == 1 and REFUSED[name].split(":")[0] in " ".join(out.split()), out
        assert _digest(path) == before
        return
    assert code == 0 and "is ready" in out, out
    store = ReviewStore(str(path), password_rounds=4)  # now at this code's revision
    assert store.projects() == ([] if name == "empty.db" else ["qa"])
    store.close()


def test_a_missing_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "review.db"
    code, out = curate("labeler", "list", "--db", f"sqlite:///{path}")
    assert code == 1 and f"no review database at {path}: create it with `curate review init" in out
    assert not path.parent.exists()
    code, out = curate("init", "--db", f"sqlite:///{path}", "--project", "qa")
    assert code == 0 and path.exists()
    code, out = curate("labeler", "list", "--db", f"sqlite:///{path}")
    assert code == 0, out


def test_a_foreign_database_gets_no_tables(tmp_path: Path) -> None:
    """The issue's case: `curate review stats` on another app's SQLite file added ten tables to it."""
    path = _copy("foreign-app.db", tmp_path)
    curate("stats", "--project", "qa", "--db", f"sqlite:///{path}")
    curate("init", "--project", "qa", "--db", f"sqlite:///{path}")
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert sorted(inspect(conn).get_table_names()) == ["customers", "invoices"]
    engine.dispose()


def test_an_empty_database_needs_init_on_either_backend(empty_db_url: str) -> None:
    with pytest.raises(CurateError, match=r"no review database (yet|at .*): create it with `curate review init"):
        ReviewStore(empty_db_url)
    ReviewStore(empty_db_url, migrate=True).close()
    ReviewStore(empty_db_url).close()
