"""One install per role: `curate review` and the review app import nothing of the curate or train extras (no torch),
a missing extra is one line naming the install command, and `pip install .[review]` in a fresh virtualenv serves the
app without torch (slow: it installs from PyPI, as CI can)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.extras import EXTRAS, extra_providing
from review_app.serving import free_port, wait_until_healthy

ROOT = Path(__file__).resolve().parents[2]
# What a review server must never load: the curate and train extras' modules (review's own are fine).
HEAVY = sorted((set(EXTRAS["curate"]) | set(EXTRAS["train"]) | {"datasets"}) - set(EXTRAS["review"]))


def _loaded_after(code: str, tmp_path: Path) -> list[str]:
    """Run `code` in a fresh interpreter (the repo first on the path); the HEAVY modules it left imported."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CURATRAIN_REVIEW_DB": f"sqlite:///{tmp_path / 'review.db'}"}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_review_commands_import_nothing_of_the_curate_or_train_extras(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'review.db'}"
    code = f"""
from typer.testing import CliRunner
from curate.cli import app
for args in (["init", "--project", "qa"], ["labeler", "add", "ann"], ["labeler", "list"], ["stats", "--project", "qa"]):
    result = CliRunner().invoke(app, ["review", *args, "--db", "{url}"])
    assert result.exit_code == 0, result.output
"""
    assert _loaded_after(code, tmp_path) == []


def test_the_review_app_pages_import_nothing_of_the_curate_or_train_extras(tmp_path: Path) -> None:
    """Login, Rate, Compare and Admin (with its export form), run as the server runs them."""
    code = f"""
from streamlit.testing.v1 import AppTest
from curate.review.store import ReviewStore
store = ReviewStore("sqlite:///{tmp_path / "review.db"}", password_rounds=4, migrate=True)
store.create_project("qa")
store.import_items("qa", [{{"prompt": "2 + 2?", "answers": ["4", "5"]}}])
lead = store.accounts.authenticate("lead", store.accounts.add_labeler("lead", "admin"))
from review_app.state import User
at = AppTest.from_file("{ROOT / "review_app" / "app.py"}", default_timeout=60).run()
at.session_state["user"] = User(id=lead.id, name="lead", role="admin")
at.run()
for page in ("views/compare.py", "views/admin.py"):
    at.switch_page(page).run()
    assert not at.exception, at.exception
"""
    assert _loaded_after(code, tmp_path) == []


def test_a_missing_extra_is_one_line_naming_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert extra_providing("faiss") == "curate" and extra_providing("torch") == "curate"  # what a curate verb needs
    assert extra_providing("trl.trainer") == "train" and extra_providing("psycopg") == "postgres"
    assert extra_providing("sqlalchemy") == "review" and extra_providing("json") is None
    # A review verb without the review extra (as on a `pip install curatrain[curate]` machine):
    monkeypatch.setitem(EXTRAS, "review", ("streamlit", "a_module_nobody_installed"))
    result = CliRunner().invoke(app, ["review", "labeler", "list", "--db", f"sqlite:///{tmp_path / 'r.db'}"])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert (
        "curate review needs the review extra (a_module_nobody_installed not installed): "
        "pip install 'curatrain[review]'" in result.output
    )


def _copy_source(target: Path) -> Path:
    """The files `pip install` needs, copied, so the build writes nothing into the checkout."""
    target.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, target / name)
    for package in ("curate", "train", "review_app"):
        shutil.copytree(ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.mark.slow
def test_pip_install_review_serves_the_app_without_torch(tmp_path: Path) -> None:
    """`pip install .[review]` in a fresh virtualenv (from PyPI): the review CLI and app work, torch is absent,
    and the verbs of other roles say which extra to install."""
    source = _copy_source(tmp_path / "src")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python, bin_dir = env_dir / "bin" / "python", env_dir / "bin"
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "CURATRAIN_REVIEW_DB")}
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"{source}[review]"],
        capture_output=True,
        text=True,
        env=clean,
        timeout=900,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    no_torch = subprocess.run([str(python), "-c", "import torch"], capture_output=True, text=True, env=clean)
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, capture_output=True, text=True, env=clean, cwd=tmp_path, timeout=120)

    db = f"sqlite:///{tmp_path / 'review.db'}"
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"prompt": "2 + 2?", "answers": ["4", "5"]}) + "\n")
    for args in (["init", "--project", "qa"], ["import", str(items), "--project", "qa", "-q"]):
        done = run(str(bin_dir / "curate"), "review", *args, "--db", db)
        assert done.returncode == 0, done.stdout + done.stderr
    port = free_port()
    server = subprocess.Popen(
        [str(bin_dir / "curate"), "review", "serve", "--db", db, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=clean,
        cwd=tmp_path,
    )
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", server)  # /_stcore/health says ok
    finally:
        server.terminate()
        server.wait(timeout=30)
    # The other roles' verbs: one line each, naming the extra.
    sft = run(str(bin_dir / "train"), "sft", "--help")
    assert sft.returncode == 1 and "pip install 'curatrain[train]'" in sft.stderr and "Traceback" not in sft.stderr
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps({"text": t}) + "\n" for t in ("a cat", "a cat sat", "a dog")))
    dedupe = run(str(bin_dir / "curate"), "dedupe", str(texts), "--threshold", "0.9", "--out", str(tmp_path / "kept"))
    assert dedupe.returncode == 1 and "pip install 'curatrain[curate]'" in dedupe.stdout + dedupe.stderr
    assert "Traceback" not in dedupe.stdout + dedupe.stderr
