"""Sweep throughput: the same grid of unlearning rows run one process per row and all in one process.

Grid: every method x forget classes 1..9 x {real, synthetic}, digits, ResNet-18, fc setting, one
original (trained once into --root if missing, with its embeddings), main.py's defaults otherwise.
The in-process run goes twice, before and after the per-process one, and the ratio uses their mean:
a small machine's speed drifts over the 20-30 minutes between them (the two in-process times and
their ratio, the drift, are printed). Each run writes into its own copy of the runs tree (original
and embeddings only, so each generates its synthetic sets once). Prints the wall times, rows/s, the
ratio, and the in-process wall time against the rows' own recorded time (unlearning + evaluation,
`time_total_s`), and two ceilings of the ratio, what a runner with no overhead at all would reach: the
per-process wall over the rows' recorded time, and over their unlearning alone (were evaluation free
too); checks that every run wrote the same metrics. The last line is `speedup <ratio>`.

    python bench/bench_sweep.py                 # 198 rows: 11 methods (the per-process way takes 20-30 minutes)
    python bench/bench_sweep.py --rows 20       # the first 20 rows of the grid
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from methods import list_methods  # noqa: E402

METRICS = ["test_retain_acc", "test_forget_acc", "aus", "val_aus", "mia_efficacy", "best_epoch"]


def sh(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], cwd=REPO, check=True, capture_output=True, text=True, **kw)


def grid(n_rows: int | None) -> list[list[str]]:
    rows = [["--method", m, "--source", s, "--forget_class", str(c)]
            for m in list_methods() for s in ("real", "synthetic") for c in range(1, 10)]
    return rows[:n_rows] if n_rows else rows


def tree_copy(src: Path, dst: Path) -> None:
    """A runs tree with only the original and its embeddings (no results, no synthetic sets)."""
    shutil.rmtree(dst, ignore_errors=True)
    model = Path("digits") / "resnet18"
    for part in ("original", "embeddings"):
        shutil.copytree(src / model / part, dst / model / part)


def read(root: Path) -> dict[tuple, dict]:
    with open(root / "results" / "unlearn.csv", newline="") as f:
        return {(r["method"], r["source"], r["forget_tag"]): r for r in csv.DictReader(f)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=None, help="only the first N rows of the grid (default: all 198)")
    p.add_argument("--root", default=str(REPO / "runs" / "bench_sweep"),
                   help="where the original and the three trees go (default: runs/bench_sweep)")
    a = p.parse_args()
    base = Path(a.root).resolve()
    env = {**os.environ, "UNLEARN_PROGRESS": "0"}
    if not (base / "digits" / "resnet18" / "embeddings").exists():
        print(f"training the digits original into {base} (once)", flush=True)
        sh("training_original.py", "--dataset", "digits", "--root", str(base), env=env)
        sh("create_embeddings.py", "--dataset", "digits", "--root", str(base), env=env)
    rows = grid(a.rows)
    per, before, after = base / "per_process", base / "in_process", base / "in_process_after"
    for tree in (per, before, after):
        tree_copy(base, tree)
    print(f"{len(rows)} rows (digits, resnet18, fc, one original)", flush=True)

    def in_process(tree: Path) -> float:
        rows_file = tree / "rows.txt"
        rows_file.write_text("".join(shlex.join(["python", "main.py", *r, "--root", str(tree)]) + "\n" for r in rows))
        t0 = time.perf_counter()
        sh("main.py", "--rows_file", str(rows_file), env=env)
        return time.perf_counter() - t0

    wall_before = in_process(before)
    print(f"  all in one process: {wall_before:.1f}s", flush=True)
    t0 = time.perf_counter()
    for i, r in enumerate(rows):
        sh("main.py", *r, "--root", str(per), env=env)
        if (i + 1) % 20 == 0:
            print(f"  one process per row: {i + 1}/{len(rows)} rows, {time.perf_counter() - t0:.0f}s", flush=True)
    wall_per = time.perf_counter() - t0

    wall_after = in_process(after)
    wall_in = (wall_before + wall_after) / 2

    got_per, got_in, got_after = read(per), read(before), read(after)
    same = got_per.keys() == got_in.keys() == got_after.keys() and all(
        [got[k][c] for c in METRICS] == [got_in[k][c] for c in METRICS] for got in (got_per, got_after) for k in got)
    recorded = sum(float(r["time_total_s"]) for r in got_in.values())
    unlearning = sum(float(r["time_unlearn_s"]) for r in got_in.values())
    n = len(rows)
    print(f"one process per row: {wall_per:8.1f}s  {n / wall_per:6.2f} rows/s")
    print(f"all in one process:  {wall_in:8.1f}s  {n / wall_in:6.2f} rows/s  (mean of {wall_before:.1f}s before and "
          f"{wall_after:.1f}s after; drift {wall_after / wall_before:.2f})")
    print(f"rows' recorded time (unlearning + evaluation): {recorded:.1f}s, of which unlearning {unlearning:.1f}s; "
          f"in-process wall / recorded = {wall_before / recorded:.2f} (the run before)")
    print(f"ceiling: even with no overhead at all, one process cannot beat the rows' own work: speedup at most "
          f"{wall_per / recorded:.1f} (their unlearning and evaluation), {wall_per / unlearning:.1f} (unlearning alone)")
    print(f"same metrics every run: {'yes' if same else 'NO'} ({len(got_in)} rows)")
    print(f"speedup {wall_per / wall_in:.1f}")


if __name__ == "__main__":
    main()
