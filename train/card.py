"""Run cards: run_card.json (machine-readable) and README.md (model card) in every run directory.

A run card answers "what is this model and where did it come from": base model, quantization,
LoRA config, hyperparameters, the export's content hash, metrics, hardware, tokens/s and peak
memory. `train generate` and `train merge` read it back to find the base model and template.
"""

from __future__ import annotations

import json
import platform
import resource
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from curate.env import cpu_count, package_versions
from curate.errors import CurateError
from curate.hub import SMOLLM2_ALIASES
from curate.io.atomic import replace_file
from curate.io.owned import stamped

SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # what the offline `smollm2` alias is, for model cards

CARD = "run_card.json"
VERSIONED = ("curatrain", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes")


def versions() -> dict[str, str]:
    """Installed versions of the packages that shaped a run."""
    return package_versions(VERSIONED)


def hardware() -> dict[str, Any]:
    """The machine a run used: CPU count, and the GPU's name, memory and compute capability."""
    info: dict[str, Any] = {"platform": platform.platform(), "cpus": cpu_count()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = props.name
        info["gpu_count"] = torch.cuda.device_count()
        info["gpu_memory_gb"] = round(props.total_memory / 2**30, 1)
        info["compute_capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
    return info


def reset_peak_memory() -> None:
    """Start peak-memory accounting for this run (GPU allocator; the CPU figure is the process peak RSS)."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory() -> dict[str, Any]:
    """Peak memory: GPU bytes allocated by torch when on a GPU, else the process's peak resident set."""
    if torch.cuda.is_available():
        return {
            "device": "cuda",
            "peak_allocated_gb": round(torch.cuda.max_memory_allocated() / 2**30, 3),
            "peak_reserved_gb": round(torch.cuda.max_memory_reserved() / 2**30, 3),
        }
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    return {"device": "cpu", "peak_rss_gb": round(rss_kb * scale / 2**30, 3)}


def now() -> str:
    """UTC timestamp for cards."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_run_card(run_dir: Path, card: dict[str, Any]) -> None:
    """Write run_card.json and the model card README.md into the run directory, each whole or not at all."""
    run_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(stamped(card), indent=2, ensure_ascii=False, default=str) + "\n"  # marked: ours to replace
    replace_file(run_dir / CARD, text.encode())
    replace_file(run_dir / "README.md", model_card(card).encode())


def read_run_card(run_dir: str | Path) -> dict[str, Any]:
    """Load a run directory's run_card.json, with a clear error when it is not a finished run."""
    path = Path(run_dir) / CARD
    if not path.is_file():
        raise CurateError(f"{run_dir}: not a train run directory (no {CARD}); train one with `train sft`")
    return json.loads(path.read_text(encoding="utf-8"))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def model_card(card: dict[str, Any]) -> str:
    """A short Markdown model card built from the run card."""
    data = card.get("data", {})
    base = card.get("base_model")
    lines = [
        "---",
        f"base_model: {SMOLLM2_HUB_ID if base in SMOLLM2_ALIASES else base}",
        "library_name: peft" if card.get("lora") else "library_name: transformers",
        "tags: [curatrain, trl, " + str(card.get("verb", "train")) + "]",
        "---",
        "",
        f"# {card.get('name', 'run')}",
        "",
        f"`train {card.get('verb')}` of **{card.get('base_model')}** on **{data.get('name')}** "
        f"(`{data.get('source')}`, content hash `{data.get('content_hash')}`), {card.get('finished_at', '')}.",
        "",
        "## Training",
        "",
        f"- quantization: {card.get('quantization', {}).get('quantize', 'none')}",
        f"- LoRA: {json.dumps(card.get('lora'))}" if card.get("lora") else "- full fine-tune (no LoRA)",
        f"- hyperparameters: {json.dumps(card.get('hyperparameters', {}))}",
        f"- hardware: {json.dumps(card.get('hardware', {}))}",
        f"- tokens/s: {_fmt(card.get('throughput', {}).get('tokens_per_second'))} · "
        f"peak memory: {json.dumps(card.get('peak_memory', {}))}",
        "",
        "## Metrics",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {key} | {_fmt(value)} |" for key, value in card.get("metrics", {}).items()]
    for name, result in (card.get("evaluations") or {}).items():
        lines += ["", f"## Evaluation on {name}", "", evaluation_table(result)]
    samples = card.get("samples") or []
    if samples:
        lines += ["", "## Sample generations (test prompts)", ""]
        for sample in samples:
            lines += [
                f"- prompt: `{sample['prompt']!r}`",
                f"  - generated: `{sample['generated']!r}`",
                f"  - reference: `{sample.get('reference')!r}`",
            ]
    lines += degeneration_lines(card.get("degeneration") or {})
    lines += ["", f"Versions: {json.dumps(card.get('versions', {}))}", ""]
    return "\n".join(lines)


def degeneration_lines(section: dict[str, Any]) -> list[str]:
    """The alignment verbs' held-out check as a before/after table, and the collapse if there was one."""
    before, after = section.get("before"), section.get("after")
    if not before or not after:
        return []
    lines = ["", f"## Held-out check ({section.get('prompts')} questions, greedy answers)", ""]
    lines += ["| | before | after |", "|---|---|---|"]
    lines += [f"| {key} | {_fmt(before.get(key))} | {_fmt(value)} |" for key, value in after.items()]
    collapse = section.get("collapse")
    if collapse:
        lines += ["", f"**Collapse at step {collapse['step']}**: {collapse['reason']}"]
    return lines


def evaluation_rows(result: dict[str, Any]) -> list[tuple[Any, ...]]:
    """One `train evaluate` result as rows (label, reward model's figure[, judge's]); a bucket's figure is
    {accuracy, pairs}."""
    reward, judge = result["reward"], result.get("judge")
    sides: list[dict[str, Any]] = [reward, judge] if judge else [reward]
    rows: list[tuple[Any, ...]] = [
        ("pairs", *(side["pairs"] for side in sides)),
        ("pairwise accuracy", *(side["accuracy"] for side in sides)),
    ]
    if judge:
        rows.append(("accuracy on the judge's pairs", judge["reward_model_on_these_pairs"], judge["accuracy"]))
    rows.append(("Spearman vs mean rating", *(side.get("spearman") for side in sides)))
    for group, label in (("by_gap", "rating gap"), ("by_agreement", "agreement")):
        for name in reward.get(group, {}):
            rows.append((f"accuracy, {label} {name}", *(side.get(group, {}).get(name) for side in sides)))
    return rows


def evaluation_table(result: dict[str, Any]) -> str:
    """Markdown of one `train evaluate` result: the reward model's figures beside the judge's."""
    judge = result.get("judge")
    lines = [
        "| | reward model |" + (f" judge `{judge['name']}` |" if judge else ""),
        "|---|---:|" + ("---:|" if judge else ""),
    ]
    for label, *cells in evaluation_rows(result):
        shown = [
            "n/a" if c is None else f"{c['accuracy']:.3f} ({c['pairs']})" if isinstance(c, dict) else _fmt(c)
            for c in cells
        ]
        lines.append(f"| {label} | " + " | ".join(shown) + " |")
    return "\n".join(lines)
