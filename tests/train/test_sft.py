"""`train sft`, `train merge`, `train generate` on real small models and the real latex export (CPU)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from curate.io.manifest import read_manifest
from train.card import read_run_card
from train.cli import app
from train.config import SFTRecipe, load_recipe
from train.generate import generate_texts, load_run, render_prompt
from train.merge import merge_run
from train.sft import run_sft


def sft_recipe(model: Path | str, data: Path, out: Path, **overrides: Any) -> SFTRecipe:
    """A fast CPU recipe; keyword overrides use `section__key` for `section.key`."""
    base = {
        "model.name": str(model),
        "dataset.path": str(data),
        "logging.output_dir": str(out),
        "logging.logging_steps": 1,
        "training.batch_size": 8,
        "training.learning_rate": 1e-3,
        "memory.gradient_checkpointing": False,
        "generation.max_new_tokens": 6,
        "generation.samples": 1,
    }
    return load_recipe(SFTRecipe, None, base, {k.replace("__", "."): v for k, v in overrides.items()})


@pytest.mark.slow
def test_sft_lowers_the_training_loss_of_smollm2_on_latex(smollm2: Path, latex_export: Path, tmp_path: Path) -> None:
    recipe = sft_recipe(
        smollm2,
        latex_export,
        tmp_path / "run",
        training__max_steps=5,
        training__batch_size=4,
        training__eval_each_epoch=False,
        training__save_each_epoch=False,
        generation__num_beams=2,
    )
    run_dir = run_sft(recipe, quiet=True)
    card = read_run_card(run_dir)
    losses = [e["loss"] for e in card["loss_curve"] if "loss" in e]
    assert len(losses) == 5
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2 * 0.8
    assert card["data"]["content_hash"] == read_manifest(latex_export).content_hash
    assert card["data"]["template"] == "latex"
    assert card["hyperparameters"]["max_length"] == read_manifest(latex_export).lengths.recommended_max_length
    assert card["throughput"]["train_tokens"] > 0 and card["throughput"]["tokens_per_second"] > 0
    assert card["peak_memory"]["peak_rss_gb"] > 0
    assert card["model"]["trainable_parameters"] < card["model"]["parameters"] / 10  # LoRA, not a full fine-tune
    assert len(card["samples"]) == 1 and card["samples"][0]["prompt"].startswith("Convert English to LaTeX")
    assert (run_dir / "adapter_model.safetensors").is_file() and (run_dir / "README.md").is_file()


@pytest.fixture(scope="module")
def tiny_run(tiny_lm: Path, latex_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two epochs of LoRA SFT on a tiny random LM, eval + save each epoch, best kept."""
    out = tmp_path_factory.mktemp("runs") / "latex-tiny"
    return run_sft(sft_recipe(tiny_lm, latex_export, out, training__epochs=2, training__learning_rate=1e-2), quiet=True)


def test_run_dir_holds_adapter_tokenizer_and_a_run_card(tiny_run: Path, latex_export: Path) -> None:
    card = read_run_card(tiny_run)
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "README.md"):
        assert (tiny_run / name).is_file(), name
    assert sorted(p.name for p in tiny_run.glob("checkpoint-*"))  # saved each epoch
    assert card["data"]["content_hash"] == read_manifest(latex_export).content_hash
    evals = [e["eval_loss"] for e in card["loss_curve"] if "eval_loss" in e]
    assert len(evals) >= 2  # one eval per epoch
    assert card["metrics"]["best_eval_loss"] == pytest.approx(min(evals))
    assert card["metrics"]["eval_loss"] == pytest.approx(min(evals), rel=1e-4)  # the best checkpoint was kept
    assert card["lora"]["r"] == 16 and card["quantization"]["quantize"] == "none"
    assert "content hash" in (tiny_run / "README.md").read_text()


def test_adapter_reloads_merges_and_generates(tiny_run: Path, tiny_lm: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    model, tokenizer, card = load_run(tiny_run, dtype="fp32")
    prompt = render_prompt(card, "x squared plus one", tokenizer)
    assert prompt == "Convert English to LaTeX\nEnglish: x squared plus one\nLaTeX:"
    ids = tokenizer(prompt, return_tensors="pt")
    base = AutoModelForCausalLM.from_pretrained(tiny_lm, dtype=torch.float32)
    with torch.no_grad():
        adapted = model(**ids).logits
        assert not torch.allclose(adapted, base(**ids).logits, atol=1e-4)  # the trained adapter is applied
        merged_dir = merge_run(tiny_run, tmp_path / "merged", dtype="fp32")
        merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32)
        assert torch.allclose(merged(**ids).logits, adapted, atol=1e-4)
    assert not (merged_dir / "adapter_config.json").exists()
    outputs = generate_texts(merged, tokenizer, [prompt], num_beams=2, max_new_tokens=5)
    assert len(outputs) == 1 and isinstance(outputs[0], str)


def test_cli_generate_and_merge(tiny_run: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app, ["generate", str(tiny_run), "--prompt", "x squared", "--num-beams", "2", "--max-new-tokens", "4"]
    )
    assert result.exit_code == 0, result.output
    assert "x squared" in result.stdout
    result = runner.invoke(app, ["merge", str(tiny_run), "--out", str(tmp_path / "merged")])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "merged" / "config.json").read_text())
    assert config["dtype"] == "float16"  # reloaded in half precision
    result = runner.invoke(app, ["generate", str(tmp_path / "merged"), "-p", "x squared", "--max-new-tokens", "3"])
    assert result.exit_code == 0, result.output


RESUME_KEYS = {"training.epochs": 2, "training.eval_each_epoch": False, "logging.logging_steps": 2}


@pytest.fixture(scope="module")
def uninterrupted(tiny_lm: Path, latex_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two epochs in one go, a checkpoint after each (the loss logged every 2 steps, so not at every save)."""
    out = tmp_path_factory.mktemp("runs") / "whole"
    keys = {k.replace(".", "__"): v for k, v in RESUME_KEYS.items()}
    return run_sft(sft_recipe(tiny_lm, latex_export, out, generation__samples=0, **keys), quiet=True)


@pytest.fixture(scope="module")
def resumed_after_a_crash(
    uninterrupted: Path, tiny_lm: Path, latex_export: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, int, Any]:
    """The same run killed while saving its last checkpoint, then `train sft --resume`.

    A kill there leaves epoch 1's checkpoint complete and the last one with its weights written but
    not its trainer_state.json (transformers writes that last): copied here from the whole run.
    """
    steps = read_run_card(uninterrupted)["metrics"]["global_step"] // 2
    out = tmp_path_factory.mktemp("runs") / "crashed"
    shutil.copytree(uninterrupted / f"checkpoint-{steps}", out / f"checkpoint-{steps}")
    (out / f"checkpoint-{2 * steps}").mkdir()
    shutil.copy(
        uninterrupted / f"checkpoint-{2 * steps}" / "adapter_model.safetensors", out / f"checkpoint-{2 * steps}"
    )
    args = ["sft", "--data", str(latex_export), "--model", str(tiny_lm), "--out", str(out), "--resume"]
    args += ["--batch-size", "8", "--lr", "1e-3", "--no-gradient-checkpointing", "generation.samples=0"]
    result = CliRunner().invoke(app, [*args, *(f"{k}={v}" for k, v in RESUME_KEYS.items())])
    assert result.exit_code == 0, result.output
    return out, steps, result


def test_resume_skips_a_checkpoint_a_crash_left_incomplete(resumed_after_a_crash: tuple[Path, int, Any]) -> None:
    from train.run import checkpoint_step

    out, steps, result = resumed_after_a_crash
    warning = " ".join(result.stderr.split())
    assert f"skipping checkpoint-{2 * steps} in {out}: incomplete" in warning
    assert f"resuming from checkpoint-{steps}" in warning
    card = read_run_card(out)
    assert card["resumed_from"].endswith(f"checkpoint-{steps}")
    assert [Path(p).name for p in card["skipped_checkpoints"]] == [f"checkpoint-{2 * steps}"]
    assert card["metrics"]["global_step"] == 2 * steps
    assert checkpoint_step(out / f"checkpoint-{2 * steps}") == 2 * steps  # saved again, whole this time
    assert min(e["step"] for e in card["loss_curve"]) < steps  # the history carries over from the checkpoint


def test_resumed_run_reports_the_whole_runs_train_loss(
    resumed_after_a_crash: tuple[Path, int, Any], uninterrupted: Path
) -> None:
    resumed, whole = read_run_card(resumed_after_a_crash[0]), read_run_card(uninterrupted)
    curve = [(e["step"], e["loss"]) for e in whole["loss_curve"] if "loss" in e]
    again = [(e["step"], e["loss"]) for e in resumed["loss_curve"] if "loss" in e]
    assert [step for step, _ in again] == [step for step, _ in curve]
    assert [loss for _, loss in again] == pytest.approx([loss for _, loss in curve], rel=1e-4)  # the same steps
    assert resumed["metrics"]["train_loss"] == pytest.approx(whole["metrics"]["train_loss"], rel=1e-4)


def test_resume_without_a_complete_checkpoint_is_one_clear_error(tmp_path: Path) -> None:
    from curate.errors import CurateError
    from train.run import prepare_run_dir

    (tmp_path / "checkpoint-5").mkdir(parents=True)
    (tmp_path / "checkpoint-5" / "trainer_state.json").write_text('{"global_step": 5, "log_hi')  # cut short
    with pytest.raises(CurateError, match=r"no complete checkpoint-\* .*checkpoint-5: incomplete"):
        prepare_run_dir("sft", tmp_path, resume=True, overwrite=False)


def _labelled_export(tmp_path: Path) -> Path:
    from curate.pipeline import build
    from curate.recipe import BuildRecipe

    rows = [{"text": f"a story about dragons number {i}", "labels": ["fantasy"]} for i in range(10)]
    source = tmp_path / "genres.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    build(BuildRecipe(inputs=[str(source)], out=str(tmp_path / "genres"), kind="labelled"), quiet=True)
    return tmp_path / "genres"


def _bad_columns(tmp_path: Path) -> Path:
    path = tmp_path / "qa.jsonl"
    path.write_text('{"question": "2+2?", "answer": "4"}\n{"question": "3+3?", "answer": "6"}\n')
    return path


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing-columns", "missing columns for `train sft`"),
        ("labelled-export", "a 'labelled' export"),
        ("max-length", "is not longer than the longest prompt"),
        ("missing-model", "no such model directory"),
        ("quantize-cpu", "needs a CUDA GPU"),
        ("unknown-key", "'training.epoch': unknown key"),
        ("run-exists", "already holds a run"),
        ("not-a-run", "is not a training run (no run_card.json written by curatrain, no checkpoint-*): refusing"),
        ("foreign-card", "is not a training run (no run_card.json written by curatrain, no checkpoint-*): refusing"),
    ],
)
def test_bad_input_gives_one_clear_error(
    case: str, expected: str, tiny_lm: Path, latex_export: Path, tmp_path: Path
) -> None:
    if case == "quantize-cpu" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU, so 4-bit loading is allowed")
    data, model, extra = str(latex_export), str(tiny_lm), []
    if case == "missing-columns":
        data = str(_bad_columns(tmp_path))
    elif case == "labelled-export":
        data = str(_labelled_export(tmp_path))
    elif case == "max-length":
        extra = ["--max-length", "8"]
    elif case == "missing-model":
        model = str(tmp_path / "no-such-model")
    elif case == "quantize-cpu":
        extra = ["--quantize", "4bit"]
    elif case == "unknown-key":
        extra = ["training.epoch=3"]
    elif case == "run-exists":
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "run_card.json").write_text('{"written_by": "curatrain"}')
    elif case in ("not-a-run", "foreign-card"):  # even --overwrite must not delete a directory train did not write
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "thesis.tex").write_text("years of work")
        if case == "foreign-card":  # a file of the same name that another tool wrote does not make it ours
            (tmp_path / "run" / "run_card.json").write_text('{"model": "theirs"}')
        extra = ["--overwrite"]
    args = ["sft", "--data", data, "--model", model, "--out", str(tmp_path / "run"), "--quiet", *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and expected in last, result.stderr
    if case in ("not-a-run", "foreign-card"):
        assert (tmp_path / "run" / "thesis.tex").read_text() == "years of work"


def _word_level_lm(path: Path) -> Path:
    """A tiny random Llama with a word-level tokenizer, both built in code (no GGUF needed on a GPU box)."""
    from reward_fixtures import save_llama
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "<eos>", "Convert", "English:", "LaTeX:", "x", "squared", "plus", "one", "x^2", "+", "1"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", unk_token="<unk>")
    return save_llama(path, tokenizer, hidden_size=64, intermediate_size=128, max_position_embeddings=64)


@pytest.mark.gpu
def test_qlora_sft_runs_on_a_gpu(tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (bitsandbytes 4-bit)")
    from datasets import Dataset, DatasetDict
    from transformers import AutoModelForCausalLM

    from train.config import MemorySection, ModelSection
    from train.model import load_model

    model_dir = _word_level_lm(tmp_path / "lm")
    assert load_model(ModelSection(name=str(model_dir)), MemorySection(quantize="4bit")).is_loaded_in_4bit
    rows = [{"prompt": "Convert English: x squared plus one LaTeX:", "completion": " x^2 + 1"}] * 16
    DatasetDict({"train": Dataset.from_list(rows), "test": Dataset.from_list(rows[:4])}).save_to_disk(tmp_path / "d")
    recipe = sft_recipe(
        model_dir,
        tmp_path / "d",
        tmp_path / "run",
        memory__quantize="4bit",
        memory__gradient_checkpointing=True,
        training__max_steps=6,
        training__batch_size=4,
        training__learning_rate=1e-2,
    )
    card = read_run_card(run_sft(recipe, quiet=True))
    assert card["quantization"]["quantize"] == "4bit" and card["peak_memory"]["device"] == "cuda"
    assert card["hardware"]["gpu"] and card["metrics"]["global_step"] == 6
    losses = [e["loss"] for e in card["loss_curve"] if "loss" in e]
    assert losses[-1] < losses[0]  # one repeated example: the adapter must learn it
    # 4-bit weights are packed two per byte: the card still counts the model's real parameters (+ LoRA's).
    full = AutoModelForCausalLM.from_pretrained(model_dir).num_parameters()
    assert card["model"]["parameters"] == full + card["model"]["trainable_parameters"]


def test_sft_trains_on_a_saved_conversational_dataset(tiny_lm: Path, tmp_path: Path) -> None:
    """Also: the run card's sample generations cover conversations (the prompt through the chat template)."""
    from datasets import Dataset, DatasetDict

    turns = [
        [{"role": "user", "content": f"what is {i} plus {i}?"}, {"role": "assistant", "content": str(2 * i)}]
        for i in range(12)
    ]
    rows = [{"messages": m} for m in turns]
    DatasetDict({"train": Dataset.from_list(rows[:10]), "test": Dataset.from_list(rows[10:])}).save_to_disk(
        tmp_path / "chat"
    )
    recipe = sft_recipe(tiny_lm, tmp_path / "chat", tmp_path / "run", training__max_steps=2, training__batch_size=4)
    card = read_run_card(run_sft(recipe, quiet=True))
    assert card["data"]["format"] == "messages" and card["data"]["content_hash"] is None
    assert card["metrics"]["global_step"] == 2 and "eval_loss" in card["metrics"]
    assert card["hyperparameters"]["max_length"] == 1024  # no export manifest: TRL's default
    [sample] = card["samples"]
    assert "what is 10 plus 10?" in sample["prompt"] and sample["prompt"].rstrip().endswith("assistant")
    assert sample["reference"] == "20"


def test_sft_quiet_prints_only_the_run_directory(tiny_lm: Path, latex_export: Path, tmp_path: Path) -> None:
    """`--quiet` silences our bars and the library bars (weight loading, dataset map) alike; the run directory stays."""
    args = ["sft", "--data", str(latex_export), "--model", str(tiny_lm), "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(app, [*args, "--max-steps", "1", "--no-gradient-checkpointing", "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{tmp_path / 'run'}\n" and result.stderr == ""
    assert (tmp_path / "run" / "adapter_model.safetensors").is_file()


def test_output_to_a_log_is_plain_progress_lines(tiny_lm: Path, latex_export: Path, tmp_path: Path) -> None:
    """Not on a terminal: steady plain lines (here every step), eval progress, no live bar, ANSI, tqdm or dicts."""
    args = ["sft", "--data", str(latex_export), "--model", str(tiny_lm), "--out", str(tmp_path / "run")]
    args += ["--max-steps", "2", "--no-gradient-checkpointing", "logging.progress_seconds=0", "generation.samples=0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = result.output
    for line in ("train sft · 2 steps", "train sft · step 1/2 (50%)", "train sft · step 2/2 (100%)"):
        assert line in out, out
    assert re.search(r"train sft · evaluating: batch 1/\d+", out)
    assert re.search(r"train sft · eval at step 2 \(\d:\d\d:\d\d\): eval_loss \d+\.\d{4}", out)
    for noise in ("\x1b[", "\r", "it/s", "{'", "━"):
        assert noise not in out, noise
    [summary] = [line for line in out.splitlines() if line.startswith("train sft done:")]
    assert summary.count("eval_loss") == 1  # the final eval loss once (it is the kept checkpoint's)
    assert out.rstrip().splitlines()[-1].startswith(f"run written to {tmp_path / 'run'}")


def test_eval_runs_once_per_epoch_and_not_again_at_the_end(tiny_run: Path) -> None:
    card = read_run_card(tiny_run)
    evals = [e for e in card["loss_curve"] if "eval_loss" in e]
    assert [e["epoch"] for e in evals] == [1.0, 2.0]
    assert card["throughput"]["evaluations"] == 2
    assert card["metrics"]["eval_loss"] == card["metrics"]["best_eval_loss"]  # read back, not evaluated again


def test_tokens_per_second_counts_training_steps_only(tiny_run: Path) -> None:
    speed = read_run_card(tiny_run)["throughput"]
    assert speed["tokens_per_second"] == pytest.approx(speed["train_tokens"] / speed["train_seconds"])
    assert speed["eval_seconds"] > 0 and speed["train_seconds"] + speed["eval_seconds"] <= speed["wall_seconds"]


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({}, 300),  # an epoch-based run evaluates the whole test split
        ({"training.max_steps": 2, "training.batch_size": 4}, 100),  # a short run: capped, at least 100
        ({"training.max_steps": 50, "training.batch_size": 4}, 200),  # ... at the rows it trains on
        ({"training.max_steps": 2, "training.eval_rows": 7}, 7),
        ({"training.eval_rows": 0}, 0),
    ],
)
def test_eval_rows_default_caps_short_runs(keys: dict[str, Any], expected: int) -> None:
    from train.run import eval_rows

    assert eval_rows(load_recipe(SFTRecipe, None, keys), 300) == expected


def test_a_short_run_evaluates_a_capped_test_split(tiny_lm: Path, tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    rows = [{"prompt": f"{i} plus {i} is", "completion": f" {2 * i}"} for i in range(316)]
    DatasetDict({"train": Dataset.from_list(rows[:16]), "test": Dataset.from_list(rows[16:])}).save_to_disk(
        tmp_path / "sums"
    )
    recipe = sft_recipe(tiny_lm, tmp_path / "sums", tmp_path / "run", training__max_steps=2, generation__samples=0)
    card = read_run_card(run_sft(recipe, quiet=True))
    assert card["data"]["rows"]["test"] == 300 and card["throughput"]["eval_rows"] == 100
    assert card["throughput"]["evaluations"] == 1


def test_merge_never_replaces_a_directory_it_did_not_write(tiny_run: Path, tmp_path: Path) -> None:
    from curate.errors import CurateError

    mine = tmp_path / "models"
    mine.mkdir()
    (mine / "keep.bin").write_bytes(b"someone else's weights")
    with pytest.raises(CurateError, match=r"no run_card.json written by curatrain\): refusing to replace it"):
        merge_run(tiny_run, mine)
    assert [p.name for p in mine.iterdir()] == ["keep.bin"]
    (mine / "run_card.json").write_text('{"base_model": "theirs"}')  # a card of the same name is not ours
    with pytest.raises(CurateError, match=r"its run_card.json was not written by curatrain\): refusing to replace"):
        merge_run(tiny_run, mine)
    assert (mine / "keep.bin").read_bytes() == b"someone else's weights"
