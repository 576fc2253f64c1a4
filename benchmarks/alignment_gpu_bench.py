"""docs/design.md workflow 3 on one GPU: SFT (QLoRA) -> reward model -> DPO, PPO, RLOO, GRPO, compared on one table.

Each stage runs through its Python entry point (what the CLI calls) with the shipped recipe plus overrides:
  exports  curate build recipes/qa-sft-build.yaml and recipes/qa-pairs-build.yaml (kept when already built)
  sft      recipes/qa-sft.yaml, 4-bit nf4 QLoRA of SmolLM2-135M-Instruct
  reward   recipes/qa-reward.yaml
  dpo      recipes/qa-dpo.yaml   (policy = the SFT run, QLoRA)
  ppo      recipes/qa-ppo.yaml   (policy = the SFT run, reward = the reward run)
  rloo     recipes/qa-rloo.yaml
  grpo     recipes/qa-grpo.yaml
Every policy answers the same held-out questions (the qa-pairs test split; greedy, as `train generate`), and
the reward run scores them: mean reward before -> after, with the degeneration check (distinct-2, mean words,
share of identical answers, collapse), tokens/s, peak memory and seconds. The SFT row's "before" is the base
model answering them. Prints one markdown table; --json writes every figure.

Each stage runs in its own process, as the CLI runs each verb (one verb's process state, e.g. Liger's patches
of transformers' Llama classes, must not reach the next), and is kept in WORK/stages/STAGE.json; --reuse takes
kept stages instead of running them again, so a time-limited machine can run them over several calls.

    python benchmarks/alignment_gpu_bench.py --rl-steps 20 --json alignment.json   # one H200: ~15 minutes
    python benchmarks/alignment_gpu_bench.py --skip ppo --skip grpo                # first call ...
    python benchmarks/alignment_gpu_bench.py --reuse                               # ... then the rest
    python benchmarks/alignment_gpu_bench.py --smoke                    # CPU: the whole path on tiny budgets
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

VERBS = ("sft", "reward", "dpo", "ppo", "rloo", "grpo")
STAGES = ("sft", "reward", "heldout", *VERBS[2:])  # heldout: the base and the SFT run answer the held-out questions


def build_exports(work: Path) -> None:
    """The qa-sft and qa-pairs exports (`curate build` of the shipped recipes), built once into `work`."""
    from curate.pipeline import build
    from curate.recipe import apply_overrides, load_recipe

    for name in ("qa-sft", "qa-pairs"):
        out = work / "out" / name
        if not (out / "manifest.json").is_file():
            build(apply_overrides(load_recipe(f"recipes/{name}-build.yaml"), {"out": str(out)}), quiet=True)


def smoke_overrides(verb: str) -> dict[str, Any]:
    """Tiny budgets for a CPU check of the whole path (two steps each, short answers, four held-out questions)."""
    common: dict[str, Any] = {"training.max_steps": 2, "training.batch_size": 4, "tokenizer.max_length": 256}
    if verb in ("dpo", "ppo", "rloo", "grpo"):
        common |= {"degeneration.prompts": 4, "degeneration.check_every": 1}
    if verb == "ppo":
        common |= {"ppo.rollout_batch_size": 4, "ppo.ppo_epochs": 1}
    if verb == "sft":
        common |= {"generation.samples": 0}
    return common


def stage_recipe(verb: str, args: argparse.Namespace, work: Path) -> Any:
    """The stage's shipped recipe with the benchmark's overrides (run directories under WORK, steps, lengths)."""
    from train.config import SFTRecipe, load_recipe
    from train.dpo import DPORecipe
    from train.ppo import PPORecipe
    from train.reward import RewardRecipe
    from train.rl import RLRecipe

    overrides: dict[str, Any] = {
        "model.name": args.model,
        "logging.output_dir": str(work / "runs" / verb),
        "dataset.path": str(work / "out" / ("qa-sft" if verb == "sft" else "qa-pairs")),
    }
    if verb in ("dpo", "ppo", "rloo", "grpo"):
        overrides |= {"policy.run": str(work / "runs" / "sft"), "reward_model.run": str(work / "runs" / "reward")}
    if verb in ("sft", "dpo", "ppo", "rloo", "grpo"):  # the policy's base in 4 bits on a GPU, as the SFT run
        overrides["memory.quantize"] = "none" if args.smoke else args.quantize
    if verb in ("ppo", "rloo", "grpo") and args.rl_steps:
        overrides["training.max_steps"] = args.rl_steps
    if verb in ("ppo", "rloo", "grpo"):
        overrides["sampling.max_new_tokens"] = args.max_new_tokens
    if verb in ("dpo", "ppo", "rloo", "grpo"):  # every policy answers the held-out questions at the same length
        overrides["degeneration.max_new_tokens"] = args.max_new_tokens
    if args.smoke:
        overrides |= smoke_overrides(verb)
    recipe_class: Any = {"sft": SFTRecipe, "reward": RewardRecipe, "dpo": DPORecipe, "ppo": PPORecipe}.get(
        verb, RLRecipe
    )
    return load_recipe(recipe_class, f"recipes/qa-{verb}.yaml", overrides)


def run_stage(verb: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One stage from its recipe; returns its run card and wall seconds."""
    from train.dpo import run_dpo
    from train.ppo import run_ppo
    from train.reward import train_reward
    from train.rl import run_rl
    from train.sft import run_sft

    recipe = stage_recipe(verb, args, work)
    run_dir: Any  # sft returns its directory, the others a run (None only for --inspect)
    started = time.perf_counter()
    if verb == "sft":
        run_dir = run_sft(recipe, overwrite=True, quiet=True)
    elif verb == "reward":
        run_dir = train_reward(recipe, overwrite=True, quiet=True).run_dir
    elif verb == "dpo":
        run_dir = run_dpo(recipe, overwrite=True, quiet=True).run_dir
    elif verb == "ppo":
        run_dir = run_ppo(recipe, overwrite=True, quiet=True).run_dir
    else:
        run_dir = run_rl(verb, recipe, overwrite=True, quiet=True).run_dir
    wall = time.perf_counter() - started
    card = json.loads((run_dir / "run_card.json").read_text())
    return {"verb": verb, "wall_seconds": round(wall, 1), "card": card}


def sft_heldout(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The SFT row's degeneration section: the base, then the SFT policy, answering the held-out questions.

    Both load as the alignment verbs load their policy (the base in 4 bits on a GPU, plus the SFT adapter), so
    the SFT row's "after" is what the later rows start from (`train generate` would load a bf16 base instead).
    """
    from train.alignment import RewardModel, heldout_check, load_policy, policy_format, resolve_policy
    from train.data import load_data
    from train.model import load_tokenizer

    recipe, card = resolve_policy(stage_recipe("dpo", args, work))
    tokenizer = load_tokenizer(recipe.model.name, "left", recipe.tokenizer.pad_token)
    data = load_data(recipe.dataset.path, "dpo")
    reward = RewardModel(recipe.reward_model.run)
    check = heldout_check(data, tokenizer, policy_format(card, tokenizer, True), recipe.degeneration, reward)
    policy, _ = load_policy(recipe, card)
    after, _ = check.run(policy)
    del policy
    base, _ = load_policy(recipe, None)
    before, _ = check.run(base)
    return {"before": before, "after": after, "collapse": None, "prompts": len(check.questions)}


def _peak(card: dict[str, Any]) -> str:
    memory = card["peak_memory"]
    return f"{memory.get('peak_allocated_gb', memory.get('peak_rss_gb', 0)):.2f}"


def table(stages: list[dict[str, Any]]) -> str:
    """One markdown row per stage: held-out reward and degeneration before -> after, throughput, memory, time."""
    lines = [
        "| run | held-out reward before → after | Δ | distinct-2 before → after | mean words before → after "
        "| identical after | collapse | tokens/s | peak GB | s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for stage in stages:
        card, d = stage["card"], stage.get("degeneration") or stage["card"].get("degeneration") or {}
        before, after = d.get("before") or {}, d.get("after") or {}
        if before.get("mean_reward") is not None and after.get("mean_reward") is not None:
            reward = f"{before['mean_reward']:.3f} → {after['mean_reward']:.3f}"
            delta = f"{after['mean_reward'] - before['mean_reward']:+.3f}"
        else:
            reward, delta = "-", "-"
        distinct = f"{before['distinct_2']:.3f} → {after['distinct_2']:.3f}" if after else "-"
        words = f"{before['mean_words']:.1f} → {after['mean_words']:.1f}" if after else "-"
        collapse = d.get("collapse")
        collapsed = f"step {collapse['step']}: {collapse['reason']}" if collapse else ("no" if after else "-")
        lines.append(
            f"| {stage['verb']} | {reward} | {delta} | {distinct} | {words} | "
            f"{after.get('identical_share', 0):.0%} | {collapsed} | "
            f"{card['throughput']['tokens_per_second']:.0f} | {_peak(card)} | {stage['wall_seconds']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--work", default="/tmp/alignment-bench", help="Exports and run directories go here.")
    parser.add_argument("--rl-steps", type=int, default=30, help="PPO/RLOO/GRPO steps (the recipes say 60).")
    parser.add_argument("--max-new-tokens", type=int, default=96, help="Longest sampled and held-out answer.")
    parser.add_argument("--quantize", default="4bit", choices=["4bit", "8bit", "none"], help="The policy's base.")
    parser.add_argument("--skip", action="append", default=[], choices=VERBS[2:], help="Leave a stage out.")
    parser.add_argument("--reuse", action="store_true", help="Take stages finished earlier from WORK/stages.")
    parser.add_argument("--smoke", action="store_true", help="CPU check of the whole path on tiny budgets.")
    parser.add_argument("--json", default=None, help="Write every figure (run cards included) to this JSON file.")
    parser.add_argument("--stage", default=None, choices=STAGES, help=argparse.SUPPRESS)  # one stage, in this process
    args = parser.parse_args()
    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU (or --smoke for a CPU check of the path)")
    if args.smoke:
        args.rl_steps, args.max_new_tokens = 0, 16  # the smoke budget's own
        torch.set_num_threads(1)  # see tests/train/conftest.py: two threads on a busy small machine spin-wait
    work = Path(args.work)
    kept = work / "stages"
    if args.stage:
        run_kept_stage(args.stage, args, work, kept)
        return
    started = time.perf_counter()
    build_exports(work)
    kept.mkdir(parents=True, exist_ok=True)
    stages = []
    for stage in STAGES:
        if stage in args.skip:
            continue
        if not (args.reuse and (kept / f"{stage}.json").is_file()):
            # Its own process, as the CLI runs each verb: one stage's process state must not reach the next
            # (Liger, on by default for sft/reward on a GPU, patches transformers' Llama classes process-wide).
            ran = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--stage", stage], check=False)
            if ran.returncode != 0:
                if stage in ("sft", "reward"):  # every later stage needs them
                    raise SystemExit(f"{stage} failed (exit status {ran.returncode})")
                print(f"{stage} failed (exit status {ran.returncode})", flush=True)
                continue
        result = json.loads((kept / f"{stage}.json").read_text())
        if stage == "heldout":  # the SFT row's held-out figures
            stages[0]["degeneration"] = result["degeneration"]
        else:
            stages.append(result)
        print(f"{stage}: {result['wall_seconds']} s", flush=True)
        if args.json:  # after every stage: a run stopped at its time limit keeps what it measured
            Path(args.json).write_text(json.dumps(stages, indent=2, default=str))
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (smoke)"
    reward_card = next(s["card"] for s in stages if s["verb"] == "reward")
    print(f"\n{device} · torch {torch.__version__} · total {time.perf_counter() - started:.0f} s")
    print(
        f"reward run: test pairwise accuracy {reward_card['metrics'].get('test_pairwise_accuracy', 0):.3f}, "
        f"Spearman vs mean rating {reward_card['metrics'].get('test_spearman_vs_mean_rating') or 0:.3f}"
    )
    print(table([s for s in stages if s["verb"] != "reward"]))
    ppo_log = next((s["card"]["ppo_log"] for s in stages if s["verb"] == "ppo"), None)
    if ppo_log:  # where a PPO step's time goes
        rollout, update = (
            sum(e.get(k, 0.0) for e in ppo_log) / len(ppo_log) for k in ("rollout_seconds", "update_seconds")
        )
        print(f"ppo: {rollout:.2f} s rollout + {update:.2f} s updates per step (mean of {len(ppo_log)} steps)")
    if args.json:
        Path(args.json).write_text(json.dumps(stages, indent=2, default=str))


def run_kept_stage(stage: str, args: argparse.Namespace, work: Path, kept: Path) -> None:
    """One stage in this process, kept as WORK/stages/STAGE.json."""
    if stage == "heldout":
        started = time.perf_counter()
        degeneration = sft_heldout(args, work)
        result = {"verb": stage, "wall_seconds": round(time.perf_counter() - started, 1), "degeneration": degeneration}
    else:
        result = run_stage(stage, args, work)
    (kept / f"{stage}.json").write_text(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
