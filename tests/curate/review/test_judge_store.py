"""`curate review judge`: an LLM judge rates a project as one more rater, through a real chat server on localhost.

Its ratings are stored as a judge labeler's (tagged in exports, never shown to labelers, taking no slot from
people), unparseable replies are kept as such, a re-run rates only what is missing, a down endpoint stops
with one line after saving what was done, compare mode reports the judge's position bias, and exports count
the judge only when it agrees with the people.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from judge_server import Behaviour, answer_in, chat_server
from store_helpers import labeler
from typer.testing import CliRunner

from curate.cli import app
from curate.errors import CurateError
from curate.review.store import ReviewStore

ROOT = Path(__file__).resolve().parents[3]
ITEMS = [json.loads(line) for line in (ROOT / "data/qa/items.jsonl").read_text().splitlines()]
TRUTH = pd.read_json(ROOT / "data/qa/ratings.jsonl", lines=True).groupby("response").rating.mean().round().astype(int)


def truthful(question: str, n: int) -> str:
    """A judge that gives data/qa's mean human rating (rounded)."""
    return str(TRUTH[answer_in(question)])


def project(db: str, items: int = 8, mode: str = "rate") -> ReviewStore:
    store = ReviewStore(db, password_rounds=4)
    store.create_project("qa", overlap=2, mode=mode)
    store.import_items("qa", ITEMS[:items])
    return store


def people_rate(store: ReviewStore, lean: dict[str, int]) -> dict[str, int]:
    """Each labeler rates every answer they get: data/qa's mean rating plus their lean."""
    ids = {name: labeler(store, name) for name in lean}
    for name, labeler_id in ids.items():
        while (task := store.next_rating_task(labeler_id, "qa")) is not None:
            value = int(min(10, max(1, TRUTH[task.answer] + lean[name])))
            store.submit_rating(labeler_id, task.answer_id, value, None, 1.0)
    return ids


def judge(db: str, url: str, *args: str) -> tuple[int, str]:
    cli = ["review", "judge", "--project", "qa", "--endpoint", url, "--model", "judge-7b", "--timeout", "2"]
    result = CliRunner().invoke(app, [*cli, *args, "--db", db, "-q"], env={"COLUMNS": "250"})
    return result.exit_code, result.output


def test_a_judge_rates_every_answer_once_as_one_more_rater(db_url: str) -> None:
    store = project(db_url)
    ids = people_rate(store, {"ann": 0, "ben": -1})
    behaviour = Behaviour(reply=truthful)
    with chat_server(behaviour) as url:
        code, output = judge(db_url, url)
        assert code == 0, output
        answers = sum(len(item["answers"]) for item in ITEMS[:8])
        assert f"{answers} of {answers} answer(s) rated, 0 unparseable" in output
        assert len(behaviour.requests) == answers
        code, output = judge(db_url, url)  # resumable: nothing is missing, nothing is asked
        assert code == 0 and "nothing left to judge" in output and len(behaviour.requests) == answers
    ratings = store.reports.ratings_frame("qa")
    mine = ratings[ratings.labeler == "judge-7b"]
    assert (
        len(mine) == answers and set(mine.labeler_kind) == {"judge"} and set(ratings.labeler_kind) == {"human", "judge"}
    )
    assert (mine.rating.to_numpy() == TRUTH[mine.response].to_numpy()).all()
    # labelers stay blind, and the judge took no slot: each still sees only their own ratings
    for labeler_id in ids.values():
        own = store.reports.ratings_frame("qa", labeler_id, actor=labeler_id)
        assert set(own.labeler_kind) == {"human"} and own.labeler_id.nunique() == 1
    assert "| judge-7b |" not in output  # the table is rich's, not markdown
    assert "judge-7b" in output and "yes:" in output  # it agrees with the people: exports count it
    rows = store.reports.rated_rows("qa")
    assert {r.get("labeler_kind") for r in rows} == {None, "judge"}
    with pytest.raises(CurateError, match="is an LLM judge: it rates through `curate review judge`"):
        store.accounts.reset_password("judge-7b")
    store.close()


def test_unparseable_replies_are_kept_and_asked_again_only_when_told(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'review.db'}"
    ReviewStore(db, migrate=True).close()
    store = project(db, items=2)

    def shy_about_sydney(question: str, n: int) -> str:
        return "I would rather not say." if answer_in(question) == "Sydney." else truthful(question, n)

    behaviour = Behaviour(reply=shy_about_sydney)
    with chat_server(behaviour) as url:
        code, output = judge(db, url, "--parse-retries", "1")
        assert code == 0 and "1 unparseable" in output, output
        failures = store.judges.failures("qa")
        assert list(failures.response) == ["Sydney."] and list(failures.reply) == ["I would rather not say."]
        assert list(failures.tries) == [2]
        asked = len(behaviour.requests)
        assert judge(db, url)[1].count("nothing left to judge") == 1 and len(behaviour.requests) == asked
        code, output = judge(db, url, "--retry-failed", "--parse-retries", "0")
        assert code == 0 and len(behaviour.requests) == asked + 1 and "0 of 1 answer(s) rated, 1 unparseable" in output
    ratings = store.reports.ratings_frame("qa")
    assert "Sydney." not in set(ratings.response)  # never a made-up score


def test_a_down_endpoint_stops_with_one_line_and_a_rerun_finishes(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'review.db'}"
    ReviewStore(db, migrate=True).close()
    store = project(db, items=4)
    total = sum(len(item["answers"]) for item in ITEMS[:4])
    with chat_server(Behaviour(reply=truthful)) as url:
        code, output = judge(db, url, "--limit", "4", "--batch-size", "2")
        assert code == 0 and "4 of 4 answer(s) rated" in output
    slow = Behaviour(reply=truthful, delay=5)
    with chat_server(slow) as url:
        code, output = judge(db, url, "--retries", "0", "--timeout", "0.5")
    assert code == 1 and len(output.strip().splitlines()) == 1 and "Traceback" not in output
    assert "did not answer within 0.5 s (1 tries); 0 of " in output and "run the same command again" in output
    with chat_server(Behaviour(reply=truthful)) as url:
        code, output = judge(db, url)
        assert code == 0 and f"{total - 4} of {total - 4} answer(s) rated" in output
    assert len(store.reports.ratings_frame("qa")) == total
    with chat_server(Behaviour()) as url:
        pass  # gone: its port refuses connections
    code, output = judge(db, url, "--retries", "0")
    assert code == 0 and "nothing left to judge" in output  # nothing to ask: the endpoint is never called


def test_compare_mode_sees_both_orders_and_reports_position_bias(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'review.db'}"
    ReviewStore(db, migrate=True).close()
    store = project(db, items=3, mode="compare")

    def leans_first(question: str, n: int) -> str:
        return f"A: {min(10, TRUTH[answer_in(question, 'Answer A')] + 2)}, B: {TRUTH[answer_in(question, 'Answer B')]}"

    behaviour = Behaviour(reply=leans_first)
    with chat_server(behaviour) as url:
        code, output = judge(db, url)
    assert code == 0, output
    pairs = sum(len(item["answers"]) * (len(item["answers"]) - 1) for item in ITEMS[:3])
    assert len(behaviour.requests) == pairs  # every two answers, in both orders
    assert "Position bias: the answer shown first scored +" in output and f"of {pairs} replies" in output
    ratings = store.reports.ratings_frame("qa")
    assert set(ratings["mode"]) == {"compare"} and ratings.comment.str.contains("shown first").all()


def test_exports_count_a_judge_only_when_it_agrees_with_people(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'review.db'}"
    ReviewStore(db, migrate=True).close()
    store = project(db, items=10)
    people_rate(store, {"ann": 0, "ben": 1})

    def contrarian(question: str, n: int) -> str:
        return str(11 - TRUTH[answer_in(question)])

    with chat_server(Behaviour(reply=contrarian)) as url:
        assert judge(db, url, "--name", "contrarian")[0] == 0
    with chat_server(Behaviour(reply=truthful)) as url:
        assert judge(db, url, "--name", "faithful")[0] == 0
    out = tmp_path / "pairs"
    args = ["review", "export", "--project", "qa", "--kind", "preference", "--out", str(out), "--db", db, "-q"]
    assert CliRunner().invoke(app, args).exit_code == 0
    judges = {j["name"]: j for j in json.loads((out / "manifest.json").read_text())["derive"]["raters"]["judges"]}
    assert judges["faithful"]["counted"] and not judges["contrarian"]["counted"]
    assert "is below 0.667" in judges["contrarian"]["reason"]
    card = (out / "README.md").read_text()
    assert "| contrarian |" in card and "no: alpha" in card and "| faithful |" in card
    pairs = pd.concat(pd.read_parquet(p) for p in (out / "data").glob("*.parquet"))
    assert pairs.judge.all() and (pairs.n_raters == 3).all()  # people plus the faithful judge, never the contrarian
    rated = tmp_path / "rated"
    assert CliRunner().invoke(app, [*args[:4], "--kind", "rated", "--out", str(rated), "--db", db, "-q"]).exit_code == 0
    rows = pd.concat(pd.read_parquet(p) for p in (rated / "data").glob("*.parquet"))
    assert set(rows[rows.labeler.isin(["faithful", "contrarian"])].labeler_kind) == {"judge"}
    assert set(rows[rows.labeler.isin(["ann", "ben"])].labeler_kind) == {"human"}


def test_new_answers_only_refuses_prompts_the_project_lacks(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'review.db'}"
    ReviewStore(db, migrate=True).close()
    store = project(db, items=2)
    items = tmp_path / "generated.jsonl"
    rows = [
        {"prompt": ITEMS[0]["prompt"], "answers": ["A new answer."]},
        {"prompt": "Not asked here?", "answers": ["x"]},
    ]
    items.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["review", "import", str(items), "--project", "qa", "--new-answers-only", "--db", db, "-q"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "250"})
    assert result.exit_code == 1 and "line 2: field 'prompt': not a prompt of the project" in result.output
    assert len(store.prompts("qa")) == 2 and sum(len(i["answers"]) for i in ITEMS[:2]) == len(
        store.scores.answers("qa")
    )  # nothing half-imported
    items.write_text(json.dumps(rows[0]) + "\n")
    assert CliRunner().invoke(app, args).exit_code == 0 and len(store.scores.answers("qa")) == 1 + sum(
        len(i["answers"]) for i in ITEMS[:2]
    )
