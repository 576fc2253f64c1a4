"""`curate review export --calibrate --min-agreement`: a harsh and a generous labeler rated through the store."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from store_helpers import labeler
from typer.testing import CliRunner

from curate.cli import app
from curate.review.store import ReviewStore

ROOT = Path(__file__).resolve().parents[3]


def test_export_calibrates_labelers_who_lean(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'review.db'}"
    store = ReviewStore(db, password_rounds=4, migrate=True)
    store.create_project("qa", overlap=2)
    items = (ROOT / "data/qa/items.jsonl").read_text().splitlines()[:24]
    store.import_items("qa", [json.loads(line) for line in items])
    truth = pd.read_json(ROOT / "data/qa/ratings.jsonl", lines=True).groupby("response").rating.mean().round()
    lean = {"harsh": -2, "neutral": 0, "kind": 2}
    labelers = {}
    for name in lean:
        labelers[name] = labeler(store, name)
    # three labelers, two per item: every answer is rated by a pair that leans -2/0, -2/+2 or 0/+2 on average
    active = list(lean)
    while active:
        for name in list(active):
            task = store.next_rating_task(labelers[name], "qa")
            if task is None:
                active.remove(name)
                continue
            value = int(min(10, max(1, truth[task.answer] + lean[name])))
            store.submit_rating(labelers[name], task.answer_id, value, None, 1.0)

    def export(out: str, *flags: str) -> pd.DataFrame:
        args = ["review", "export", "--project", "qa", "--kind", "reward", "--out", str(tmp_path / out), "-q"]
        result = CliRunner().invoke(app, [*args, *flags, "--db", db])
        assert result.exit_code == 0, result.output
        return pd.concat(pd.read_parquet(p) for p in (tmp_path / out / "data").glob("*.parquet"))

    raw, calibrated = export("raw"), export("cal", "--calibrate")
    error = {
        name: (frame.set_index("response").mean_rating - truth).abs().mean()
        for name, frame in (("raw", raw), ("calibrated", calibrated))
    }
    assert error["raw"] > 0.6 and error["calibrated"] < error["raw"] / 2
    assert (raw.n_raters == 2).all() and not raw.judge.any()
    card = (tmp_path / "cal/README.md").read_text()
    assert "**calibrated**" in card and "3 human rater(s)" in card
    agreed = export("agreed", "--min-agreement", "0.8")
    assert 0 < len(agreed) < len(raw) and (agreed.agreement >= 0.8).all()
    manifest = json.loads((tmp_path / "agreed/manifest.json").read_text())
    assert manifest["derive"]["rules"]["min_agreement"] == 0.8
    assert manifest["derive"]["skipped"]["answer: raters agree less than 0.8"] == len(raw) - len(agreed)
