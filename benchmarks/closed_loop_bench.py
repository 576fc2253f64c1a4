"""The closed loop on data/qa (docs/workflow.md), measured: an LLM judge against the people, and a reward model
against the judge.

1. A review project from data/qa/items.jsonl (66 questions, 200 answers); `curate review judge` rates every
   answer with `--judge` (default: the offline SmolLM2-135M-Instruct, local, greedy) — answers/s, unparseable.
2. The people are data/qa's four labelers (ratings.jsonl: 445 ratings, 1-3 per answer; their own assignment, so
   they join here as a rated file, not through the app). Judge vs people: Krippendorff's alpha (interval),
   Spearman and mean offset against the people's mean rating, and whether the trust gate lets the judge count.
3. Rater-aware pairs: `curate build` (recipes/qa-pairs-build.yaml) on people + judge, `ratings.calibrate=true`.
4. `train reward` (recipes/qa-reward.yaml, `--epochs` of them) on the pairs, then `train evaluate` on the test
   pairs with the judge's ratings: the reward model's accuracy beside the judge's, by gap and agreement.

    python benchmarks/closed_loop_bench.py --work /tmp/loop --epochs 2 --json loop.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def judge_project_ratings(work: Path, judge: str, endpoint: str | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Step 1: every data/qa answer rated by the judge, through the store; its rated rows and the run's figures."""
    from curate.review.judge import JudgeConfig, judge_project
    from curate.review.store import ReviewStore

    db = f"sqlite:///{work / 'review.db'}"
    store = ReviewStore(db, migrate=True)
    store.create_project("qa", overlap=2)
    store.import_items("qa", [json.loads(line) for line in (ROOT / "data/qa/items.jsonl").read_text().splitlines()])
    started = time.perf_counter()
    run = judge_project(store, "qa", JudgeConfig(model=judge, endpoint=endpoint))
    seconds = time.perf_counter() - started
    rows = [r for r in store.reports.rated_rows("qa") if r.get("labeler_kind") == "judge"]
    figures = {
        "judge": run.judge,
        "answers": run.to_judge,
        "rated": run.rated,
        "unparseable": run.failed,
        "seconds": round(seconds, 1),
        "answers_per_second": round(run.to_judge / seconds, 2),
        "score_counts": {str(k): sum(r["rating"] == k for r in rows) for k in range(1, 11)},
    }
    return rows, figures


def judge_vs_people(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Step 2: the judge against the people on the answers both rated, and the trust gate's verdict."""
    import pandas as pd

    from curate.recipe import RatingsConfig
    from curate.review.agreement import judges_vs_humans, krippendorff_alpha
    from curate.review.ratings import judge_gate

    table = pd.DataFrame(rows)
    table["labeler_kind"] = table.get("labeler_kind", pd.Series(dtype=object)).fillna("human")
    table["answer_id"] = table.groupby(["prompt", "response"]).ngroup()
    people = table[table.labeler_kind == "human"]
    row = judges_vs_humans(table).iloc[0]
    alpha = None if math.isnan(row.alpha) else float(row.alpha)
    counted, reason = judge_gate(int(row.n_shared), alpha, RatingsConfig())
    return {
        "alpha_people_ordinal": krippendorff_alpha(people),
        "judge": row.judge,
        "shared_answers": int(row.n_shared),
        "alpha_interval": alpha,
        "spearman": float(row.spearman),
        "mean_offset": float(row.mean_offset),
        "counted": counted,
        "reason": reason,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/closed-loop"))
    parser.add_argument("--judge", default="smollm2", help="judge model (local), or the endpoint's model name")
    parser.add_argument("--endpoint", default=None, help="an OpenAI-compatible chat endpoint for the judge")
    parser.add_argument("--reward-model", default="smollm2")
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    from curate.env import package_versions
    from curate.pipeline import build
    from curate.recipe import apply_overrides, load_recipe
    from train.config import load_recipe as load_train_recipe
    from train.evaluate import evaluate_run
    from train.reward import RewardRecipe, train_reward

    judged, judging = judge_project_ratings(args.work, args.judge, args.endpoint)
    people = [json.loads(line) for line in (ROOT / "data/qa/ratings.jsonl").read_text().splitlines()]
    rated = args.work / "rated.jsonl"
    rated.write_text("".join(json.dumps(r) + "\n" for r in people + judged))
    versus = judge_vs_people(people + judged)

    recipe = load_recipe(ROOT / "recipes/qa-pairs-build.yaml")
    pairs = args.work / "qa-pairs"
    overrides = {"inputs": [str(rated)], "out": str(pairs), "ratings.calibrate": True}
    built = build(apply_overrides(recipe, overrides), quiet=True)
    raters = built.manifest.derive.raters if built.manifest.derive else None

    keys = {
        "dataset.path": str(pairs),
        "model.name": args.reward_model,
        "logging.output_dir": str(args.work / "qa-reward"),
        "training.epochs": args.epochs,
    }
    started = time.perf_counter()
    train_reward(load_train_recipe(RewardRecipe, ROOT / "recipes/qa-reward.yaml", keys), overwrite=True, quiet=True)
    reward_seconds = time.perf_counter() - started
    judge_file = args.work / "judge.jsonl"
    judge_file.write_text("".join(json.dumps(r) + "\n" for r in judged))
    evaluation = evaluate_run(args.work / "qa-reward", str(pairs), "test", str(judge_file), quiet=True)

    report = {
        "machine": {"platform": platform.platform(), "cpus": __import__("os").cpu_count()},
        "versions": package_versions(("torch", "transformers", "trl", "peft", "openai")),
        "judging": judging,
        "judge_vs_people": versus,
        "pairs": {
            "rows": built.manifest.derive.rows if built.manifest.derive else None,
            "raters": raters.model_dump() if raters else None,
        },
        "reward_seconds": round(reward_seconds, 1),
        "evaluation": evaluation,
    }
    print(json.dumps(report, indent=2, default=str))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
