"""`train generate --prompts`: sampled answers from several runs become the items file `curate review import` takes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from loop_fixtures import QA_RATINGS, REPO, qa_export, sft_run
from typer.testing import CliRunner

from curate.cli import app as curate_app
from curate.review.store import ReviewStore
from train.cli import app
from train.generate import Sampling, load_run, read_prompts, sample_answers
from train.merge import merge_run


@pytest.fixture(scope="module")
def qa_sft(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The best answer per question (curate build --derive sft) of data/qa's first 12 questions."""
    folder = tmp_path_factory.mktemp("exports")
    ratings = QA_RATINGS.read_text().splitlines()
    questions = list(dict.fromkeys(json.loads(line)["prompt"] for line in ratings))[:12]
    source = folder / "ratings.jsonl"
    source.write_text("".join(line + "\n" for line in ratings if json.loads(line)["prompt"] in questions))
    return qa_export(folder / "qa-sft", "sft", source)


@pytest.fixture(scope="module")
def policies(tiny_lm: Path, qa_sft: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two runs that write text: a LoRA SFT run, and that run merged into a standalone model under another name."""
    runs = tmp_path_factory.mktemp("runs")
    first = sft_run(tiny_lm, qa_sft, runs / "qa-sft-a")
    return first, merge_run(first, runs / "qa-sft-b", dtype="fp32")


def generate(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["generate", *args], env={"COLUMNS": "250"})
    return result.exit_code, result.output


def test_two_runs_answer_every_prompt_and_the_file_imports(policies: tuple[Path, Path], qa_sft: Path, tmp_path: Path):
    a, b = policies
    out = tmp_path / "items.jsonl"
    args = [str(a), "--run", str(b), "--prompts", str(qa_sft), "--n", "2", "--max-new-tokens", "6", "-q"]
    code, output = generate(*args, "--out", str(out))
    assert code == 0, output
    items = [json.loads(line) for line in out.read_text().splitlines()]
    prompts, _ = read_prompts(str(qa_sft))
    assert [item["prompt"] for item in items] == prompts and len(prompts) >= 9
    tags = {tag for item in items for model in item["models"] for tag in model.split(" | ")}
    assert tags == {f"qa-sft-a ({read_base(a)})", f"qa-sft-b ({read_base(a)})"}
    assert all(0 < len(item["answers"]) <= 4 and len(item["answers"]) == len(item["models"]) for item in items)
    assert f"answers to {len(items)} prompts" in output and "curate review import" in output
    # the same seed gives the same file; another seed other answers
    again = tmp_path / "again.jsonl"
    assert generate(*args, "--out", str(again))[0] == 0 and again.read_text() == out.read_text()
    other = tmp_path / "other.jsonl"
    assert generate(*args, "--seed", "7", "--out", str(other))[0] == 0 and other.read_text() != out.read_text()
    # what `curate review import` takes, as it is
    db = f"sqlite:///{tmp_path / 'review.db'}"
    ReviewStore(db, migrate=True).create_project("qa")
    args = ["review", "import", str(out), "--project", "qa", "-q", "--db", db]
    result = CliRunner().invoke(curate_app, args, env={"COLUMNS": "500"})
    assert result.exit_code == 0, result.output
    assert f"{sum(len(i['answers']) for i in items)} new answers added" in result.output


def read_base(run: Path) -> str:
    return json.loads((run / "run_card.json").read_text())["base_model"]


def test_left_padded_batches_answer_like_one_prompt_at_a_time(policies: tuple[Path, Path], qa_sft: Path) -> None:
    model, tokenizer, _ = load_run(policies[1], dtype="fp32")
    prompts = read_prompts(str(qa_sft))[0][:6]
    assert len({len(tokenizer(p)["input_ids"]) for p in prompts}) > 2  # different lengths: padding in play
    greedy = {"temperature": 0.0, "n": 1}
    one_by_one = sample_answers(model, tokenizer, prompts, Sampling(**greedy, batch_size=1), 8)
    batched = sample_answers(model, tokenizer, prompts, Sampling(**greedy, batch_size=6), 8)
    assert batched == one_by_one and tokenizer.padding_side == "left"
    sampled = sample_answers(model, tokenizer, prompts[:2], Sampling(n=3, batch_size=2), 8)
    assert [len(answers) for answers in sampled] == [3, 3]


def test_prompts_from_a_file_with_another_column(policies: tuple[Path, Path], tmp_path: Path) -> None:
    src = tmp_path / "questions.csv"
    src.write_text("question,topic\nWhy is the sky blue?,science\nHow do I boil an egg?,cooking\n")
    out = tmp_path / "items.jsonl"
    args = [str(policies[1]), "--prompts", str(src), "--prompt-column", "question", "--n", "3"]
    code, output = generate(*args, "--max-new-tokens", "8", "--out", str(out), "-q")
    assert code == 0, output
    assert [json.loads(line)["prompt"] for line in out.read_text().splitlines()] == [
        "Why is the sky blue?",
        "How do I boil an egg?",
    ]


def test_bad_input_is_one_line_and_writes_nothing(policies: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "items.jsonl"
    reward_card = tmp_path / "qa-reward"
    reward_card.mkdir()
    card = json.loads((policies[0] / "run_card.json").read_text()) | {"verb": "reward"}
    (reward_card / "run_card.json").write_text(json.dumps(card))
    src, bad = tmp_path / "p.jsonl", tmp_path / "bad.jsonl"
    src.write_text('{"prompt": "Why?"}\n')
    bad.write_text('{"prompt": "Why?"}\n{"question": "How?"}\n')
    cases = [
        ([str(policies[0]), "--run", str(reward_card)], "a reward model (`train reward`) scores answers"),
        ([str(policies[0]), "--prompts", str(bad)], f"{bad} line 2: field 'prompt': missing (choose the column"),
        ([str(policies[0]), "--temperature", "0"], "--n 4 needs sampling: greedy decoding"),
        ([str(policies[0]), "--top-p", "0"], "--top-p: Input should be greater than 0"),
        ([str(policies[0]), "--run", str(policies[0])], "share a name"),
    ]
    for args, message in cases:
        code, output = generate("--prompts", str(src), *args, "--out", str(out), "-q")
        assert code == 1 and message in output and "Traceback" not in output, output
        assert len(output.strip().splitlines()) == 1, output
        assert not out.exists() and not list(tmp_path.glob(".items.jsonl*"))
    assert generate(str(policies[0]), "--prompts", str(src))[1].startswith("error: --prompts needs --out FILE")
    code, output = generate(str(policies[0]), "--prompt", "hello", "--n", "2", "--top-p", "0.5")
    assert code == 1 and "--n, --top-p: sampling options of --prompts" in output
    code, output = generate(str(reward_card), "--prompt", "hello")
    assert code == 1 and "scores answers but does not write them" in output


def test_data_qa_items_round_trip_the_reader() -> None:
    """The sample items file's prompts read as a prompt source too (the `prompt` column of a JSONL file)."""
    prompts, rendered = read_prompts(str(REPO / "data/qa/items.jsonl"))
    assert len(prompts) == 66 and not rendered


def test_a_review_projects_prompts_get_new_answers(policies: tuple[Path, Path], tmp_path: Path) -> None:
    """`--prompts review:P` answers the project's own prompts; `import --new-answers-only` adds them to it."""
    db = f"sqlite:///{tmp_path / 'review.db'}"
    store = ReviewStore(db, migrate=True)
    store.create_project("qa")
    store.import_items("qa", [{"prompt": "Why is the sky blue?", "answers": ["Rayleigh scattering."]}])
    store.import_items("qa", [{"prompt": "How do I boil an egg?", "answers": ["In water."]}])
    out = tmp_path / "new.jsonl"
    args = [str(policies[1]), "--prompts", "review:qa", "--db", db, "--n", "3", "--max-new-tokens", "8", "-q"]
    code, output = generate(*args, "--out", str(out))
    assert code == 0, output
    items = [json.loads(line) for line in out.read_text().splitlines()]
    assert [i["prompt"] for i in items] == ["Why is the sky blue?", "How do I boil an egg?"]
    args = ["review", "import", str(out), "--project", "qa", "--new-answers-only", "-q", "--db", db]
    result = CliRunner().invoke(curate_app, args, env={"COLUMNS": "500"})
    assert result.exit_code == 0, result.output
    assert len(store.prompts("qa")) == 2 and len(store.scores.answers("qa")) == 2 + sum(
        len(i["answers"]) for i in items
    )
    code, output = generate(str(policies[1]), "--prompts", "review:nope", "--db", db, "--out", str(out), "-q")
    assert code == 1 and "no project named 'nope'" in output
