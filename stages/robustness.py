"""The robustness study behind robustness.py: the rows a set of runs produced, and the distance of
their synthetic sets to the real embeddings (for the report only, after the runs)."""

from __future__ import annotations

import argparse
import json

import pandas as pd

from core import paths
from core.storage import atomic_write_json, load_checkpoint, read_rows
from engine.synthetic import distance_to_real
from reporting import results
from stages.experiment import plan


def collect(runs: list[argparse.Namespace]) -> pd.DataFrame:
    """The result rows of every unlearning run of `runs` (found by run id; the newest row wins)."""
    wanted = {results.run_id(r.config) for r in plan(runs) if r.which == "unlearn"}
    rows = {}
    for root in {a.root for a in runs}:
        for r in read_rows(paths.results_csv(root, "unlearn")):
            if r["run_id"] in wanted:
                rows[r["run_id"]] = r
    df = pd.DataFrame(list(rows.values()), columns=results.COLUMNS)
    for c in ("test_forget_acc", "test_retain_acc", "a_or", "time_unlearn_s", "model_num"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def distances(runs: list[argparse.Namespace]) -> pd.DataFrame:
    """For every synthetic set the runs used: its distance to the real train embeddings of the same cut
    (engine.synthetic.distance_to_real), also written into the set's report file. Sets or embeddings
    not on disk are skipped."""
    out, seen = [], set()
    for a in runs:
        if a.source != "synthetic" or a.setting == "full":
            continue
        for n in ([a.model_num] if a.model_num is not None else range(a.n_model)):
            f = paths.synthetic_file(a.root, a.dataset, a.model, a.setting, n, a.noise_type, a.samples_per_class,
                                     a.seed)
            real = paths.embeddings_file(a.root, a.dataset, a.model, a.setting, n, "train")
            if f in seen or not f.exists() or not real.exists():
                continue
            seen.add(f)
            syn, emb = load_checkpoint(f), load_checkpoint(real)
            d = distance_to_real((syn["x"], syn["y"]), (emb["x"], emb["y"]), a.num_classes)
            rep_file = paths.report_file(f)
            rep = json.loads(rep_file.read_text()) if rep_file.exists() else {}
            atomic_write_json(rep_file, {**rep, "distance_to_real": {str(k): v for k, v in d.items()}})
            out.append({"setting": a.setting, "noise": a.noise_type, "model_num": n, **d.get("median", {})})
    return pd.DataFrame(out)
