"""The runs tree: every file a stage reads or writes is named here and nowhere else.

    <root>/<dataset>/forget_sets/<tag>.json                       multi-class permutation, HR indices
    <root>/<dataset>/<model>/original/m<n>.pt                     trained original (best val epoch)
    <root>/<dataset>/<model>/original/m<n>.state.pt               resumable training state (while training)
    <root>/<dataset>/<model>/embeddings/<cut>/m<n>_<split>.pt     cached inputs of a cut (train/val/test)
    <root>/<dataset>/<model>/synthetic/<cut>/m<n>_<noise>_spc<k>_s<seed>.pt (+ .json report)
    <root>/<dataset>/<model>/oracle/<tag>/m<n>.pt                 retrained without the forget set
    <root>/<dataset>/<model>/unlearned/<setting>/<source>/<method>/<tag>/m<n>_<run_id>.pt
    <root>/<dataset>/<model>/unlearned/.../m<n>_<run_id>.log.csv  per-epoch log of an unlearning run
    <root>/results/<kind>.csv                                     original.csv, oracle.csv, unlearn.csv
    <root>/tables/<name>.{csv,md,tex}                             collect_results.py's paper-style tables
    <root>/plots/<name>.png                                       collect_results.py's figures
    <root>/sweeps/<name>/tasks_<stamp>[_<chunk>].txt              sweep task lists (one main.py command a line)
    <root>/logs/<job name>-<job id>[_<task>].out                  Slurm and sweep logs

The root is `--root`, else $UNLEARN_ROOT, else ./runs. Downloaded data sets are read from --data_root,
else $UNLEARN_DATA, else ./datasets (the runs tree holds outputs only).
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ROOT = "runs"
DEFAULT_DATA = "datasets"  # downloaded data sets (CIFAR, TinyImageNet): their own folder, as runs/ is for outputs


def default_root() -> str:
    return os.environ.get("UNLEARN_ROOT", DEFAULT_ROOT)


def default_data_root() -> str:
    """Where CIFAR/TinyImageNet are read from when --data_root is unset: $UNLEARN_DATA, else ./datasets."""
    return os.environ.get("UNLEARN_DATA", DEFAULT_DATA)


def model_dir(root: str | Path, dataset: str, model: str) -> Path:
    return Path(root) / dataset / model


def forget_set_file(root: str | Path, dataset: str, tag: str) -> Path:
    return Path(root) / dataset / "forget_sets" / f"{tag}.json"


def original_ckpt(root: str | Path, dataset: str, model: str, n: int) -> Path:
    return model_dir(root, dataset, model) / "original" / f"m{n}.pt"


def training_state(ckpt: Path) -> Path:
    """Resumable state that sits next to a checkpoint while it is being trained."""
    return ckpt.with_name(ckpt.stem + ".state.pt")


def embeddings_file(root: str | Path, dataset: str, model: str, cut: str, n: int, split: str) -> Path:
    return model_dir(root, dataset, model) / "embeddings" / cut / f"m{n}_{split}.pt"


def synthetic_file(root: str | Path, dataset: str, model: str, cut: str, n: int, noise: str,
                   samples_per_class: int, seed: int) -> Path:
    return (model_dir(root, dataset, model) / "synthetic" / cut
            / f"m{n}_{noise}_spc{samples_per_class}_s{seed}.pt")


def report_file(samples: Path) -> Path:
    return samples.with_suffix(".json")


def oracle_ckpt(root: str | Path, dataset: str, model: str, tag: str, n: int) -> Path:
    return model_dir(root, dataset, model) / "oracle" / tag / f"m{n}.pt"


def unlearned_ckpt(root: str | Path, dataset: str, model: str, setting: str, source: str, method: str,
                   tag: str, n: int, run_id: str) -> Path:
    return (model_dir(root, dataset, model) / "unlearned" / setting / source / method / tag
            / f"m{n}_{run_id}.pt")


def epoch_log(ckpt: Path) -> Path:
    return ckpt.with_name(ckpt.stem + ".log.csv")


def results_csv(root: str | Path, kind: str) -> Path:
    return Path(root) / "results" / f"{kind}.csv"


def plots_dir(root: str | Path) -> Path:
    return Path(root) / "plots"


def plot_file(root: str | Path, name: str) -> Path:
    return plots_dir(root) / f"{name}.png"


def tables_dir(root: str | Path) -> Path:
    return Path(root) / "tables"


def table_file(root: str | Path, name: str, ext: str) -> Path:
    """A results table; `ext` is csv, md or tex."""
    return tables_dir(root) / f"{name}.{ext}"


def sweep_dir(root: str | Path, name: str) -> Path:
    return Path(root) / "sweeps" / name


def logs_dir(root: str | Path) -> Path:
    return Path(root) / "logs"
