"""Model answers are shown as literal text: `<script>`, HTML and Markdown in them are never rendered, and
invisible or direction-changing characters in them are marked."""

from __future__ import annotations

from pathlib import Path

from review_harness import APP, HOSTILE, PROJECT, Review, button


def _rendered_markup(at) -> list[str]:
    """Everything the page hands to a Markdown/HTML renderer, but for our own fixed scripts (checked apart)."""
    html = [e.proto.body for e in at.get("html")]
    focus = [body for body in html if body.startswith('<script data-item="') and "querySelectorAll" in body]
    watch = [body for body in html if "curatrainSessionWatch" in body]
    # The rating field's autofocus (widgets.focus_input) and the session watch (widgets.session_watch), no other.
    assert len(focus) <= 1 and len(watch) == 1
    for script in focus + watch:
        assert "pwned" not in script and "evil.example" not in script and "Red." not in script
    fixed = focus + watch
    return [m.value for m in at.markdown] + [c.value for c in at.caption] + [b for b in html if b not in fixed]


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
    # The two st.html calls are fixed scripts: focus_input's (a constant label and an int) and session_watch's.
    widgets = (Path(APP).parent / "widgets.py").read_text()
    assert widgets.count("st.html(") == 2
    assert widgets.index("def focus_input(") < widgets.index("st.html(") < widgets.index("def session_watch(")
    assert widgets.rindex("st.html(") > widgets.index("def session_watch(")


def test_invisible_and_direction_changing_characters_are_marked(review: Review, app) -> None:
    """An answer can disguise itself: a right-to-left override (U+202E) makes "Paris.\u202egnp.exe" render as
    "Paris.exe.png", a zero-width space hides inside a word. Labelers see them marked, the store keeps them."""
    disguised = "Paris.\u202egnp.exe and zero\u200bwidth"
    review.store.import_items(PROJECT, [{"prompt": "Capital of France?", "answers": [disguised]}])
    at = app("ann")
    while at.session_state["rate_task"] is not None and at.session_state["rate_task"].answer != disguised:
        button(at, "Skip").click()
        at.run()
    assert at.session_state["rate_task"].answer == disguised  # stored verbatim
    assert "Paris.⟦U+202E⟧gnp.exe and zero⟦U+200B⟧width" in [t.value for t in at.text]
    assert (
        "2 invisible or direction-changing characters in this text shown as ⟦U+…⟧: "
        "they can make text read differently from what it holds."
    ) in [c.value for c in at.caption]
    assert not any("\u202e" in t.value or "\u200b" in t.value for t in at.text)
