"""Helpers of the review-store tests: labelers with known ids, and work started in threads at one instant."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from curate.review.store import ReviewStore

Arg = TypeVar("Arg")


def labeler(store: ReviewStore, name: str, role: str = "labeler") -> int:
    """Add a labeler and log in with the one-time password; returns their id."""
    return store.accounts.authenticate(name, store.accounts.add_labeler(name, role)).id


def run_at_once(work: Callable[[Arg], object], args: Sequence[Arg]) -> None:
    """`work(arg)` for every arg, each in its own thread, all released together; fails with the errors raised."""
    start = threading.Barrier(len(args))
    errors: list[BaseException] = []

    def run(arg: Arg) -> None:
        try:
            start.wait()
            work(arg)
        except BaseException as exc:  # surfaced below, in the test's own thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(arg,)) for arg in args]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
