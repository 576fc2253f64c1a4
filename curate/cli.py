"""The `curate` command line. Each verb lives in its own module under `curate/commands/`."""

from __future__ import annotations

import typer

from curate.commands.build import build_command
from curate.commands.dedupe import dedupe_command
from curate.commands.lengths import lengths_command
from curate.commands.review import review_app
from curate.config import keys_help
from curate.recipe import BuildRecipe

app = typer.Typer(
    name="curate",
    help="Build instruction, preference and classification datasets from raw examples and human ratings.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # click's plain help: at 80 columns rich's option table cuts names and choices
)


@app.callback()
def _curate() -> None:
    """Build instruction, preference and classification datasets from raw examples and human ratings."""


# Verbs: one line each, defined in curate/commands/<verb>.py.
app.command("build", epilog=keys_help(BuildRecipe, "split.seed=3"))(build_command)
app.add_typer(review_app, name="review")
app.command("lengths")(lengths_command)
app.command("dedupe")(dedupe_command)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
