"""The corpus of malformed and awkward input files (tests/corpus/build/), each built as a user would build it.

Every file either builds into exactly the rows listed, or stops the build with exactly the one line
listed (a CurateError, which the CLI prints as one red line) — never a traceback, never silently.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curate.errors import CurateError
from curate.pipeline import build
from curate.recipe import BuildRecipe

CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "build"
SKIP_HINT = " (pass --skip-invalid to drop bad rows and list them in the export)"

# file -> the rows exported (id, prompt, response | chosen, rejected) and the ids dropped with their reason,
# or the error line the build stops with.
CASES: dict[str, dict | str] = {
    # issue 16 item 0: the files as published
    "alpaca_array.json": {
        "rows": [
            ("alpaca_array-2", "Give three tips for staying healthy.", "1. Eat well.\n2. Move.\n3. Sleep."),
            ("alpaca_array-6", "What are the three primary colors?", "Red, blue and yellow."),
        ]
    },
    "pairs.jsonl.gz": {
        "rows": [(f"pairs-{i}", f"What is {i} + {i}?", str(2 * i)) for i in range(1, 4)],
    },
    "truncated.jsonl.gz": "truncated.jsonl.gz line 2940: cannot decompress the file (gzip: Compressed file ended "
    "before the end-of-stream marker was reached); the file is damaged or truncated",
    "array_not_closed.json": "array_not_closed.json line 4: field '(line)': the JSON array is not closed with ']'",
    "not_utf8.jsonl": "not_utf8.jsonl line 2: not valid UTF-8 (byte 0xe9 at column 16); re-encode the file as UTF-8",
    # issue 15 item 11: memory follows the machine (here the limit is set to 1 GB)
    "millions_of_rows.parquet": "millions_of_rows.parquet (3,600,000 rows, 28.0 KB uncompressed) needs about 5.0 GB "
    "of memory as rows, over this build's limit of 1.0 GB (set by CURATRAIN_MAX_MEMORY): split the input or sample "
    "it (`max_rows` in the recipe's inputs), or raise the limit, e.g. CURATRAIN_MAX_MEMORY=7GB",
    # item 12: U+2028 and U+0085 are text inside a JSON string, not line breaks
    "line_separator_in_string.jsonl": {
        "rows": [
            ("line_separator_in_string-1", "Split this:\u2028a line separator", "It stays one string."),
            ("line_separator_in_string-2", "And a next-line\u0085control", "Still row two, line two."),
        ]
    },
    # item 13: one line, not a RecursionError
    "deeply_nested.jsonl": "deeply_nested.jsonl line 2: field '(line)': JSON nested too deeply to read",
    # issue 16 item 2: HH-RLHF's whole-conversation pairs, as shipped (gzip), the prompt split off as turns
    "hh_transcripts.jsonl.gz": {
        "rows": [
            (
                "kept",
                [
                    {"role": "user", "content": "Can you suggest a name for a grey cat?"},
                    {"role": "assistant", "content": "How about Ash, Smokey or Pebble?"},
                    {"role": "user", "content": "Something less common?"},
                ],
                [{"role": "assistant", "content": "Maybe Flint, Nimbus or Pewter."}],
                [{"role": "assistant", "content": "Cat."}],
            )
        ],
        "dropped": [
            ("identical", "the two conversations are identical"),
            ("identical-after-normalize", "the two conversations are identical"),
            ("no-shared-prompt", "the two conversations share no prompt (they differ from the first turn)"),
            ("part-at-a-user-turn", "the conversations part at a user turn, not at an answer"),
            ("one-is-the-start-of-the-other", "one conversation is the start of the other: no two answers to compare"),
        ],
    },
    "hh_not_a_transcript.jsonl": "hh_not_a_transcript.jsonl line 1: field 'chosen': no 'prompt' column, and this is "
    "not a Human:/Assistant: transcript whose shared start could be the prompt (map the prompt column with "
    "--map OLD=prompt)" + SKIP_HINT,
    # item 14: nothing accepted silently
    "chosen_equals_rejected.jsonl": {
        "rows": [("kept", "Best pet?", "A cat.", "A rock.")],
        "dropped": [
            ("same", "'chosen' and 'rejected' are the same answer"),
            ("same-after-normalize", "'chosen' and 'rejected' are the same answer"),
        ],
    },
    "rating_true.jsonl": "rating_true.jsonl line 2: field 'rating': expected a number, got the boolean true"
    + SKIP_HINT,
    "unterminated_quote.csv": "unterminated_quote.csv line 3: a quoted cell in the row starting on this line is never "
    "closed, so it would swallow the rest of the file (to line 5); close the quote, or double a quote that is part "
    'of the text ("")',
    "nul_byte.csv": "nul_byte.csv line 3: NUL byte at column 23: a text CSV holds none (binary data or a damaged "
    "file); remove it",
    # item 15: errors name the file, and the line and field a near-miss lacks
    "answer_and_prompt.jsonl": "answer_and_prompt.jsonl line 1: field 'response': missing required field: the columns "
    "['answer', 'prompt'] look like a row of kind 'instruction' without 'response'; rename a column "
    "(--map answer=response) or pass --kind",
    "preference_without_rejected.jsonl": "preference_without_rejected.jsonl line 1: field 'rejected': missing required "
    "field: the columns ['chosen', 'prompt'] look like a row of kind 'preference' without 'rejected'; rename a column "
    "(--map OLD=rejected) or pass --kind",
    "preference_later_row_without_rejected.jsonl": "preference_later_row_without_rejected.jsonl line 2: field "
    "'rejected': missing required field" + SKIP_HINT,
    "unknown_columns.csv": "unknown_columns.csv: cannot tell the record kind from the columns ['question', 'reply']: "
    "rename columns with --map OLD=NEW (e.g. --map question=prompt) or pass --kind",
}


def test_every_corpus_file_has_an_expectation() -> None:
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_corpus_file(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CORPUS)  # errors name the file as the user typed it
    monkeypatch.setenv("CURATRAIN_MAX_MEMORY", "1GB")
    expected = CASES[name]
    out = tmp_path / "out"
    recipe = BuildRecipe.model_validate({"inputs": [name], "out": str(out), "split": {"test_size": 0.0}})
    if isinstance(expected, str):
        with pytest.raises(CurateError) as info:
            build(recipe, quiet=True)
        assert str(info.value) == expected
        assert not out.exists()
        return
    build(recipe, quiet=True)
    exported = pq.read_table(out / "data" / "train-00000-of-00001.parquet").to_pylist()
    if "chosen" in exported[0]:
        got = [(r["id"], r["prompt"], r["chosen"], r["rejected"]) for r in exported]
    else:  # instruction rows without a template are exported as messages: (id, user turn, assistant turn)
        got = [(r["id"], r["messages"][-2]["content"], r["messages"][-1]["content"]) for r in exported]
    assert got == expected["rows"]
    dropped = pq.read_table(out / "duplicates.parquet").to_pylist() if (out / "duplicates.parquet").exists() else []
    assert [(d["id"], d["reason"]) for d in dropped] == expected.get("dropped", [])
