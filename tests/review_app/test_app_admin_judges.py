"""Admin page: LLM judges against the people, and a reward run's score beside each answer — admins only."""

from __future__ import annotations

import krippendorff
import numpy as np
from review_harness import PROJECT, Review

from curate.review.judges import JudgeVerdict

ANN = [9, 2, 8, 1, 9, 3]  # in import order, as in test_app_admin.py
BEN = [8, 3, 7, 2, 10, 2]
JUDGE = [2, 9, 3, 10, 1, 8]  # contrary to both
SCORES = [1.5, -0.5, 1.25, -1.0, 2.0, -0.25]


def _rate_all(review: Review, name: str, values: list[int]) -> None:
    labeler = review.labeler_id(name)
    while (task := review.store.next_rating_task(labeler, PROJECT)) is not None:
        review.store.submit_rating(labeler, task.answer_id, values[_position(review, task.answer_id)], None, 2.0)


def _position(review: Review, answer_id: int) -> int:
    return list(review.store.scores.answers(PROJECT).answer_id).index(answer_id)


def test_admin_sees_the_judge_against_people_and_model_scores(review: Review, app) -> None:
    _rate_all(review, "ann", ANN)
    _rate_all(review, "ben", BEN)
    answers = list(review.store.scores.answers(PROJECT).answer_id)
    judge = review.store.judges.labeler("smollm2")
    verdicts = [JudgeVerdict(a, score, f"Rating: {score}") for a, score in zip(answers, JUDGE, strict=True)]
    assert review.store.judges.record(judge, verdicts) == (6, 0)
    review.store.scores.record(PROJECT, "qa-reward", zip(answers, SCORES, strict=True))

    at = app("root")
    at.switch_page("views/admin.py").run()
    assert not at.exception and not at.error
    people_only = krippendorff.alpha(
        reliability_data=np.array([ANN, BEN], dtype=float),
        value_domain=np.arange(1, 11),
        level_of_measurement="ordinal",
    )
    assert next(m.value for m in at.metric if m.label.startswith("Krippendorff")) == f"{people_only:.3f}"
    frames = [df.value for df in at.dataframe]
    judges = next(f for f in frames if "n_shared" in f.columns)
    row = judges.iloc[0]
    assert (row.judge, int(row.n_shared)) == ("smollm2", 6) and row.spearman < 0 and row.counts.startswith("no: ")
    progress = next(f for f in frames if "seconds_per_rating" in f.columns)
    assert "smollm2" not in set(progress.labeler)  # the judge is not a person with a queue
    scored = next(f for f in frames if "score" in f.columns)
    assert list(scored.score) == SCORES and list(scored.people) == [(a + b) / 2 for a, b in zip(ANN, BEN, strict=True)]
    assert list(scored.judges) == JUDGE
    assert any("Spearman of qa-reward's scores vs the people's mean rating" in c.value for c in at.caption)


def test_labelers_see_neither_the_judge_nor_the_scores(review: Review, app) -> None:
    answers = list(review.store.scores.answers(PROJECT).answer_id)
    judge = review.store.judges.labeler("smollm2")
    review.store.judges.record(judge, [JudgeVerdict(a, 7, "Rating: 7") for a in answers])
    review.store.scores.record(PROJECT, "qa-reward", [(a, 0.123456) for a in answers])
    at = app("ann")
    shown = " ".join(str(e.value) for e in [*at.markdown, *at.text, *at.caption] if hasattr(e, "value"))
    assert "smollm2" not in shown and "0.123" not in shown and "Rating: 7" not in shown
    assert shown and not at.exception  # the Rate page is up: ann sees her task, nothing of the judge or the run
