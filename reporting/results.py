"""Result CSVs: one schema, one row per run, appended under a lock (see storage.append_rows).

Files: <root>/results/original.csv (baselines, stage 3), oracle.csv (stage 4), unlearn.csv (stage 5),
all with `COLUMNS`; training.csv (stages 1 and 4) with `TRAIN_COLUMNS`. The README documents each
column. `run_id` hashes every option that changes the result, so a rerun of the same configuration
is recognised (and skipped unless --overwrite); `command` reruns the row exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
import shlex
import time
from pathlib import Path

from core import paths
from core.runtime import git_commit, versions
from core.storage import append_rows, check_schema, read_rows

# Representation-level evaluation and the attack AUCs (README § Metrics): the row's own model, then the
# Original's and the Oracle's values for the same forget set (and setting), then the seconds they took.
REPR_COLUMNS = [
    "mia_auc_forget", "mia_auc_retain", "mia_indisc",
    "probe_forget_acc", "probe_retain_acc", "probe_cut_forget_acc", "probe_cut_retain_acc",
    "cka_original", "cka_oracle", "relearn_k1_forget_acc", "relearn_k10_forget_acc", "relearn_setup",
    "original_probe_forget_acc", "original_probe_cut_forget_acc",
    "oracle_probe_forget_acc", "oracle_probe_cut_forget_acc", "oracle_cka_original",
    "oracle_relearn_k1_forget_acc", "oracle_relearn_k10_forget_acc",
    "oracle_mia_auc_forget", "oracle_mia_auc_retain", "oracle_mia_indisc",
    "time_probe_s", "time_cka_s", "time_relearn_s", "time_reference_s",
]
COLUMNS = [
    "run_id", "timestamp", "kind", "run_name", "dataset", "model", "model_num", "seed", "mode", "forget_mode",
    "forget_tag", "forget_classes", "setting", "source", "method", "noise_type", "samples_per_class", "lr",
    "epochs", "bsize", "select", "select_score", "real_data", "best_epoch", "epochs_run", "stop_reason",
    "train_retain_acc", "train_forget_acc", "val_retain_acc", "val_forget_acc", "test_retain_acc",
    "test_forget_acc", "full_retain_acc", "full_forget_acc", "a_or", "aus", "val_aus",
    "mia_svc", "mia_svc_chance", "mia_efficacy", "mia_loss",
    "oracle_test_retain_acc", "oracle_test_forget_acc", "oracle_train_forget_acc",
    "oracle_mia_efficacy", "oracle_aus", "gap_oracle",
    "time_unlearn_s", "time_mia_s", "time_total_s",
    *REPR_COLUMNS,
    "test_class_acc", "device", "git_commit", "versions", "config", "command",
    "oracle_status",
]
TRAIN_COLUMNS = [
    "run_id", "timestamp", "kind", "run_name", "dataset", "model", "model_num", "seed", "forget_tag", "img_size",
    "epochs", "epochs_run", "best_epoch", "best_val_acc", "test_acc", "bsize", "lr", "world_size", "time_s",
    "device", "git_commit", "versions", "config", "command",
]
KINDS = ("original", "oracle", "unlearn")


# Options that do not change a result (where files go, how fast, what is printed): left out of run ids.
NON_RESULT_KEYS = {"cuts", "run_name", "root", "data_root", "cuda", "num_workers", "overwrite", "save_model", "save_df",
                   "push_results", "run_original", "run_unlearn", "run_rt_model", "load_unlearned_model", "stage",
                   "n_model", "hp", "plots", "rows_file", "rows", "threads"}


def run_id(config: dict) -> str:
    """Hash of the options that change a result (not paths, devices, or what is printed)."""
    key = {k: v for k, v in config.items() if k not in NON_RESULT_KEYS}
    return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]


def rerun_command(script: str, config: dict, flags: dict[str, tuple[str, object]]) -> str:
    """The exact command line that reproduces one row (every result-changing option spelled out).
    `flags` maps each option's name to (its flag, its parser default), as the parser declares them."""
    words = ["python", script]
    for k, v in config.items():
        if k not in flags or k in NON_RESULT_KEYS or v is None:
            continue
        flag, default = flags[k]
        if isinstance(v, bool):
            if v != default:
                words.append(flag if v else "--no-" + flag[2:])
        elif isinstance(v, list):
            words += [flag, *map(str, v)]
        else:
            words += [flag, str(v)]
    for k, v in config.get("method_hp", {}).items():
        words += ["--hp", f"{k}={v}"]
    return shlex.join(words)


def fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return " ".join(map(str, v))
    return "" if v is None else str(v)


def make_row(kind: str, config: dict, command: str, metrics: dict, **fields) -> dict:
    """A CSV row: provenance + configuration + metrics, formatted as strings; `command` reruns it."""
    row = dict(run_id=run_id(config), timestamp=time.strftime("%Y-%m-%dT%H:%M:%S"), kind=kind,
               git_commit=git_commit(), versions=versions(),
               config=json.dumps(config, sort_keys=True, default=str), command=command)
    for k in ("run_name", "dataset", "model", "model_num", "seed", "mode", "forget_mode", "lr", "epochs", "bsize"):
        if k in config:
            row[k] = config[k]
    row.update(metrics)
    row.update(fields)
    return {k: fmt(v) for k, v in row.items()}


def columns_of(kind: str) -> list[str]:
    return TRAIN_COLUMNS if kind == "training" else COLUMNS


def append(root: str | Path, kind: str, rows: list[dict]) -> Path:
    path = paths.results_csv(root, kind)
    append_rows(path, rows, columns_of(kind))
    return path


def check_csvs(root: str | Path, *kinds: str) -> None:
    """Refuse, before any work, a results CSV this stage would append to but whose header is foreign
    (so that a run does not end in an error after writing its checkpoints)."""
    for kind in kinds:
        check_schema(paths.results_csv(root, kind), columns_of(kind))


def existing(root: str | Path, kind: str) -> dict[str, dict]:
    """Rows already in a results CSV, by run_id (the last one wins)."""
    check_csvs(root, kind)
    return {r["run_id"]: r for r in read_rows(paths.results_csv(root, kind))}
