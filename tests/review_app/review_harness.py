"""Helpers of the review app tests: the sample project, and driving the login pages of an AppTest."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from streamlit.testing.v1 import AppTest

from curate.review.store import ReviewStore

APP = Path(__file__).resolve().parents[2] / "review_app" / "app.py"
PROJECT = "qa"
# Untrusted model output: must show up as literal text, never as HTML or rendered Markdown.
HOSTILE = "<script>window.pwned = 1</script> **bold** [link](http://evil.example) <img src=x onerror=alert(1)>"
ITEMS = [
    {"prompt": "What is 2 + 2?", "answers": ["4", "5"], "models": ["m-a", "m-b"]},
    {"prompt": "Name a primary colour.", "answers": ["Red.", HOSTILE], "models": ["m-a", "m-b"]},
    {"prompt": "Capital of France?", "answers": ["Paris.", "Lyon."], "models": ["m-a", "m-b"]},
]


@dataclass
class Review:
    """The store under test and the passwords of its users."""

    url: str
    store: ReviewStore
    passwords: dict[str, str]

    def labeler_id(self, name: str) -> int:
        """The id of a user (read by the operator: logging in would use up a one-time password)."""
        return next(labeler.id for labeler in self.store.accounts.labelers() if labeler.name == name)


def login(at: AppTest, name: str, password: str) -> AppTest:
    """Fill and submit the login form."""
    at.text_input(key="login_name").input(name)
    at.text_input(key="login_password").input(password)
    at.button[0].click()
    return at.run()


def choose_password(at: AppTest, password: str) -> AppTest:
    """Replace the one-time password on the first-login page."""
    at.text_input(key="new_password").input(password)
    at.text_input(key="new_password_again").input(password)
    at.button[0].click()
    return at.run()


def button(at: AppTest, label: str):
    """The (form submit) button with this label."""
    matches = [b for b in at.button if b.label == label]
    assert len(matches) == 1, f"expected one {label!r} button, found {[b.label for b in at.button]}"
    return matches[0]


def progress_text(at: AppTest) -> str:
    """The always-visible 'Progress: done / assigned' line."""
    return at.progress[0].text
