"""Whole `curate build` at scale: peak RSS and wall time of a 1M-row build from JSONL and from Parquet.

    nice .venv/bin/python benchmarks/build_bench.py                  # 1M rows: jsonl + parquet, exact dedupe
    nice .venv/bin/python benchmarks/build_bench.py --semantic       # the same with --semantic-dedupe (cold cache)
    .venv/bin/python benchmarks/build_bench.py --rows 100000         # quick

Each build runs as the user runs it (`python -m curate.cli build FILE --out DIR --quiet`) in its own
process; its peak RSS is the kernel's `ru_maxrss` of that process (os.wait4). The data: instruction
rows (prompt ~50-120 chars, response ~80-400 chars) built from the words of data/, 2% exact copies of
earlier rows and 2% near copies (one word changed), written once under --work. Semantic dedupe embeds
with a fresh embedding cache (CURATRAIN_CACHE in --work), so its time includes embedding every row.
Targets (docs/design.md): peak RSS <= 4 GB and whole build <= 10 min on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def vocabulary() -> list[str]:
    """The distinct lower-case words of the hand-written sample data."""
    words: set[str] = set()
    for path in (ROOT / "data").rglob("*.jsonl"):
        words.update(re.findall(r"[a-z]{3,}", path.read_text(encoding="utf-8").lower()))
    return sorted(words)


def write_rows(path: Path, rows: int, seed: int = 0) -> None:
    """`rows` instruction rows as JSONL, with 2% exact and 2% near copies of earlier rows."""
    rng = random.Random(seed)
    words = vocabulary()
    made: list[tuple[str, str]] = []
    with path.open("w", encoding="utf-8") as handle:
        for i in range(rows):
            roll = rng.random()
            if made and roll < 0.02:
                prompt, response = made[rng.randrange(len(made))]
            elif made and roll < 0.04:
                prompt, response = made[rng.randrange(len(made))]
                parts = response.split()
                parts[rng.randrange(len(parts))] = rng.choice(words)
                response = " ".join(parts)
            else:
                prompt = " ".join(rng.choices(words, k=rng.randint(8, 18))).capitalize() + "?"
                response = " ".join(rng.choices(words, k=rng.randint(12, 60))).capitalize() + "."
                if len(made) < 50_000:
                    made.append((prompt, response))
            handle.write(json.dumps({"id": f"r{i}", "prompt": prompt, "response": response}) + "\n")


def to_parquet(jsonl: Path, parquet: Path) -> None:
    """The same rows as Parquet (pyarrow's JSON reader, streamed in blocks)."""
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    pq.write_table(pj.read_json(jsonl), parquet)


def run_build(data: Path, out: Path, semantic: bool, cache: Path) -> dict[str, float | int]:
    """Run one `curate build`; its wall time, peak RSS and exit status."""
    args = [sys.executable, "-m", "curate.cli", "build", str(data), "--out", str(out), "--quiet"]
    if semantic:
        args.append("--semantic-dedupe")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CURATRAIN_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    process = subprocess.Popen(args, cwd=ROOT, env=env, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    stderr = process.stderr.read().decode() if process.stderr else ""
    if status != 0:
        print(stderr, file=sys.stderr)
    manifest = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").exists() else {}
    return {
        "seconds": round(seconds, 1),
        "peak_rss_gb": round(usage.ru_maxrss * 1024 / 1e9, 2),  # Linux reports KiB
        "exit": os.waitstatus_to_exitcode(status),
        "rows_out": sum((manifest.get("counts") or {}).get("splits", {}).values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--semantic", action="store_true", help="add --semantic-dedupe (embedding with a cold cache)")
    parser.add_argument("--formats", nargs="+", default=["jsonl", "parquet"], choices=["jsonl", "parquet"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/curatrain-build-bench"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    jsonl = args.work / f"rows-{args.rows}.jsonl"
    if not jsonl.exists():
        write_rows(jsonl, args.rows)
    inputs = {"jsonl": jsonl, "parquet": jsonl.with_suffix(".parquet")}
    if "parquet" in args.formats and not inputs["parquet"].exists():
        to_parquet(jsonl, inputs["parquet"])
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · load {os.getloadavg()[0]:.1f} · "
        f"{os.cpu_count()} CPUs · Python {platform.python_version()} · {args.rows:,} rows "
        f"({jsonl.stat().st_size / 1e6:.0f} MB JSONL)"
    )
    for fmt in args.formats:
        cache = args.work / "cache"
        shutil.rmtree(cache, ignore_errors=True)  # semantic dedupe embeds every row: a cold cache
        result = run_build(inputs[fmt], args.work / f"out-{fmt}", args.semantic, cache)
        label = f"{fmt}{' + semantic dedupe' if args.semantic else ''}"
        print(f"| {label} | {result['seconds']} s | {result['peak_rss_gb']} GB | {result['rows_out']:,} rows out |")


if __name__ == "__main__":
    main()
