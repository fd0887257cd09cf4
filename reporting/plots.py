"""Figures of a results table (matplotlib, Agg backend, PNG written atomically under <root>/plots):

- `<ds>_<model>_<setting>_<scenario>_bars.png`: per method × source, test retain and forget accuracy
  (mean ± std of the selected runs), the Oracle's as dashed reference lines;
- `..._per_class_<tag>.png`: per-class test accuracy of the original vs each method's unlearned model
  on one forget set (the first with an Oracle, else the first), from the rows' `test_class_acc`;
- `..._time.png`: unlearning wall time per method × source on a log axis, the Oracle's retraining
  time as a reference line;
- `..._repr.png` (class removal): per method × source, the test forget accuracy of its outputs, of a
  linear probe on its features and after the 10-shot relearning attack, the Original's and the
  Oracle's as reference lines (dotted, dashed).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from core import paths  # noqa: E402
from core.storage import atomic_path  # noqa: E402
from reporting.tables import ORACLE, ORIGINAL, Line, Table, class_acc  # noqa: E402

RETAIN, FORGET = "#1f77b4", "#d62728"


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _label(ln: Line) -> str:
    return f"{ln.method}\n{ln.source}" if ln.source else ln.method


def _mean_std(ln: Line, ds: str, col: str) -> tuple[float, float]:
    m, s, _ = ln.stats.get((ds, col), (math.nan, math.nan, 0))
    return m, (s if math.isfinite(s) else 0.0)


def bars(t: Table, ds: str, path: Path) -> Path | None:
    forget_col = t.metrics[1][0]  # test_forget_acc (CR) or train_forget_acc (HR)
    lines = [ln for ln in t.lines if ln.method not in (ORACLE,) and ln.n.get(ds)]
    if not lines:
        return None
    x = np.arange(len(lines))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * len(lines) + 2), 3.6))
    for off, col, colour, name in ((-0.2, "test_retain_acc", RETAIN, "retain (test)"),
                                   (0.2, forget_col, FORGET, "forget (" + forget_col.split("_")[0] + ")")):
        ms = np.array([_mean_std(ln, ds, col) for ln in lines])
        ax.bar(x + off, ms[:, 0], 0.4, yerr=ms[:, 1], color=colour, label=name, capsize=2)
    oracle = next((ln for ln in t.lines if ln.method == ORACLE and ln.n.get(ds)), None)
    if oracle is not None:
        for col, colour in (("test_retain_acc", RETAIN), (forget_col, FORGET)):
            m, _ = _mean_std(oracle, ds, col)
            if math.isfinite(m):
                ax.axhline(m, color=colour, ls="--", lw=1, label=f"Oracle {col.split('_')[1]}")
    ax.set_xticks(x, [_label(ln) for ln in lines], fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.set_title(f"{ds} {t.model} {t.setting} {t.scenario}: retain vs forget accuracy", fontsize=9)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    return _save(fig, path)


def per_class(t: Table, ds: str, root: str, stem: str) -> Path | None:
    rows = t.rows[t.rows["dataset"] == ds]
    un = rows[rows["kind"] == "unlearn"]
    if un.empty:
        return None
    tags = sorted(un["forget_tag"].unique(), key=lambda s: (len(s), s))
    with_oracle = set(rows.loc[rows["kind"] == "oracle", "forget_tag"])
    tag = next((g for g in tags if g in with_oracle), tags[0])
    sel = un[un["forget_tag"] == tag]
    n = sorted(sel["model_num"].unique())[0]
    sel = sel[sel["model_num"] == n]

    def first(kind: str, tagged: bool = True) -> pd.Series | None:
        r = rows[(rows["kind"] == kind) & (rows["model_num"] == n)]
        if tagged:
            r = r[r["forget_tag"] == tag]
        r = r[r["test_class_acc"].astype(str).str.len() > 0]
        return r.iloc[-1] if len(r) else None

    orig = first("original", tagged=False)
    oracle = first("oracle")
    runs = [r for _, r in sel.iterrows() if str(r["test_class_acc"])]
    if orig is None or not runs:
        return None
    base = class_acc(orig["test_class_acc"])
    k = len(base)
    forgotten = [int(c) for c in str(runs[0]["forget_classes"]).split()] if t.mode == "CR" else []
    cols = min(3, len(runs))
    nrows = -(-len(runs) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(max(4.0, 0.28 * k + 1.5) * cols, 2.3 * nrows), squeeze=False,
                             sharey=True)
    x = np.arange(k)
    for ax, r in zip(axes.flat, runs):
        acc = class_acc(r["test_class_acc"])
        ax.bar(x - 0.2, base, 0.4, color="0.6", label="original")
        ax.bar(x + 0.2, acc, 0.4, color=RETAIN, label="unlearned")
        if oracle is not None:
            ax.scatter(x, class_acc(oracle["test_class_acc"]), marker="_", color="k", s=60, label="Oracle", zorder=3)
        for c in forgotten:
            ax.axvspan(c - 0.5, c + 0.5, color=FORGET, alpha=0.15, lw=0)
        ax.set_title(f"{r['method']} ({r['source_label']}, lr {r['lr']:g})", fontsize=8)
        ax.set_xticks(x if k <= 20 else x[:: max(1, k // 10)])
        ax.tick_params(labelsize=7)
        ax.set_ylim(0, 1.05)
    for ax in list(axes.flat)[len(runs):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6, loc="lower left")
    fig.suptitle(f"{ds} {t.model} {t.setting}: per-class test accuracy, forget set {tag} (shaded), m{n}", fontsize=9, y=1.0)
    fig.tight_layout()
    return _save(fig, paths.plot_file(root, f"{stem}_per_class_{tag}"))


def times(t: Table, ds: str, path: Path) -> Path | None:
    lines = [ln for ln in t.lines if ln.method not in (ORIGINAL, ORACLE) and ln.n.get(ds)]
    ms = np.array([_mean_std(ln, ds, "time_unlearn_s") for ln in lines]) if lines else np.zeros((0, 2))
    keep = np.isfinite(ms[:, 0]) & (ms[:, 0] > 0) if len(ms) else np.zeros(0, bool)
    if not keep.any():
        return None
    lines, ms = [ln for ln, k in zip(lines, keep) if k], ms[keep]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.7 * len(lines) + 2), 3.2))
    ax.bar(np.arange(len(lines)), ms[:, 0], 0.6, yerr=np.minimum(ms[:, 1], ms[:, 0] * 0.99), color="#2ca02c",
           capsize=2)
    oracle = next((ln for ln in t.lines if ln.method == ORACLE and ln.n.get(ds)), None)
    if oracle is not None:
        m, _ = _mean_std(oracle, ds, "time_total_s")
        if math.isfinite(m) and m > 0:
            ax.axhline(m, color="k", ls="--", lw=1, label="Oracle (retraining)")
            ax.legend(fontsize=7)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(lines)), [_label(ln) for ln in lines], fontsize=7)
    ax.set_ylabel("unlearning time (s, log)")
    ax.set_title(f"{ds} {t.model} {t.setting} {t.scenario}: time per method", fontsize=9)
    return _save(fig, path)


REPR_BARS = (("test_forget_acc", "output", "#d62728"), ("probe_forget_acc", "linear probe", "#9467bd"),
             ("relearn_k10_forget_acc", "relearned (k=10)", "#ff7f0e"))


def representation(t: Table, ds: str, path: Path) -> Path | None:
    """Does the class come back? Output, probe and relearned forget accuracy per method (CR only)."""
    if t.mode != "CR":
        return None
    lines = [ln for ln in t.lines if ln.method not in (ORIGINAL, ORACLE) and ln.n.get(ds)]
    have = [c for c, _, _ in REPR_BARS[1:] if any(math.isfinite(_mean_std(ln, ds, c)[0]) for ln in t.lines)]
    if not lines or not have:
        return None
    x = np.arange(len(lines))
    w = 0.8 / len(REPR_BARS)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(lines) + 2), 3.6))
    for i, (col, name, colour) in enumerate(REPR_BARS):
        ms = np.array([_mean_std(ln, ds, col) for ln in lines])
        ax.bar(x + (i - 1) * w, ms[:, 0], w, yerr=ms[:, 1], color=colour, label=name, capsize=2)
        for ref, style in ((ORIGINAL, ":"), (ORACLE, "--")):
            ln = next((r for r in t.lines if r.method == ref and r.n.get(ds)), None)
            m = _mean_std(ln, ds, col)[0] if ln is not None else math.nan
            if math.isfinite(m):
                ax.axhline(m, color=colour, ls=style, lw=1, label=f"{ref}: {name}")
    ax.set_xticks(x, [_label(ln) for ln in lines], fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test forget accuracy")
    ax.set_title(f"{ds} {t.model} {t.setting} {t.scenario}: does the forget class come back?", fontsize=9)
    ax.legend(fontsize=6, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    return _save(fig, path)


def draw(t: Table, root: str) -> list[Path]:
    """Every figure of a table, per data set; returns the files written."""
    out = []
    for ds in t.datasets:
        stem = "_".join([ds, t.model] + ([t.setting] if t.setting else []) + [t.scenario])
        out += [bars(t, ds, paths.plot_file(root, f"{stem}_bars")), per_class(t, ds, root, stem),
                times(t, ds, paths.plot_file(root, f"{stem}_time")),
                representation(t, ds, paths.plot_file(root, f"{stem}_repr"))]
    return [p for p in out if p is not None]


def robustness_boxes(rows: pd.DataFrame, setting: str, path: Path) -> Path | None:
    """Box plots of one setting's robustness rows: test forget accuracy and test-retain drop against the
    original, per method, one box per source (real, each synthetic noise), over originals and classes."""
    d = rows[rows["setting"] == setting]
    if d.empty:
        return None
    d = d.assign(src=d.apply(lambda r: r["noise_type"] if r["source"] == "synthetic" else "real", axis=1),
                 forget=100 * d["test_forget_acc"].astype(float),
                 drop=100 * (d["a_or"].astype(float) - d["test_retain_acc"].astype(float)))
    methods = list(dict.fromkeys(d["method"]))
    sources = sorted(d["src"].unique(), key=lambda s: (s != "real", s))
    fig, axes = plt.subplots(2, 1, figsize=(max(6.0, 0.9 * len(methods) * len(sources)), 7), sharex=True)
    width = 0.8 / len(sources)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, col, label in ((axes[0], "forget", "test forget accuracy (%)"), (axes[1], "drop", "retain drop (points)")):
        for k, s in enumerate(sources):
            data = [d[(d["method"] == m) & (d["src"] == s)][col].to_numpy() for m in methods]
            pos = np.arange(len(methods)) + (k - (len(sources) - 1) / 2) * width
            b = ax.boxplot(data, positions=pos, widths=width * 0.9, patch_artist=True, showfliers=True)
            for patch in b["boxes"]:
                patch.set_facecolor(colours[k % len(colours)])
                patch.set_alpha(0.6)
            ax.plot([], [], color=colours[k % len(colours)], lw=6, alpha=0.6, label=s)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(title="source", fontsize=8)
    axes[1].set_xticks(np.arange(len(methods)), methods, rotation=30)
    n = d.groupby(["model_num", "forget_tag"]).ngroups
    axes[0].set_title(f"{setting}: spread over {d['model_num'].nunique()} originals and {n} (original, class) pairs")
    return _save(fig, path)
