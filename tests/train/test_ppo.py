"""`train ppo`: each loss term against a hand computation, then a few real PPO steps on tiny models.

The end-to-end tests run on the 2-layer word-level Llama of reward_fixtures.py: the policy is a `train sft`
run, the reward a `train reward` run, the prompts an export's questions (fixtures in conftest.py).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from alignment_fixtures import PaysForGood
from typer.testing import CliRunner

from curate.errors import CurateError
from train.alignment import collapse_line
from train.card import read_run_card
from train.cli import app
from train.config import load_recipe
from train.ppo import (
    VALUE_HEAD,
    AdaptiveKL,
    PPORecipe,
    answer_logprobs_and_values,
    entropy,
    gae,
    kl_penalized_rewards,
    masked_whiten,
    policy_loss,
    run_ppo,
    value_head_for,
    value_loss,
)

# -- the terms, by hand ---------------------------------------------------------------------------


def test_masked_whiten_ignores_padding():
    x, mask = torch.tensor([[1.0, 2.0, 3.0, 10.0]]), torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    # mean 2, unbiased variance ((1 + 0 + 1) / 2) = 1 -> (x − 2) / 1; the padded 10 plays no part
    assert masked_whiten(x, mask).flatten().tolist() == pytest.approx([-1.0, 0.0, 1.0, 0.0], abs=1e-6)
    assert masked_whiten(x, mask, shift_mean=False).flatten().tolist() == pytest.approx([1.0, 2.0, 3.0, 0.0], abs=1e-6)


def test_rewards_are_the_kl_penalty_plus_the_score_at_the_last_answer_token():
    logprobs = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, -1.0]])
    ref = torch.tensor([[-1.5, -2.0, -2.0], [-1.0, -2.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    rewards, kl = kl_penalized_rewards(torch.tensor([2.0, -1.0]), logprobs, ref, mask, kl_coef=0.5)
    # row 0: kl = [0.5, 0, (masked)] -> rewards [−0.25, 0 + 2 (score at its last token, index 1), 0]
    # row 1: kl = [0, 1, 0] -> rewards [0, −0.5, −1 (score at index 2)]
    assert kl.flatten().tolist() == pytest.approx([0.5, 0.0, 0.0, 0.0, 1.0, 0.0])
    assert rewards.flatten().tolist() == pytest.approx([-0.25, 2.0, 0.0, 0.0, -0.5, -1.0])


def test_gae_by_hand():
    rewards, values = torch.tensor([[1.0, 0.0, 2.0]]), torch.tensor([[0.5, 1.0, 1.5]])
    full = torch.ones(1, 3)
    # γ=1, λ=0.5: δ2 = 2 − 1.5 = 0.5; δ1 = 0 + 1.5 − 1 = 0.5; δ0 = 1 + 1 − 0.5 = 1.5
    # A2 = 0.5; A1 = 0.5 + 0.5·0.5 = 0.75; A0 = 1.5 + 0.5·0.75 = 1.875; returns = A + V
    advantages, returns = gae(rewards, values, full, gamma=1.0, lam=0.5)
    assert advantages.flatten().tolist() == pytest.approx([1.875, 0.75, 0.5])
    assert returns.flatten().tolist() == pytest.approx([2.375, 1.75, 2.0])
    # γ=0.5, λ=1: δ2 = 0.5; δ1 = 0 + 0.5·1.5 − 1 = −0.25; δ0 = 1 + 0.5·1 − 0.5 = 1; A1 = −0.25 + 0.5·0.5 = 0; A0 = 1
    advantages, _ = gae(rewards, values, full, gamma=0.5, lam=1.0)
    assert advantages.flatten().tolist() == pytest.approx([1.0, 0.0, 0.5])
    # the answer ends at index 1: the padded step adds nothing, V after the end counts as 0
    # δ1 = 0 + 0 − 1 = −1; δ0 = 1 + 1 − 0.5 = 1.5; A0 = 1.5 + 0.5·(−1) = 1
    advantages, _ = gae(rewards, values, torch.tensor([[1.0, 1.0, 0.0]]), gamma=1.0, lam=0.5)
    assert advantages.flatten().tolist() == pytest.approx([1.0, -1.0, 0.0])


def test_clipped_policy_loss_by_hand():
    ratios = torch.tensor([[1.5, 0.5, 1.1]])
    advantages = torch.tensor([[1.0, -1.0, 2.0]])
    loss, clipped = policy_loss(ratios.log(), torch.zeros(1, 3), advantages, torch.ones(1, 3), clip=0.2)
    # token 0: max(−1.5, −1.2) = −1.2 (clipped); token 1: max(0.5, 0.8) = 0.8 (clipped); token 2: −2.2
    assert loss.item() == pytest.approx((-1.2 + 0.8 - 2.2) / 3)
    assert clipped.item() == pytest.approx(2 / 3)


def test_clipped_value_loss_by_hand():
    values, old, returns = torch.tensor([[1.0, 0.6, -0.1]]), torch.zeros(1, 3), torch.full((1, 3), 0.5)
    loss, clipped = value_loss(values, old, returns, torch.ones(1, 3), clip=0.2)
    # clipped values [0.2, 0.2, −0.1]; errors max((V−R)², (Vc−R)²): max(0.25, 0.09), max(0.01, 0.09), 0.36
    assert loss.item() == pytest.approx(0.5 * (0.25 + 0.09 + 0.36) / 3)
    assert clipped.item() == pytest.approx(1 / 3)


def test_entropy_by_hand():
    logits = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)]])  # p = (½, ½) and (¼, ¾)
    expected = [math.log(2.0), -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))]
    assert entropy(logits).tolist() == pytest.approx(expected)


def test_adaptive_kl_controller_by_hand():
    # β·(1 + clip(KL/target − 1, ±0.2)·n/horizon) with β=0.2, target 6, n=10, horizon 100
    for kl, expected in [(12.0, 0.2 * 1.02), (3.0, 0.2 * 0.98), (6.6, 0.2 * 1.01)]:
        controller = AdaptiveKL(0.2, target=6.0, horizon=100)
        controller.update(kl, n=10)
        assert controller.value == pytest.approx(expected)
    fixed = AdaptiveKL(0.2, target=6.0, horizon=100, adaptive=False)
    fixed.update(12.0, n=10)
    assert fixed.value == 0.2


def test_log_probs_of_a_left_padded_batch_equal_each_answer_alone(word_lm: Path):
    """Prompts of different lengths are left-padded; positions must count real tokens, as generate() does."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(word_lm).eval()
    head = value_head_for(model)
    torch.nn.init.normal_(head.weight)
    prompts, answers = [[6, 7, 8, 9, 30], [6, 7, 30]], [[10, 11, 1], [12, 1, 1]]
    answer_mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    batch = {
        "prompt_ids": torch.tensor([prompts[0], [1, 1, *prompts[1]]]),
        "prompt_mask": torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]]),
        "answer_ids": torch.tensor(answers),
        "answer_mask": answer_mask,
    }
    with torch.no_grad():
        logprobs, values, _ = answer_logprobs_and_values(model, head, batch, temperature=1.0)
        for row, (prompt, answer) in enumerate(zip(prompts, answers, strict=True)):
            n = int(answer_mask[row].sum())
            ids = torch.tensor([prompt + answer[:n]])
            alone = {"prompt_ids": ids[:, : len(prompt)], "prompt_mask": torch.ones(1, len(prompt), dtype=torch.long)}
            alone |= {"answer_ids": ids[:, len(prompt) :], "answer_mask": torch.ones(1, n, dtype=torch.long)}
            one_logprobs, one_values, _ = answer_logprobs_and_values(model, head, alone, temperature=1.0)
            assert logprobs[row, :n].tolist() == pytest.approx(one_logprobs[0].tolist(), abs=1e-5)
            assert values[row, :n].tolist() == pytest.approx(one_values[0].tolist(), abs=1e-5)


# -- a few real steps ------------------------------------------------------------------------------


def ppo_recipe(data: Path, out: Path, **sections: dict) -> PPORecipe:
    """A CPU-sized PPO recipe: 8 prompts per step, answers of at most 8 tokens."""
    raw: dict = {
        "dataset": {"path": str(data)},
        "training": {
            "learning_rate": 1e-3,
            "lr_scheduler": "constant",
            "batch_size": 4,
            "max_steps": 3,
            "save_total_limit": 2,
        },
        "memory": {"gradient_checkpointing": False},
        "logging": {"output_dir": str(out)},
        "ppo": {"rollout_batch_size": 8, "ppo_epochs": 2},
        "sampling": {"max_new_tokens": 8},
        "degeneration": {"max_new_tokens": 8, "check_every": 0},
    }
    return load_recipe(PPORecipe, None, raw, sections)  # each section merged into raw's


@pytest.fixture(scope="module")
def ppo_run(word_pairs: Path, word_sft_run: Path, word_reward_run: Path, tmp_path_factory: pytest.TempPathFactory):
    """Three PPO steps: policy = the SFT run, reward = the reward run, prompts = the pairs export's questions."""
    out = tmp_path_factory.mktemp("runs") / "word-ppo"
    recipe = ppo_recipe(word_pairs, out, policy={"run": str(word_sft_run)}, reward_model={"run": str(word_reward_run)})
    return run_ppo(recipe, quiet=True)


def test_ppo_steps_log_reward_kl_and_the_rest(ppo_run, word_lm: Path, word_sft_run: Path):
    card = json.loads((ppo_run.run_dir / "run_card.json").read_text())
    log = card["ppo_log"]
    assert [e["step"] for e in log] == [1, 2, 3]
    for entry in log:
        for key in ("reward", "kl", "kl_per_token", "entropy", "clip_fraction", "value_loss", "answer_length"):
            assert math.isfinite(entry[key]), key
        assert 1 <= entry["answer_length"] <= 8 and entry["entropy"] > 0
    # The reference is the SFT policy itself (a frozen copy of its adapter): no KL before the first update, some after.
    assert log[0]["kl"] == pytest.approx(0.0, abs=1e-5)
    assert any(abs(e["kl"]) > 1e-4 for e in log[1:])
    assert card["verb"] == "ppo" and card["base_model"] == str(word_lm)
    assert card["policy"]["run"] == str(word_sft_run) and "ref" in ppo_run.trainer.model.peft_config
    assert card["throughput"]["train_tokens"] > 0
    degeneration = card["degeneration"]
    assert degeneration["held_out"] and degeneration["prompts"] > 0
    for side in ("before", "after"):
        assert {"mean_reward", "distinct_1", "distinct_2", "mean_words", "identical_share"} <= set(degeneration[side])


def test_ppo_run_directory_reloads_as_a_policy(ppo_run):
    """The run directory holds the trained adapter (not the reference copy) and the value head; `train generate` loads it."""
    from train.generate import generate_texts, load_run

    run_dir = ppo_run.run_dir
    assert (run_dir / "adapter_model.safetensors").is_file() and (run_dir / VALUE_HEAD).is_file()
    assert not (run_dir / "ref").exists()
    model, tokenizer, card = load_run(run_dir)
    assert generate_texts(model, tokenizer, ["how do i make tea ? "], max_new_tokens=4)[0] is not None


def test_ppo_resumes_where_it_stopped(word_pairs: Path, word_sft_run: Path, word_reward_run: Path, ppo_run, tmp_path):
    """Two steps, then --resume to three: the resumed run replays the first two steps' log and continues."""
    sections = {"policy": {"run": str(word_sft_run)}, "reward_model": {"run": str(word_reward_run)}}
    first = run_ppo(ppo_recipe(word_pairs, tmp_path / "run", training={"max_steps": 2}, **sections), quiet=True)
    assert (tmp_path / "run" / "checkpoint-2").is_dir()
    with pytest.raises(CurateError, match="already holds a run"):
        run_ppo(ppo_recipe(word_pairs, tmp_path / "run", **sections), quiet=True)
    resumed = run_ppo(ppo_recipe(word_pairs, tmp_path / "run", **sections), resume=True, quiet=True)
    assert resumed.trainer.state.global_step == 3
    log = resumed.card["ppo_log"]
    assert log[:2] == first.card["ppo_log"]
    assert log[2]["reward"] == pytest.approx(ppo_run.card["ppo_log"][2]["reward"], abs=1e-4)  # same as a straight run
    assert resumed.card["resumed_from"].endswith("checkpoint-2")


def test_collapse_guard_stops_a_run_rigged_to_pay_for_one_token(word_pairs: Path, wide_word_lm: Path, tmp_path):
    """PPO learns what the rigged reward pays for ("good good good …"): held-out distinct-2 collapses, the run stops."""
    recipe = ppo_recipe(
        word_pairs,
        tmp_path / "rigged",
        model={"name": str(wide_word_lm)},
        training={"learning_rate": 3e-2, "lr_scheduler": "linear", "max_steps": 10},
        ppo={"kl_coef": 0.0, "adaptive_kl": False, "ppo_epochs": 4},
        degeneration={"check_every": 1, "max_kl": 100.0},
    )
    run = run_ppo(recipe, quiet=True, reward=PaysForGood())
    log, degeneration = run.card["ppo_log"], run.card["degeneration"]
    collapse = degeneration["collapse"]
    assert collapse is not None and collapse["stopped"], degeneration
    assert "held-out distinct-2 fell" in collapse["reason"]
    assert run.trainer.state.global_step == collapse["step"] < 10  # it stopped there, not at max_steps
    assert log[-1]["reward"] > log[0]["reward"] and log[-1]["entropy"] < log[0]["entropy"]  # hacking under way
    assert degeneration["after"]["mean_reward"] > degeneration["before"]["mean_reward"]
    assert degeneration["after"]["distinct_2"] < 0.5 * degeneration["before"]["distinct_2"]
    line = collapse_line(degeneration)
    assert line is not None and line.startswith(f"stopped at step {collapse['step']} on collapse: held-out distinct-2")
    model_card = (run.run_dir / "README.md").read_text()
    assert "| distinct_2 | 0.66 |" in model_card and f"**Collapse at step {collapse['step']}**" in model_card


def test_cli_stops_on_a_kl_past_the_limit_and_says_why(word_pairs, word_sft_run, word_reward_run, tmp_path):
    """The KL half of the guard, through the command: one red line, exit 1, the run directory and card written."""
    out = tmp_path / "run"
    args = ["ppo", "--data", str(word_pairs), "--policy", str(word_sft_run), "--reward", str(word_reward_run),
            "--out", str(out), "--max-steps", "6", "training.batch_size=4", "ppo.rollout_batch_size=8",
            "sampling.max_new_tokens=8", "degeneration.max_new_tokens=8", "degeneration.max_kl=0.000001",
            "memory.gradient_checkpointing=false", "-q"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    card = json.loads((out / "run_card.json").read_text())
    step = card["degeneration"]["collapse"]["step"]
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: train ppo stopped at step {step} on collapse: KL to")
    assert len(card["ppo_log"]) == step < 6  # stopped there; KL is 0 at step 1 (policy = reference)


def test_cli_output_as_every_verb_shows_it(word_pairs, word_sft_run, word_reward_run, tmp_path):
    """Through the command, as the run layer shows any verb: `-q` prints only the run directory; a resumed run
    off a terminal prints plain progress lines (the step's reward, KL, answer length), the summary with tokens/s
    over the PPO steps alone (not the held-out checks or checkpoints), and the held-out line."""
    out = tmp_path / "run"
    args = ["ppo", "--data", str(word_pairs), "--policy", str(word_sft_run), "--reward", str(word_reward_run),
            "--out", str(out), "--batch-size", "4", "--no-gradient-checkpointing", "ppo.rollout_batch_size=8",
            "sampling.max_new_tokens=8", "degeneration.max_new_tokens=8", "degeneration.check_every=1",
            "logging.progress_seconds=0"]  # fmt: skip
    quiet = CliRunner().invoke(app, [*args, "--max-steps", "2", "-q"])
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stdout == f"{out}\n"
    resumed = CliRunner().invoke(app, [*args, "--max-steps", "3", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    text = resumed.stdout
    assert "train ppo · 3 steps, resuming at step 2" in text
    number = r"-?\d+\.\d{4}"
    assert re.search(
        rf"train ppo · step 3/3 \(100%\) · .* · reward {number} · kl {number} · answer_length {number}", text
    )
    for noise in ("\x1b[", "\r", "{'", "━"):
        assert noise not in text, noise
    lines = text.rstrip().splitlines()
    assert lines[-4].startswith("train ppo done: last_reward") and "tokens/s over" in lines[-3]
    assert lines[-2].startswith(f"run written to {out}")
    assert lines[-1].startswith("held-out (") and "mean_reward" in lines[-1]
    card = read_run_card(out)
    assert card["resumed_from"].endswith("checkpoint-2") and card["metrics"]["global_step"] == 3
    speed = card["throughput"]
    assert speed["train_tokens"] > 0 and speed["tokens_per_second"] == pytest.approx(
        speed["train_tokens"] / speed["train_seconds"]
    )
    assert speed["train_seconds"] < speed["wall_seconds"]  # the held-out check after each step is not training


def test_inspect_shows_the_prompts_as_the_policy_receives_them(word_pairs, word_sft_run, word_reward_run, tmp_path):
    from train.alignment import PromptFormat, encode_prompts, questions_of
    from train.data import load_data
    from train.model import load_tokenizer

    out = tmp_path / "run"
    args = ["ppo", "--data", str(word_pairs), "--policy", str(word_sft_run), "--reward", str(word_reward_run),
            "--out", str(out), "--inspect", "2"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    tokenizer = load_tokenizer(read_run_card(word_sft_run)["base_model"], "left")
    question = questions_of(load_data(str(word_pairs), "ppo"), "train")[0]
    prompt = PromptFormat.of_run(read_run_card(word_sft_run)).prompts([question], tokenizer)[0]
    ids = encode_prompts(tokenizer, [prompt])["input_ids"][0]  # what generation feeds the policy
    assert "first 2 prompts, as the policy receives them" in result.stdout
    assert f"#1 · {len(ids)} tokens" in result.stdout and question in result.stdout
    assert "#2 · " in result.stdout and "#3 · " not in result.stdout and "distinct prompts" in result.stdout
    assert not out.exists()


def test_reward_run_that_is_not_a_reward_model_is_refused(word_pairs: Path, word_sft_run: Path, tmp_path: Path):
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["ppo", "--data", str(word_pairs), "--policy", str(word_sft_run), "--reward", str(word_sft_run),
              "--out", str(out), "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("error: ") and "a `train sft` run, not a reward model" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_policy_run_on_another_base_is_refused(
    word_pairs: Path, word_sft_run: Path, word_reward_run: Path, tiny_lm, tmp_path
):
    recipe = ppo_recipe(
        word_pairs,
        tmp_path / "run",
        model={"name": str(tiny_lm)},
        policy={"run": str(word_sft_run)},
        reward_model={"run": str(word_reward_run)},
    )
    with pytest.raises(CurateError, match=r"trained on base '.*word-lm.*', not on --model .*tiny-lm"):
        run_ppo(recipe, quiet=True)
    assert not (tmp_path / "run").exists()


def test_a_reward_run_given_as_the_policy_is_refused(word_pairs: Path, word_reward_run: Path, tmp_path: Path):
    recipe = ppo_recipe(
        word_pairs, tmp_path / "run", policy={"run": str(word_reward_run)}, reward_model={"run": str(word_reward_run)}
    )
    with pytest.raises(CurateError, match=r"a `train reward` run \(a scorer\), not a policy"):
        run_ppo(recipe, quiet=True)
    assert not (tmp_path / "run").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (bf16 autocast, bitsandbytes 4-bit)")
@pytest.mark.parametrize("quantize", ["none", "4bit"])
def test_ppo_on_gpu(quantize: str, word_pairs: Path, word_sft_run: Path, word_reward_run: Path, tmp_path: Path):
    """On a GPU: a bf16 base (autocast) or a 4-bit nf4 base (QLoRA) under the SFT adapter runs PPO steps."""
    sections = {"policy": {"run": str(word_sft_run)}, "reward_model": {"run": str(word_reward_run)}}
    run = run_ppo(ppo_recipe(word_pairs, tmp_path / "run", memory={"quantize": quantize}, **sections), quiet=True)
    trainer = run.trainer
    assert next(trainer.model.parameters()).is_cuda and trainer.args.bf16
    assert getattr(trainer.model, "is_loaded_in_4bit", False) == (quantize == "4bit")
    assert all(math.isfinite(e["loss"]) and math.isfinite(e["kl"]) for e in run.card["ppo_log"])
    assert run.card["peak_memory"]["device"] == "cuda"
