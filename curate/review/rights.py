"""Who may do what in the review store: the operator sets up projects and accounts, admins read everyone's work.

The store, not only the UI, enforces it. Reads of everyone's work (ratings, flags, stats,
progress, labelers) and exports take the acting labeler (`actor=`) and refuse anyone but an
active admin. `ReviewStore(url)` is the operator's store (CLI, scripts: whoever holds the
database URL can read every row with sqlite3/psql anyway, and the CLI must work before any
admin exists), where `actor` may be left out; the review app opens `ReviewStore(url,
operator=False)`, where it may not, and which cannot create projects, import items or manage
labelers at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from curate.errors import CurateError
from curate.review.database import Database
from curate.review.models import Labeler


class AuthError(CurateError):
    """Refused: a failed login (unknown labeler, deactivated account, wrong password) or missing rights."""


@dataclass(frozen=True)
class Rights:
    """The rights checks of one store: `operator` is False for the review app's store."""

    db: Database
    operator: bool

    def require_operator(self, what: str) -> None:
        """Refuse `what` on the review app's store: only the operator (the CLI) sets up projects and accounts."""
        if not self.operator:
            raise AuthError(f"only the operator may {what}, with `curate review` on the database: not from the app")

    def require_admin(self, actor: int | None, what: str) -> None:
        """Refuse `what` unless `actor` is an active admin; no actor means the operator (not on the app's store)."""
        if actor is None:
            if not self.operator:
                raise AuthError(f"only an admin may {what}: the review app must say which admin asks (actor=)")
            return
        with self.db.session() as s:
            labeler = s.get(Labeler, actor) if isinstance(actor, int) and not isinstance(actor, bool) else None
        if labeler is None:
            raise AuthError(f"only an admin may {what}: no labeler with id {actor!r}")
        if labeler.role != "admin":
            raise AuthError(f"only an admin may {what}; {labeler.name!r} is a labeler")
        if not labeler.active:
            raise AuthError(f"only an active admin may {what}; {labeler.name!r} is deactivated")
