"""Admin page: agreement, progress, flagged items and exports for admins; labelers can't reach it."""

from __future__ import annotations

from pathlib import Path

import krippendorff
import numpy as np
import pytest
from review_harness import APP, PROJECT, Review, button
from scipy.stats import spearmanr
from streamlit.testing.v1 import AppTest

from curate.io.manifest import read_manifest
from review_app.state import User

# ann's and ben's ratings of the six answers in import order; they agree on the order, not the exact numbers.
ANN = [9, 2, 8, 1, 9, 3]
BEN = [8, 3, 7, 2, 10, 2]


def _rate_all(review: Review, name: str, values: list[int]) -> None:
    """Rate every answer with its value in import order, whatever order the labeler is shown them in."""
    labeler = review.labeler_id(name)
    items: list[int] = []
    while (task := review.store.next_rating_task(labeler, PROJECT)) is not None:
        items += [task.item_id] if task.item_id not in items else []
        value = values[2 * items.index(task.item_id) + task.answer_index - 1]
        review.store.submit_rating(labeler, task.answer_id, value, f"{name} says {value}", 4.0)
    assert len(items) == 3


@pytest.fixture
def rated(review: Review) -> Review:
    _rate_all(review, "ann", ANN)
    _rate_all(review, "ben", BEN)
    first = review.store.reports.ratings_frame(PROJECT).answer_id.min()
    review.store.flag(review.labeler_id("ann"), int(first) + 1, "<i>unsafe</i> answer")
    return review


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_admin_sees_agreement_progress_and_flags(rated: Review, app) -> None:
    at = app("root")
    at.switch_page("views/admin.py").run()
    assert not at.exception and not at.error
    assert [t.value for t in at.title] == ["Admin"]

    reference = krippendorff.alpha(
        reliability_data=np.array([ANN, BEN], dtype=float),
        value_domain=np.arange(1, 11),
        level_of_measurement="ordinal",
    )
    assert _metric(at, "Krippendorff's alpha (ordinal)") == f"{reference:.3f}"
    assert _metric(at, "Ratings") == "12"
    assert _metric(at, "Flagged answers") == "1"

    progress, *_ = (d.value for d in at.dataframe)
    assert list(progress.labeler) == ["ann", "ben"]
    assert list(progress.done) == [6, 6] and list(progress.assigned) == [6, 6]
    assert list(progress.bias) == pytest.approx([np.mean(ANN) - np.mean(BEN), np.mean(BEN) - np.mean(ANN)])
    spearman = next(d.value for d in at.dataframe if "spearman" in d.value.columns)
    assert spearman.spearman.iloc[0] == pytest.approx(spearmanr(ANN, BEN).statistic)
    flags = next(d.value for d in at.dataframe if "reason" in d.value.columns)
    assert list(flags.reason) == ["<i>unsafe</i> answer"]

    at.toggle[0].set_value(True).run()  # z-score calibration
    assert not at.exception


def test_export_buttons_write_an_export_and_show_its_path(
    rated: Review, app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CURATRAIN_REVIEW_EXPORTS", str(tmp_path / "exports"))  # `serve --export-dir`
    at = app("root")
    at.switch_page("views/admin.py").run()
    assert at.text_input(key="export_name").value == "qa"  # the project's name by default
    at.text_input(key="export_name").input("round-1/qa")
    button(at, "Export preference pairs").click()
    at.run()
    assert not at.error, at.error
    out = tmp_path / "exports" / "round-1" / "qa-preference"
    assert at.success[0].value.startswith(f"Wrote {out} (")
    manifest = read_manifest(out)
    assert manifest.kind == "preference" and sum(manifest.counts.splits.values()) > 0


@pytest.mark.parametrize(
    "name", ["/tmp/outside", "../outside", "~/outside", "a/../../outside", "round-1/../../x", ".hidden", "a\\b", ""]
)
def test_exports_stay_under_the_export_directory(
    rated: Review, app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """The issue's case: absolute paths, '../' and '~' were written to as given. Now only a name under the
    server's export directory is accepted; anything else is one line, and nothing is written anywhere."""
    root = tmp_path / "exports"
    monkeypatch.setenv("CURATRAIN_REVIEW_EXPORTS", str(root))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    at = app("root")
    at.switch_page("views/admin.py").run()
    at.text_input(key="export_name").input(name)
    button(at, "Export SFT set").click()
    at.run()
    assert not at.exception and not at.success
    assert len(at.error) == 1 and "must be a folder name under the export directory" in at.error[0].value
    assert sorted(p.name for p in tmp_path.iterdir()) == ["review.db", "review.db-shm", "review.db-wal"]


def test_a_symbolic_link_out_of_the_export_directory_is_refused(
    rated: Review, app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, outside = tmp_path / "exports", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside)
    monkeypatch.setenv("CURATRAIN_REVIEW_EXPORTS", str(root))
    at = app("root")
    at.switch_page("views/admin.py").run()
    at.text_input(key="export_name").input("link/qa")
    button(at, "Export reward data").click()
    at.run()
    assert [e.value for e in at.error] == [
        f"export name 'link/qa' leads out of the export directory {root} (a symbolic link)"
    ]
    assert not any(outside.iterdir())


def test_labeler_cannot_reach_the_admin_page(review: Review, app) -> None:
    at = app("ann")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("views/admin.py")
    # Even when the page script runs for a labeler (a crafted URL), it shows nothing but a refusal.
    page = AppTest.from_file(str(Path(APP).parent / "views" / "admin.py"), default_timeout=30)
    page.session_state["user"] = User(id=review.labeler_id("ann"), name="ann", role="labeler")
    page.session_state["project"] = PROJECT
    page.run()
    assert [e.value for e in page.error] == ["The admin page is for admins only."]
    assert not page.metric and not page.dataframe


def test_admin_page_before_any_rating(review: Review, app) -> None:
    at = app("root")
    at.switch_page("views/admin.py").run()
    assert not at.exception and not at.error
    assert _metric(at, "Krippendorff's alpha (ordinal)") == "n/a"
    assert [i.value for i in at.info] == [
        "No ratings yet.",
        "Agreement needs at least two labelers rating the same answers.",
    ]
    button(at, "Export SFT set").click()
    at.run()
    assert [e.value for e in at.error] == ["project 'qa' has no ratings yet: nothing to export"]
