"""Whole `curate build` at scale: peak RSS and wall time of a 1M-row build from JSONL and from Parquet.

    nice .venv/bin/python benchmarks/build_bench.py                  # 1M rows: jsonl + parquet, exact dedupe
    nice .venv/bin/python benchmarks/build_bench.py --semantic       # the same with --semantic-dedupe (cold cache)
    .venv/bin/python benchmarks/build_bench.py --rows 100000         # quick
    nice .venv/bin/python benchmarks/build_bench.py --baseline 3825850  # and the same builds by that commit's code

Each build runs as the user runs it (`python -m curate.cli build FILE --out DIR --quiet`) in its own
process; its peak RSS is the kernel's `ru_maxrss` of that process (os.wait4). The data: instruction
rows (prompt ~50-120 chars, response ~80-400 chars) built from the words of data/, 2% exact copies of
earlier rows and 2% near copies (one word changed), written once under --work. Semantic dedupe embeds
with a fresh embedding cache (CURATRAIN_CACHE in --work), so its time includes embedding every row.
Targets (docs/design.md): peak RSS <= 4 GB and whole build <= 10 min on 2 cores. `--baseline REF` runs
each build a second time with the code of git commit REF (extracted with `git archive` under --work),
in the same run, and prints the ratios (3825850: the last build that held every row in memory).

`--semantic --prefill`: embedding 1M texts with all-MiniLM-L6-v2 takes hours on 2 CPU cores, so the
embedding cache is filled first with unit vectors for exactly the texts the build embeds (each near
copy gets its source's vector plus noise, cosine ~0.97, so dedupe has real work): the build then
measures everything but the embedding (memory, search, spills, export), and the embedding rate is
measured on --embed-sample of the same texts and reported beside it.
"""

from __future__ import annotations

import argparse
import contextlib
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


def embedded_texts(jsonl: Path) -> list[str]:
    """The text semantic dedupe embeds for each row: its normalized prompt and response (curate's own functions)."""
    from curate.schema import Kind, Record
    from curate.steps.semantic_dedupe import SEMANTIC_FIELDS, record_text
    from curate.text import normalize_text

    texts = []
    with jsonl.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            data = {k: normalize_text(row[k]) for k in ("prompt", "response")}
            texts.append(record_text(Record(row["id"], data, "bench", 0), SEMANTIC_FIELDS[Kind.instruction]))
    return texts


def prefill_cache(texts: list[str], cache: Path, seed: int = 0) -> None:
    """Unit vectors for `texts` in the embedding cache: equal texts share one, a near copy sits at cosine ~0.97."""
    import numpy as np

    from curate.similarity.embed import Embedder, text_digest

    embedder = Embedder(cache_dir=cache / "embeddings")
    rng = np.random.default_rng(seed)
    dim = 384  # all-MiniLM-L6-v2
    by_prompt: dict[str, np.ndarray] = {}  # a near copy keeps its source's prompt: it gets a vector near its source's
    digests, vectors = [], []
    for text in dict.fromkeys(texts):
        prompt = text.split("\n\n", 1)[0]
        vector = rng.standard_normal(dim).astype(np.float32)
        if prompt in by_prompt:
            vector = by_prompt[prompt] + 0.25 * vector / np.linalg.norm(vector)
        else:
            by_prompt[prompt] = vector / np.linalg.norm(vector)
        digests.append(text_digest(text))
        vectors.append(vector / np.linalg.norm(vector))
        if len(digests) == 65_536:
            embedder.cache.add(digests, np.stack(vectors))
            digests, vectors = [], []
    if digests:
        embedder.cache.add(digests, np.stack(vectors))


def embed_rate(texts: list[str], cache: Path) -> float:
    """Texts per second all-MiniLM-L6-v2 embeds here (backend auto, one thread), model loaded, cache cold."""
    from curate.similarity.embed import Embedder

    shutil.rmtree(cache, ignore_errors=True)
    embedder = Embedder(cache_dir=cache)
    embedder.encode(["a text to load (and export) the model before the clock starts"], quiet=True)
    start = time.perf_counter()
    embedder.encode(texts, quiet=True)
    return len(texts) / (time.perf_counter() - start)


def checkout(ref: str, work: Path) -> Path:
    """The code of git commit `ref`, extracted once under `work`."""
    commit = subprocess.run(["git", "rev-parse", "--short", ref], cwd=ROOT, capture_output=True, text=True, check=True)
    code = work / f"code-{commit.stdout.strip()}"
    if not code.exists():
        code.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(code)], input=archive.stdout, check=True)
    return code


def run_build(data: Path, out: Path, semantic: bool, cache: Path, code: Path = ROOT) -> dict[str, float | int]:
    """Run one `curate build` with the code under `code`; its wall time, peak RSS, rows in and out and exit status."""
    args = [sys.executable, "-m", "curate.cli", "build", str(data), "--out", str(out), "--quiet"]
    if semantic:
        args.append("--semantic-dedupe")
    env = {**os.environ, "PYTHONPATH": str(code), "CURATRAIN_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    shutil.rmtree(out, ignore_errors=True)  # the bench owns its work directory
    start = time.perf_counter()
    process = subprocess.Popen(args, cwd=code, env=env, stderr=subprocess.PIPE)
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
        "rows_in": (manifest.get("counts") or {}).get("rows_read", 0),
        "rows_out": sum((manifest.get("counts") or {}).get("splits", {}).values()),
    }


def versions() -> str:
    """The commit measured and the versions of the packages a build leans on."""
    from importlib.metadata import PackageNotFoundError, version

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    found = []
    for package in ("datasets", "pyarrow", "numpy", "faiss-cpu", "sentence-transformers", "torch"):
        with contextlib.suppress(PackageNotFoundError):
            found.append(f"{package} {version(package)}")
    return f"curatrain {commit.stdout.strip()} · " + " · ".join(found)


def row(label: str, result: dict[str, float | int], baseline: dict[str, float | int] | None) -> str:
    """One Markdown table row: wall time, rows/s, peak RSS, rows out (and the ratios to the baseline)."""
    rate = result["rows_in"] / max(float(result["seconds"]), 1e-9)
    cells = [label, f"{result['seconds']} s", f"{rate:,.0f}", f"{result['peak_rss_gb']} GB", f"{result['rows_out']:,}"]
    if baseline is not None:
        cells += [
            f"{baseline['seconds']} s · {baseline['peak_rss_gb']} GB · {baseline['rows_out']:,} rows",
            f"{float(result['seconds']) / max(float(baseline['seconds']), 1e-9):.2f}x",
            f"{float(result['peak_rss_gb']) / max(float(baseline['peak_rss_gb']), 1e-9):.2f}x",
        ]
    if result["exit"]:
        cells.append(f"exit {result['exit']}")
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--semantic", action="store_true", help="add --semantic-dedupe (embedding with a cold cache)")
    parser.add_argument("--formats", nargs="+", default=["jsonl", "parquet"], choices=["jsonl", "parquet"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/curatrain-build-bench"))
    parser.add_argument("--prefill", action="store_true", help="with --semantic: fill the embedding cache first")
    parser.add_argument("--embed-sample", type=int, default=2000, help="texts embedded to measure the embed rate")
    parser.add_argument("--baseline", metavar="REF", help="also run each build with the code of git commit REF")
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
    print(versions())
    baseline_code = checkout(args.baseline, args.work) if args.baseline else None
    header = ["build", "wall", "rows/s", "peak RSS", "rows out"]
    if baseline_code is not None:
        header += [f"baseline {args.baseline}", "time ratio", "RSS ratio"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    os.environ["OMP_NUM_THREADS"] = "1"
    texts = embedded_texts(jsonl) if args.semantic else []
    if args.semantic:
        rate = embed_rate(texts[: args.embed_sample], args.work / "rate-cache")
        print(f"embedding rate: {rate:.0f} texts/s → {args.rows / rate / 60:.0f} min for {args.rows:,} rows")
    for fmt in args.formats:
        cache = args.work / "cache"
        results = {}
        for code in (ROOT, baseline_code):
            if code is None:
                continue
            shutil.rmtree(cache, ignore_errors=True)  # semantic dedupe embeds every row: a cold cache
            if args.semantic and args.prefill:
                prefill_cache(texts, cache)
            results[code] = run_build(inputs[fmt], args.work / f"out-{fmt}", args.semantic, cache, code)
        label = f"{fmt}{' + semantic dedupe' if args.semantic else ''}{' (prefilled cache)' if args.prefill else ''}"
        print(row(label, results[ROOT], results.get(baseline_code) if baseline_code else None), flush=True)


if __name__ == "__main__":
    main()
