"""Console output shared by the `curate` and `train` CLIs: one red line for errors, never a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from curate.errors import CurateError

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> typer.Exit:
    """Print one red error line; return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


def user_errors(func: F) -> F:
    """Turn CurateError (and other errors callers mark as user-facing) into one red line + exit 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CurateError as exc:
            raise fail(str(exc)) from None

    return wrapper  # type: ignore[return-value]
