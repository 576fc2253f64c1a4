"""Model answers are shown as literal text: `<script>`, HTML and Markdown in them are never rendered."""

from __future__ import annotations

from pathlib import Path

from review_harness import APP, HOSTILE, Review, button


def _rendered_markup(at) -> list[str]:
    """Everything the page hands to a Markdown/HTML renderer."""
    return [m.value for m in at.markdown] + [c.value for c in at.caption] + [e.value for e in at.get("html")]


def test_hostile_answer_is_plain_text_on_the_rate_page(review: Review, app) -> None:
    at = app("ann")
    while at.session_state["rate_task"].answer != HOSTILE:
        button(at, "Skip").click()
        at.run()
    assert HOSTILE in [t.value for t in at.text]
    for markup in _rendered_markup(at):
        assert "<script" not in markup and "pwned" not in markup and "evil.example" not in markup


def test_hostile_answer_is_plain_text_on_the_compare_page(review: Review, app) -> None:
    at = app("ben")
    at.switch_page("views/compare.py").run()
    task = at.session_state["compare_task"]
    at.number_input(key=f"a-{task.left_answer_id}-{task.right_answer_id}").set_value(5)
    at.number_input(key=f"b-{task.left_answer_id}-{task.right_answer_id}").set_value(5)
    button(at, "Submit both ratings").click()
    at.run()
    task = at.session_state["compare_task"]
    assert HOSTILE in (task.left_text, task.right_text)
    assert HOSTILE in [t.value for t in at.text]
    for markup in _rendered_markup(at):
        assert "<script" not in markup and "pwned" not in markup


def test_no_page_turns_html_rendering_on() -> None:
    for source in Path(APP).parent.rglob("*.py"):
        assert "unsafe_allow_html" not in source.read_text(), source
        assert "st.html" not in source.read_text(), source
