"""Semantic dedupe benchmark: naive full matrix vs exact FAISS vs ANN (ivf, hnsw), after embedding.

    nice .venv/bin/python benchmarks/dedupe_bench.py      # 20k text, 200k and 1M vectors
    .venv/bin/python benchmarks/dedupe_bench.py --text-rows 5000 --sizes 50000   # quick

20k: real text from data/ expanded with paraphrase-like variants, embedded with curate.similarity.embed.encode
(cached on disk; the first run embeds for a few minutes). 200k and 1M: random unit vectors with
planted near-duplicates (noisy copies of earlier rows, cosine 0.90-1.0 to their source).
Exact FAISS at 1M would take hours on 2 cores; there the exact pairs come from the planted families
(unrelated random 384-d unit vectors score < 0.4), a shortcut checked against exact FAISS at 200k.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curate.env import cpu_count, package_versions  # noqa: E402
from curate.similarity.dedupe import DedupeResult, greedy_keep, naive_dedupe  # noqa: E402
from curate.similarity.pair_search import Pairs, self_pairs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
console = Console()


def planted_vectors(rows: int, dim: int, dup_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random unit vectors; `dup_fraction` of rows are noisy copies (cosine U(0.90, 1.0)) of an earlier row.

    Returns the vectors and each row's source (-1 for originals); copies of copies happen.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    dups = np.sort(rng.choice(np.arange(1, rows), int(rows * dup_fraction), replace=False))
    source = np.full(rows, -1, dtype=np.int64)
    source[dups] = (rng.random(len(dups)) * dups).astype(np.int64)
    cos = rng.uniform(0.90, 1.0, len(dups)).astype(np.float32)
    done = np.ones(rows, dtype=bool)
    done[dups] = False
    todo = np.arange(len(dups))
    while len(todo):  # a copy of a copy waits until its source exists
        ready = todo[done[source[dups[todo]]]]
        rows_, src = dups[ready], source[dups[ready]]
        noise = rng.standard_normal((len(ready), dim), dtype=np.float32)
        noise -= np.sum(noise * x[src], axis=1, keepdims=True) * x[src]
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        c = cos[ready][:, None]
        x[rows_] = c * x[src] + np.sqrt(1 - c * c) * noise
        x[rows_] /= np.linalg.norm(x[rows_], axis=1, keepdims=True)
        done[rows_] = True
        todo = todo[~done[dups[todo]]]
    return x, source


def family_pairs(x: np.ndarray, source: np.ndarray, threshold: float) -> Pairs:
    """All pairs >= threshold inside planted families (rows sharing a root); exact for planted data."""
    root = np.arange(len(x))
    has = source >= 0
    root[has] = source[has]
    while True:
        nxt = np.where(source[root] >= 0, source[root], root)
        if np.array_equal(nxt, root):
            break
        root = nxt
    order = np.argsort(root, kind="stable")
    bounds = np.flatnonzero(np.diff(root[order])) + 1
    lefts, rights, sims = [], [], []
    for members in np.split(order, bounds):
        if len(members) < 2:
            continue
        s = x[members] @ x[members].T
        a, b = np.nonzero(np.tril(s >= np.float32(threshold), k=-1))
        lefts.append(members[a])
        rights.append(members[b])
        sims.append(s[a, b])
    later, earlier = np.concatenate(lefts), np.concatenate(rights)
    sim = np.concatenate(sims)
    swap = later < earlier
    later[swap], earlier[swap] = earlier[swap], later[swap]
    order = np.lexsort((earlier, later))
    return Pairs(later[order], earlier[order], sim[order])


def text_rows(rows: int, dup_fraction: float, seed: int) -> list[str]:
    """Real sentences from data/ recombined into `rows` distinct texts; some are paraphrase-like variants."""
    rnd = random.Random(seed)
    base: list[str] = []
    for path in ("data/genres/descriptions.jsonl", "data/latex/pairs.jsonl", "data/qa/ratings.jsonl"):
        for line in (ROOT / path).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            base += [str(row[k]) for k in ("text", "english", "prompt", "response") if k in row]
    base = sorted({b.strip() for b in base if len(b.split()) >= 4})
    fillers = ["Honestly,", "In short,", "Basically,", "As it turns out,", "Put simply,", "Note that"]

    def variant(text: str) -> str:
        words = text.split()
        move = rnd.randrange(4)
        if move == 0 and len(words) > 4:  # swap two neighbouring words
            i = rnd.randrange(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
        elif move == 1:  # drop a short word
            short = [i for i, w in enumerate(words) if len(w) <= 3]
            if short:
                del words[rnd.choice(short)]
        elif move == 2:
            words.insert(0, rnd.choice(fillers))
        else:
            return re.sub(r"[.!?]$", "", text) + "!"
        return " ".join(words)

    texts: list[str] = []
    seen: set[str] = set()
    while len(texts) < rows:
        if texts and rnd.random() < dup_fraction:
            text = variant(rnd.choice(texts))
        else:  # two unrelated real sentences make a new distinct text
            text = f"{rnd.choice(base)} {rnd.choice(base)}"
        if text not in seen:
            seen.add(text)
            texts.append(text)
    return texts


def cpu_name() -> str:
    """The processor's model name (Linux), else the machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def agreement(a: DedupeResult, b: DedupeResult) -> float:
    """Jaccard similarity of two kept sets (1.0 = the same rows kept)."""
    union = np.count_nonzero(a.keep | b.keep)
    return np.count_nonzero(a.keep & b.keep) / union if union else 1.0


def pair_recall(found: Pairs, truth: Pairs, rows: int) -> float:
    """Fraction of the exact pairs (>= threshold) that an index found."""
    return float(np.isin(truth.keys(rows), found.keys(rows)).mean()) if len(truth) else 1.0


def run_size(label: str, x: np.ndarray, source: np.ndarray | None, args: argparse.Namespace) -> list[dict]:
    rows, t = len(x), args.threshold
    results: list[dict] = []
    naive_bytes = rows * rows * 4
    naive_s = exact_s = None
    exact_result: DedupeResult | None = None
    if rows <= args.naive_max_rows:
        naive, naive_s = timed(lambda: naive_dedupe(x, t))
        results.append({"method": "naive (full matrix)", "seconds": naive_s, "result": naive})
    else:
        results.append({"method": "naive (full matrix)", "note": f"infeasible: needs {naive_bytes / 1e9:,.0f} GB"})
    if rows <= args.exact_max_rows:
        (exact_pairs, exact_result), exact_s = timed(lambda: _dedupe(x, t, "exact"))
        results.append({"method": "exact (faiss flat)", "seconds": exact_s, "result": exact_result})
        if naive_s is not None:
            results[-1]["identical_to_naive"] = bool(np.array_equal(exact_result.keep, naive.keep)) and bool(
                np.array_equal(exact_result.kept_by, naive.kept_by)
            )
    else:
        results.append({"method": "exact (faiss flat)", "note": f"skipped above {args.exact_max_rows:,} rows"})
    truth = exact_pairs if exact_result is not None else family_pairs(x, source, t)
    truth_result = exact_result or greedy_keep(rows, truth, t, "planted families")
    if source is not None and exact_result is not None:
        fam = family_pairs(x, source, t)
        console.print(
            f"[dim]{label}: planted-family pairs == exact FAISS pairs: {np.array_equal(fam.keys(rows), truth.keys(rows))}"
        )
    for ann in args.ann:
        if ann == "hnsw" and rows > args.hnsw_max_rows:
            results.append({"method": ann, "note": f"skipped above {args.hnsw_max_rows:,} rows (graph build)"})
            continue
        params = {"nprobe": args.nprobe} if (ann == "ivf" and args.nprobe) else {}
        repeat = args.repeat if ann == "ivf" else 1  # one HNSW graph build is enough to see its cost
        runs = [timed(lambda ann=ann, params=params: _dedupe(x, t, ann, **params)) for _ in range(repeat)]
        (pairs, result), secs = runs[0][0], min(r[1] for r in runs)  # best of --repeat: the machine is shared
        results.append(
            {
                "method": ann,
                "seconds": secs,
                "result": result,
                "identical": bool(np.array_equal(result.keep, truth_result.keep)),
                "agreement": agreement(result, truth_result),
                "pair_recall": pair_recall(pairs, truth, rows),
            }
        )
    for r in results:
        if "seconds" in r:
            r["rows_per_s"] = rows / r["seconds"]
            r["vs_naive"] = naive_s / r["seconds"] if naive_s else None
            r["vs_exact"] = exact_s / r["seconds"] if exact_s else None
            r["dropped"] = r["result"].dropped
    _print(label, rows, len(truth), results)
    console.print(f"[dim]load average after {label}: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return results


def _dedupe(x: np.ndarray, t: float, index: str, **params: int) -> tuple[Pairs, DedupeResult]:
    pairs = self_pairs(x, t, index, **params)
    return pairs, greedy_keep(len(x), pairs, t, index)


def _print(label: str, rows: int, n_pairs: int, results: list[dict]) -> None:
    table = Table(title=f"{label}: {rows:,} rows, {n_pairs:,} pairs >= threshold")
    for col in (
        "method",
        "seconds",
        "rows/s",
        "x naive",
        "x exact",
        "dropped",
        "kept set = exact",
        "agreement",
        "pair recall",
    ):
        table.add_column(col, justify="left" if col == "method" else "right")
    for r in results:
        if "seconds" not in r:
            table.add_row(r["method"], r["note"], *[""] * 7)
            continue

        def f(v: object, fmt: str) -> str:
            return "" if v is None else format(v, fmt)

        same = r.get("identical", r.get("identical_to_naive"))
        table.add_row(
            r["method"],
            f"{r['seconds']:.2f}",
            f"{r['rows_per_s']:,.0f}",
            f(r["vs_naive"], ".1f"),
            f(r["vs_exact"], ".1f"),
            f"{r['dropped']:,}",
            "" if same is None else ("yes" if same else "no") + (" (= naive)" if "identical_to_naive" in r else ""),
            f(r.get("agreement"), ".5f"),
            f(r.get("pair_recall"), ".5f"),
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[200_000, 1_000_000], help="planted-vector sizes")
    parser.add_argument("--text-rows", type=int, default=20_000, help="rows of the embedded-text case (0: skip)")
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--dup-fraction", type=float, default=0.15)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--ann", nargs="+", default=["ivf", "hnsw"], choices=["ivf", "hnsw"])
    parser.add_argument("--nprobe", type=int, default=0, help="override the IVF nprobe (0: the default)")
    parser.add_argument("--naive-max-rows", type=int, default=20_000, help="the full matrix needs rows^2 * 4 bytes")
    parser.add_argument("--exact-max-rows", type=int, default=200_000)
    parser.add_argument("--hnsw-max-rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3, help="IVF runs per size; the fastest is reported")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import faiss

    versions = package_versions(("faiss-cpu", "numpy", "sentence-transformers", "torch"))
    console.print(
        f"machine: {cpu_name()}, {cpu_count()} cores · "
        f"faiss threads {faiss.omp_get_max_threads()} · {versions} · "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · load average {os.getloadavg()[0]:.1f}"
    )
    if args.text_rows:
        from curate.similarity.embed import encode

        texts = text_rows(args.text_rows, args.dup_fraction, args.seed)
        x, secs = timed(lambda: encode(texts))
        console.print(f"[dim]text: embedded {len(texts):,} texts in {secs:.1f} s (cached on disk after the first run)")
        run_size("text (MiniLM embeddings)", np.asarray(x), None, args)
    for rows in args.sizes:
        x, source = planted_vectors(rows, args.dim, args.dup_fraction, args.seed)
        run_size(f"planted vectors {rows:,} x {args.dim}", x, source, args)


if __name__ == "__main__":
    main()
