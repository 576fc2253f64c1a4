"""Console output shared by the `curate` and `train` CLIs: one red line for errors, never a traceback, one progress bar."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from curate.errors import CurateError
from curate.extras import extra_providing

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


class RateColumn(ProgressColumn):
    """Items per second of a progress task, e.g. `1,234 rows/s`."""

    def __init__(self, unit: str = "rows") -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", self.unit)  # a task may count something else (e.g. eval batches)
        return Text(f"{task.speed:,.0f} {unit}/s" if task.speed else "", style="cyan")


def progress_bar(*extra: ProgressColumn, unit: str = "rows", disable: bool = False) -> Progress:
    """The progress bar every verb shows: what, bar, done/total, rate in `unit`/s, elapsed, then `extra` columns."""
    return Progress(
        TextColumn("[bold blue]{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        *extra,
        console=console,
        disable=disable,
    )


def fail(message: str) -> typer.Exit:
    """Print one red error line; return the Exit to raise."""
    # The message quotes what people typed (names, paths): escaped, so "[/]" in it prints as is.
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


def user_errors(func: F) -> F:
    """Turn CurateError (and a missing optional dependency: which extra to install) into one red line + exit 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CurateError as exc:
            raise fail(str(exc)) from None
        except ModuleNotFoundError as exc:  # an optional dependency this verb imports on the way
            extra = extra_providing(exc.name or "")
            if extra is None:
                raise
            raise fail(f"{exc.name} is not installed: pip install 'curatrain[{extra}]'") from None

    return wrapper  # type: ignore[return-value]
