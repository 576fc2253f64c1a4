"""The LLM judge's engine: strict parsing, rubrics, retries, compare mode's both orders, a real chat server misbehaving."""

from __future__ import annotations

from pathlib import Path

import pytest
from judge_server import Behaviour, answer_in, chat_server

from curate.errors import CurateError
from curate.review.judge import (
    REMINDER,
    EndpointBackend,
    EndpointUnavailable,
    LocalBackend,
    compare,
    load_rubric,
    parse_pair,
    parse_score,
    position_bias,
    rate,
)

SCORES = {"Canberra.": 9, "Sydney.": 2, "It's Canberra, I think.": 5}
QUESTION = "What is the capital of Australia?"


@pytest.mark.parametrize(
    ("reply", "score"),
    [("7", 7), (" 10 ", 10), ("7/10", 7), ("Rating: 3", 3), ("score=8.", 8), ("0", None), ("11", None)],
)
def test_a_rating_reply_is_the_score_and_nothing_else(reply: str, score: int | None) -> None:
    assert parse_score(reply) == score


@pytest.mark.parametrize("reply", ["", "7 because it is good", "I'd say 7", "7.5", "seven", "7, 8", "Rating: 7\nok"])
def test_anything_else_does_not_parse(reply: str) -> None:
    assert parse_score(reply) is None


def test_a_compare_reply_is_both_scores() -> None:
    assert parse_pair("A: 7, B: 4") == (7, 4) and parse_pair("a=10; b=1") == (10, 1)
    assert parse_pair("A: 7\nB: 4") == (7, 4) and parse_pair("A: 7/10, B: 4/10.") == (7, 4)
    assert parse_pair("A: 7") is None and parse_pair("B: 4, A: 7") is None and parse_pair("A is better") is None


def test_rubrics_default_custom_and_broken(tmp_path: Path) -> None:
    assert "1 to 10" in load_rubric(None, "rate").render(prompt="q", answer="a")
    assert "Answer B:\nb" in load_rubric(None, "compare").render(prompt="q", answer_a="a", answer_b="b")
    custom = tmp_path / "strict.jinja"
    custom.write_text("Score {{ answer }} for {{ prompt }} from 1 to 10.")
    assert load_rubric(custom, "rate").render(prompt="q", answer="a") == "Score a for q from 1 to 10."
    broken = tmp_path / "broken.jinja"
    broken.write_text("Score {{ answer }\n")
    with pytest.raises(CurateError, match=r"broken.jinja line 1: not a valid Jinja2 template"):
        load_rubric(broken, "rate")
    with pytest.raises(
        CurateError, match=r"'answer' is undefined; a compare rubric may use prompt, answer_a, answer_b"
    ):
        load_rubric(custom, "compare")


def scorer(question: str, n: int) -> str:
    return str(SCORES[answer_in(question)])


def test_an_endpoint_rates_answers(tmp_path: Path) -> None:
    behaviour = Behaviour(reply=scorer)
    with chat_server(behaviour) as url:
        verdicts = rate(EndpointBackend(url, "judge-7b"), load_rubric(None, "rate"), [(QUESTION, a) for a in SCORES])
    assert [(v.score, v.tries) for v in verdicts] == [(9, 1), (2, 1), (5, 1)]
    assert {r["model"] for r in behaviour.requests} == {"judge-7b"} and behaviour.requests[0]["temperature"] == 0


def test_bad_output_is_retried_with_a_reminder_then_recorded_unparseable() -> None:
    def first_garbage(question: str, n: int) -> str:
        return str(SCORES[answer_in(question)]) if REMINDER["rate"] in question else "What a lovely answer!"

    with chat_server(Behaviour(reply=first_garbage)) as url:
        verdicts = rate(EndpointBackend(url, "j"), load_rubric(None, "rate"), [(QUESTION, "Canberra.")])
    assert (verdicts[0].score, verdicts[0].tries) == (9, 2)
    never = Behaviour(reply=lambda q, n: "Canberra is right, so high.")
    with chat_server(never) as url:
        verdicts = rate(EndpointBackend(url, "j"), load_rubric(None, "rate"), [(QUESTION, "Canberra.")], 2)
    assert (verdicts[0].score, verdicts[0].tries, verdicts[0].reply) == (None, 3, "Canberra is right, so high.")
    assert len(never.requests) == 3 and [r["temperature"] for r in never.requests] == [0, 0.7, 0.7]


def test_compare_asks_both_orders_and_reports_position_bias() -> None:
    def leans_first(question: str, n: int) -> str:  # one point more for whichever answer is shown first
        return f"A: {SCORES[answer_in(question, 'Answer A')] + 1}, B: {SCORES[answer_in(question, 'Answer B')]}"

    behaviour = Behaviour(reply=leans_first)
    with chat_server(behaviour) as url:
        result = compare(EndpointBackend(url, "j"), load_rubric(None, "compare"), QUESTION, list(SCORES))
    assert len(behaviour.requests) == 6  # 3 pairs x 2 orders
    # each answer got s + 1 shown first and s shown second: mean s + 0.5, rounded half up
    assert [v.score for v in result.verdicts] == [10, 3, 6]
    assert result.verdicts[0].reply.count("shown first") == 2 and result.verdicts[0].reply.count("shown second") == 2
    bias = position_bias([result])
    assert bias["replies"] == 6 and bias["mean_first_minus_second"] == pytest.approx(1.0)
    fair = Behaviour(reply=lambda q, n: f"A: {SCORES[answer_in(q, 'Answer A')]}, B: {SCORES[answer_in(q, 'Answer B')]}")
    with chat_server(fair) as url:
        even = compare(EndpointBackend(url, "j"), load_rubric(None, "compare"), QUESTION, list(SCORES))
    assert [v.score for v in even.verdicts] == [9, 2, 5]
    assert position_bias([even])["first_preferred"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        (Behaviour(delay=3.0), "did not answer within 0.5 s (2 tries)"),
        (Behaviour(status=500), "answered HTTP 500: the model is overloaded"),
        (Behaviour(status=401), "refused the key (401): set $JUDGE_KEY to a valid key"),
        (Behaviour(raw_body=b"<html>502 Bad Gateway</html>"), "sent something that is not a chat completion"),
    ],
)
def test_a_misbehaving_endpoint_stops_with_one_line_after_bounded_retries(behaviour: Behaviour, message: str) -> None:
    with chat_server(behaviour) as url:
        backend = EndpointBackend(url, "j", key_env="JUDGE_KEY", timeout=0.5, retries=1)
        with pytest.raises(EndpointUnavailable) as caught:
            rate(backend, load_rubric(None, "rate"), [(QUESTION, "Canberra.")])
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert len(behaviour.requests) <= 2  # one try and at most one retry, never more


def test_an_endpoint_that_is_down() -> None:
    with chat_server(Behaviour()) as url:
        pass  # the server is gone: its port refuses connections
    with pytest.raises(EndpointUnavailable, match=r"judge endpoint http://127.0.0.1:\d+/v1 is unreachable"):
        rate(EndpointBackend(url, "j", timeout=0.5, retries=0), load_rubric(None, "rate"), [(QUESTION, "x")])


def test_the_offline_smollm2_judge_runs_the_mechanics() -> None:
    """SmolLM2-135M as the default local judge: every verdict is a 1-10 score or an unparseable reply, never a
    made-up default (its judgement is not the point)."""
    backend = LocalBackend("smollm2", batch_size=4)
    verdicts = rate(backend, load_rubric(None, "rate"), [(QUESTION, a) for a in SCORES], parse_retries=1)
    assert len(verdicts) == 3
    for verdict in verdicts:
        assert verdict.reply.startswith("Rating:") and 1 <= verdict.tries <= 2
        assert (verdict.score is None) == (parse_score(verdict.reply) is None)
    assert any(v.score is not None for v in verdicts)
