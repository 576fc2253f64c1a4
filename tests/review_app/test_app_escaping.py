"""Model answers are shown as literal text: `<script>`, HTML and Markdown in them are never rendered."""

from __future__ import annotations

from pathlib import Path

from review_harness import APP, HOSTILE, Review, button


def _rendered_markup(at) -> list[str]:
    """Everything the page hands to a Markdown/HTML renderer, but for our own fixed focus script (checked apart)."""
    html = [e.proto.body for e in at.get("html")]
    focus = [body for body in html if body.startswith('<script data-item="') and "querySelectorAll" in body]
    assert len(focus) <= 1  # the rating field's autofocus (widgets.focus_input), and no other script
    for script in focus:
        assert "pwned" not in script and "evil.example" not in script and "Red." not in script
    return [m.value for m in at.markdown] + [c.value for c in at.caption] + [b for b in html if b not in focus]


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
        if source.name != "widgets.py":
            assert "st.html" not in source.read_text(), source
    # The one st.html call is focus_input's fixed script, which takes only a constant label and an int.
    widgets = (Path(APP).parent / "widgets.py").read_text()
    assert widgets.count("st.html(") == 1 and widgets.index("st.html(") > widgets.index("def focus_input(")
