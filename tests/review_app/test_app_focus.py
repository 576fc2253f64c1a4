"""The Rate and Compare pages put the cursor in the rating field through st.html, with no deprecated API."""

from __future__ import annotations

import pytest
import streamlit.deprecation_util
from review_harness import Review


@pytest.fixture
def deprecations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every deprecation warning Streamlit emits while the test runs (it logs them; the browser never sees them)."""
    seen: list[str] = []
    original = streamlit.deprecation_util.show_deprecation_warning

    def record(message: str, *args, **kwargs) -> None:
        seen.append(message)
        original(message, *args, **kwargs)

    monkeypatch.setattr(streamlit.deprecation_util, "show_deprecation_warning", record)
    return seen


def test_focus_script_runs_per_item_without_deprecation_warnings(review: Review, app, deprecations) -> None:
    at = app("ann")
    task = at.session_state["rate_task"]
    scripts = [h for h in at.get("html") if "<script" in h.proto.body and "curatrainSessionWatch" not in h.proto.body]
    assert len(scripts) == 1 and scripts[0].proto.unsafe_allow_javascript
    assert f'data-item="{task.answer_id}"' in scripts[0].proto.body  # new HTML per item: the script runs again
    assert 'input[aria-label=\\"Rating (1-10)\\"]' in scripts[0].proto.body

    at.switch_page("views/compare.py").run()
    assert not at.exception
    scripts = [h for h in at.get("html") if "<script" in h.proto.body and "curatrainSessionWatch" not in h.proto.body]
    assert len(scripts) == 1 and 'input[aria-label=\\"Rating for A (1-10)\\"]' in scripts[0].proto.body
    assert deprecations == []
