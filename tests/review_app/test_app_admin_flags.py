"""Admin page: "Clear flag" resolves a flag; the answer leaves the flagged list and the flag stays as history."""

from __future__ import annotations

from review_harness import PROJECT, Review


def test_admin_clears_a_flag_and_it_moves_to_the_history(review: Review, app) -> None:
    ann = review.labeler_id("ann")
    task = review.store.next_rating_task(ann, PROJECT)
    review.store.flag(ann, task.answer_id, "<b>wrong</b> maths")
    flag_id = int(review.store.reports.flagged(PROJECT).flag_id.iloc[0])

    at = app("root")
    at.switch_page("views/admin.py").run()
    assert not at.exception and not at.error
    assert next(m.value for m in at.metric if m.label == "Flagged answers") == "1"
    assert f"Flag {flag_id} by ann: <b>wrong</b> maths" in [t.value for t in at.text]  # plain text, not HTML

    at.button(key=f"clear-flag-{flag_id}").click().run()
    assert not at.exception and not at.error
    assert [s.value for s in at.success] == [f"Cleared flag {flag_id}: its answer counts in exports again."]
    assert next(m.value for m in at.metric if m.label == "Flagged answers") == "0"  # figures read afresh
    assert "Nothing flagged." in [c.value for c in at.caption]
    assert review.store.reports.flagged(PROJECT).empty
    history = next(d.value for d in at.dataframe if "cleared_by" in d.value.columns)
    assert history[["flag_id", "labeler", "reason", "cleared_by"]].values.tolist() == [
        [flag_id, "ann", "<b>wrong</b> maths", "root"]
    ]
    assert history.cleared_at.notna().all()
