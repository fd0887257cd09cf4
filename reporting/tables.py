"""The paper-style results table: every results CSV under a runs root -> one table per (model, setting,
scenario), rows method × source (plus Original and Oracle), columns data set × metric, each cell the
mean ± std over forget sets and originals of the selected configuration.

Selection: for each (data set, model, setting, scenario, method, source) the candidate configurations
are the distinct option sets of its runs, apart from what varies between repeats (forget set, model
number, seed); in practice the learning rates of a sweep. The candidate that covers the most repeats
wins, ties broken by the highest mean `select_score` (the rows' own selection score: held-out synthetic
AUS for source-free rows, so the choice reads no real data; val AUS otherwise). The test
split is never read for selection; rows made with the seed's test-split selection are left out.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core import paths
from core.runtime import UserError
from core.storage import atomic_write_text, write_csv
from data import get_info
from data.forget import single
from evaluation.metrics import GAP_KEYS, gap_to_oracle
from methods import list_methods, real_data_needs
from models import model_family
from reporting import results

# (column, header, direction) per mode; direction: "+" higher is better, "-" lower, "" closest to the Oracle.
METRICS: dict[str, list[tuple[str, str, str]]] = {
    "CR": [("test_retain_acc", "A_r test", "+"), ("test_forget_acc", "A_f test", "-"), ("aus", "AUS", "+"),
           ("mia_efficacy", "MIA-eff", "+"), ("gap_oracle", "Gap", "-"),
           ("time_unlearn_s", "Time s", "-")],
    "HR": [("test_retain_acc", "A test", "+"), ("train_forget_acc", "A_f train", ""), ("aus", "AUS", "+"),
           ("mia_efficacy", "MIA-eff", ""), ("gap_oracle", "Gap", "-"),
           ("time_unlearn_s", "Time s", "-")],
}
# The representation table (printed below the main one): does the forget class stay in the features?
# Output forget accuracy beside the probe's, CKA, relearning and the attack AUCs; the probe of the cut
# only where the setting has one (partial, full).
REPR_METRICS: list[tuple[str, str, str]] = [
    ("test_forget_acc", "A_f test", "-"), ("probe_forget_acc", "Probe A_f", ""),
    ("probe_cut_forget_acc", "Probe-cut A_f", ""), ("probe_retain_acc", "Probe A_r", "+"),
    ("cka_original", "CKA→Orig", ""), ("cka_oracle", "CKA→Oracle", "+"),
    ("relearn_k1_forget_acc", "Relearn k1 A_f", ""), ("relearn_k10_forget_acc", "Relearn k10 A_f", ""),
    ("mia_auc_forget", "AUC forget", ""), ("mia_auc_retain", "AUC retain", ""), ("mia_indisc", "Indisc", "+"),
]
REPR_TIMES = ["time_probe_s", "time_cka_s", "time_relearn_s", "time_reference_s"]
EXTRA = (["mia_svc", "mia_svc_chance", "mia_loss", "time_mia_s", "time_total_s"]
         + [c for c, _, _ in REPR_METRICS if c != "test_forget_acc"] + REPR_TIMES)  # CSV table only
NUMERIC = ["lr", "val_aus", "aus", "a_or", "train_retain_acc", "train_forget_acc", "val_retain_acc", "val_forget_acc",
           "test_retain_acc", "test_forget_acc", "mia_svc", "mia_svc_chance", "mia_efficacy", "mia_loss",
           "gap_oracle", "time_unlearn_s", "time_mia_s", "time_total_s"] + \
          [c for c in results.REPR_COLUMNS if c != "relearn_setup"]
UNSCALED = {"aus", "time_unlearn_s", "time_mia_s", "time_total_s", *REPR_TIMES,  # everything else: a fraction, in %
            "cka_original", "cka_oracle", "mia_auc_forget", "mia_auc_retain", "mia_indisc"}
THREE_DIGITS = {"aus", "cka_original", "cka_oracle", "mia_auc_forget", "mia_auc_retain", "mia_indisc"}
REPEAT_KEYS = {"forget_tag", "forget_class", "model_num", "hr_seed", "seed", "mia", "probe", "cka", "relearn"}
# The Original's and the Oracle's lines take these columns from the copies every unlearning row carries
# (computed once per forget set in the rows' own setting: the Oracle's relearning attack trains the same
# part as the methods'), and fall back to their own rows' values.
REFERENCE_COPIES: dict[str, dict[str, str]] = {
    "Original": {"probe_forget_acc": "original_probe_forget_acc", "probe_cut_forget_acc": "original_probe_cut_forget_acc",
                 "cka_oracle": "oracle_cka_original"},
    "Oracle": {"probe_forget_acc": "oracle_probe_forget_acc", "probe_cut_forget_acc": "oracle_probe_cut_forget_acc",
               "cka_original": "oracle_cka_original", "relearn_k1_forget_acc": "oracle_relearn_k1_forget_acc",
               "relearn_k10_forget_acc": "oracle_relearn_k10_forget_acc", "mia_auc_forget": "oracle_mia_auc_forget",
               "mia_auc_retain": "oracle_mia_auc_retain", "mia_indisc": "oracle_mia_indisc"},
}
ORIGINAL, ORACLE = "Original", "Oracle"


def scenario(tag: str) -> str:
    """What a forget tag is an instance of: `single` (c<k>), `multi<k>`, or `HR<n>` (hr<n>_s<seed>)."""
    m = re.fullmatch(r"hr(\d+)_s\d+", tag)
    if m:
        return f"HR{m.group(1)}"
    return "single" if re.fullmatch(r"c\d+", tag) else tag


def signature(config: str) -> str:
    """A run's configuration without what varies between repeats: runs with equal signatures are
    repeats of one candidate configuration."""
    cfg = json.loads(config or "{}")
    return json.dumps({k: v for k, v in cfg.items() if k not in REPEAT_KEYS | results.NON_RESULT_KEYS},
                      sort_keys=True, default=str)


def source_label(row: pd.Series) -> str:
    """The table's Source cell: `real`, `synthetic/<noise>`; a full-setting row that distilled on
    Gaussian-noise surrogates (--surrogate_dataset noise) says so, since it is SCAR's failing case."""
    label = f"synthetic/{row['noise_type']}" if row["source"] == "synthetic" else str(row["source"])
    if row.get("setting") == "full" and '"surrogate_dataset": "noise"' in str(row.get("config", "")):
        label += " + noise surrogates"
    return label


def load(root: str) -> pd.DataFrame:
    """Every row of original.csv, oracle.csv and unlearn.csv (a rerun's row replaces the earlier one),
    with numeric metric columns, the scenario, and gaps to the Oracle filled in where the Oracle was
    trained after the row was written. Rows of an older schema get empty cells for the columns
    they lack."""
    frames = [pd.DataFrame(list(results.existing(root, k).values())).reindex(columns=results.COLUMNS)
              for k in results.KINDS]
    frames = [f for f in frames if len(f)]
    if not frames:
        raise UserError(f"no result rows under {paths.results_csv(root, 'x').parent}; run the stages first "
                        f"(training_original.py, test_originalmodel_singleclass.py, main.py)")
    df = pd.concat(frames, ignore_index=True).fillna("")
    for c in NUMERIC:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    df["scenario"] = df["forget_tag"].map(scenario)
    df["source_label"] = df.apply(source_label, axis=1)
    _fill_gaps(df)
    return df


def _fill_gaps(df: pd.DataFrame) -> None:
    """Gaps and `oracle_status` of rows written before their Oracle was trained (or by an older schema)."""
    oracles = {}
    for _, r in df[df["kind"] == "oracle"].iterrows():
        oracles[(r["dataset"], r["model"], r["model_num"], r["forget_tag"])] = r.to_dict()
    for i, r in df[(df["kind"] != "oracle") & df["gap_oracle"].isna()].iterrows():
        o = oracles.get((r["dataset"], r["model"], r["model_num"], r["forget_tag"]))
        if o is not None and r["mode"] in GAP_KEYS:
            df.loc[i, "gap_oracle"] = gap_to_oracle(r.to_dict(), o, r["mode"])
    for i, r in df[df["kind"] == "unlearn"].iterrows():
        if (r["dataset"], r["model"], r["model_num"], r["forget_tag"]) in oracles:
            df.loc[i, "oracle_status"] = "found"
        elif not str(r["oracle_status"]).startswith("missing"):
            df.loc[i, "oracle_status"] = f"missing: no row for {r['dataset']} {r['model']} m{r['model_num']} " \
                                         f"{r['forget_tag']} in results/oracle.csv"


def missing_oracles(df: pd.DataFrame, root: str) -> tuple[int, str]:
    """(number of unlearning rows without an Oracle, the command line that trains the missing Oracles:
    one training_oracle.py call per data set, model, input size and kind of forget set, joined by &&)."""
    miss = df[(df["kind"] == "unlearn") & df["oracle_status"].astype(str).str.startswith("missing")]
    if miss.empty:
        return 0, ""
    groups: dict[tuple, tuple[set, set]] = {}
    for _, r in miss.iterrows():
        tag, size = str(r["forget_tag"]), json.loads(r["config"] or "{}").get("img_size")
        hr = re.fullmatch(r"hr(\d+)_s(\d+)", tag)
        if hr:
            kind, value = ("--mode", "HR", "--hr_samples", hr.group(1), "--hr_seed"), int(hr.group(2))
        elif tag.startswith("multi"):
            kind, value = ("--forget_mode", "multi", "--num_forget_classes"), int(tag[5:])
        else:
            kind, value = ("--forget_class",), int(tag[1:])
        nums, values = groups.setdefault((r["dataset"], r["model"], size, kind), (set(), set()))
        nums.add(int(r["model_num"]))
        values.add(value)
    cmds = []
    for (ds, model, size, kind), (nums, values) in sorted(groups.items(), key=str):
        words = ["python", "training_oracle.py", "--dataset", ds, "--model", model]
        if size is not None and int(size) != get_info(ds).img_size[model_family(model)]:
            words += ["--img_size", str(size)]
        words += [*kind, *map(str, sorted(values)), "--model_num", *map(str, sorted(nums))]
        if str(root) != str(paths.default_root()):
            words += ["--root", str(root)]
        cmds.append(shlex.join(words))
    return len(miss), " && ".join(cmds)


FILTERS = ("dataset", "model", "mode", "forget_mode", "setting", "source", "method", "forget_class",
           "num_forget_classes")


def filter_rows(df: pd.DataFrame, filters: dict) -> pd.DataFrame:
    """Rows that match the filters given (keys of FILTERS; a value or a list of accepted values; None =
    any value); unlearning-only filters leave Original/Oracle rows alone."""
    f = {k: (v if isinstance(v, list) else [v]) for k in FILTERS if (v := filters.get(k)) is not None}
    for k in ("dataset", "model", "mode", "forget_mode"):
        if k in f:
            df = df[df[k].isin(f[k])]
    for k in ("setting", "source", "method"):
        if k in f:
            df = df[(df["kind"] != "unlearn") | df[k].isin(f[k])]
    if "forget_class" in f:
        df = df[df["forget_tag"].isin([single(c).tag for c in f["forget_class"]])]
    if "num_forget_classes" in f:
        df = df[df["scenario"].isin([f"multi{k}" for k in f["num_forget_classes"]])]
    test_sel = df["select"].astype(str).str.startswith("test_aus")
    if test_sel.any():
        print(f"note: {int(test_sel.sum())} rows used the seed's test-split selection (--select test_aus); "
              f"left out of the tables")
        df = df[~test_sel]
    return df


def select_best(un: pd.DataFrame) -> pd.DataFrame:
    """The unlearning rows of the selected candidate per (data set, model, setting, scenario, method,
    source): most repeats, then the highest mean of the rows' own selection score (`select_score`:
    held-out synthetic AUS for source-free rows, so that choosing among their configurations reads no
    real data either; val AUS for the others; none for --select last; older rows: val_aus)."""
    if un.empty:
        return un
    blank = pd.Series("", index=un.index)
    old = un.get("real_data", blank).astype(str) == ""  # written before these columns existed
    score = pd.to_numeric(un.get("select_score", blank), errors="coerce").where(~old, un["val_aus"])
    un = un.assign(sig=un["config"].map(signature), score=score,
                   repeat=un["forget_tag"] + "/" + un["model_num"] + "/" + un["seed"].astype(str))
    chosen = []
    for _, g in un.groupby(["dataset", "model", "setting", "scenario", "method", "source_label"], sort=False):
        stats = g.groupby("sig").agg(n=("repeat", "nunique"), val=("score", "mean"))
        stats["val"] = stats["val"].fillna(-math.inf)
        best = stats.sort_values(["n", "val"], ascending=False, kind="stable").index[0]
        chosen.append(g[g["sig"] == best])
    return pd.concat(chosen)


@dataclass
class Line:
    """One table row: a method × source (or Original/Oracle) and its cells per (data set, metric)."""

    method: str
    source: str
    needs_retain: str
    needs_forget: str
    real_data: str = ""  # what real data the unlearning read (the rows' `real_data`), "none" when source-free
    stats: dict[tuple[str, str], tuple[float, float, int]] = field(default_factory=dict)  # mean, std, n
    lr: dict[str, float] = field(default_factory=dict)
    n: dict[str, int] = field(default_factory=dict)


@dataclass
class Table:
    name: str
    model: str
    setting: str
    scenario: str
    mode: str
    datasets: list[str]
    lines: list[Line]
    rows: pd.DataFrame  # the rows behind the table (selected unlearning rows, originals, oracles)

    @property
    def metrics(self) -> list[tuple[str, str, str]]:
        return METRICS[self.mode]

    @property
    def repr_metrics(self) -> list[tuple[str, str, str]]:
        """The representation table's columns that some line fills (the probe of the cut: partial/full)."""
        cols = [m for m in REPR_METRICS if self.setting != "fc" or m[0] != "probe_cut_forget_acc"]
        if self.mode != "CR":
            cols = [m for m in cols if m[0] != "test_forget_acc"]
        return [m for m in cols if any(ln.stats.get((ds, m[0]), (0, 0, 0))[2] for ln in self.lines for ds in self.datasets)]


def _stats(g: pd.DataFrame, col: str) -> tuple[float, float, int]:
    v = g[col].dropna().to_numpy(dtype=float)
    if len(v) == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, len(v)


def _line(method: str, source: str, needs: tuple[str, str], g: pd.DataFrame, datasets: list[str], cols: list[str],
          copies: pd.DataFrame | None = None, real_data: str = "") -> Line:
    """One line's cells; for the Original and the Oracle, `copies` are the table's unlearning rows, whose
    `original_*`/`oracle_*` columns (REFERENCE_COPIES) fill the line, once per (original, forget set)."""
    line = Line(method, source, *needs, real_data=real_data)
    for ds in datasets:
        d = g[g["dataset"] == ds]
        line.n[ds] = len(d)
        if len(d) and d["kind"].iloc[0] == "unlearn":
            line.lr[ds] = float(d["lr"].iloc[0])
        for c in cols:
            line.stats[(ds, c)] = _stats(d, c)
        if copies is None:
            continue
        cp = copies[copies["dataset"] == ds]
        for c, src in REFERENCE_COPIES.get(method, {}).items():
            if c in cols:
                per_set = cp.dropna(subset=[src]).drop_duplicates(subset=["model_num", "forget_tag"])
                if len(per_set):
                    line.stats[(ds, c)] = _stats(per_set, src)
    return line


def _repeat_key(df: pd.DataFrame) -> pd.Series:
    return df["dataset"] + "/" + df["model_num"].astype(str) + "/" + df["forget_tag"]


def _mark(b: bool) -> str:
    return "✓" if b else "✗"


def build(df: pd.DataFrame) -> list[Table]:
    """One Table per (model, setting, scenario) among the unlearning rows. The Original and Oracle
    rows of that model and scenario join it, restricted to the (data set, model number, forget set)s
    its unlearning rows cover, so that every line averages over the same forget sets."""
    un = select_best(df[df["kind"] == "unlearn"])
    keys = sorted({(r.model, r.setting, r.scenario) for r in un.itertuples()})
    if not keys:
        keys = sorted({(r.model, "", r.scenario) for r in df.itertuples()})
    order = {m: i for i, m in enumerate(list_methods())}
    tables = []
    for model, setting, scen in keys:
        u = un[(un["model"] == model) & (un["setting"] == setting) & (un["scenario"] == scen)] if len(un) else un
        base = df[(df["model"] == model) & (df["scenario"] == scen)]
        if len(u):  # Original and Oracle over the same (data set, original, forget set)s as the methods
            base = base[_repeat_key(base).isin(set(_repeat_key(u)))]
        orig, orac = base[base["kind"] == "original"], base[base["kind"] == "oracle"]
        part = pd.concat([u, orig, orac])
        datasets = sorted(part["dataset"].unique())
        mode = str(part["mode"].iloc[0])
        cols = list(dict.fromkeys([c for c, _, _ in METRICS[mode]] + EXTRA))
        lines = []
        if len(orig):
            lines.append(_line(ORIGINAL, "", ("–", "–"), orig, datasets, cols, u))
        if len(u):
            groups = sorted(u.groupby(["method", "source_label"]).groups,
                            key=lambda k: (order.get(k[0], len(order)), k[0], k[1] != "real", k[1]))
            for method, src in groups:
                g = u[(u["method"] == method) & (u["source_label"] == src)]
                r0 = g.iloc[0]
                used = " / ".join(sorted(set(g["real_data"].astype(str)) - {""}))
                if used:  # what the rows say they read
                    needs = ("retain" in used, "forget" in used)
                else:  # rows written before the real_data column
                    cfg = json.loads(r0["config"] or "{}")
                    needs = real_data_needs(method, setting, r0["source"], cfg.get("surrogate_dataset"),
                                            cfg.get("scar_stats"))
                lines.append(_line(method, src, tuple(map(_mark, needs)), g, datasets, cols, real_data=used))
        if len(orac):
            lines.append(_line(ORACLE, "retrain", (_mark(True), _mark(False)), orac, datasets, cols, u))
        name = "_".join(["+".join(datasets), model] + ([setting] if setting else []) + [scen])
        tables.append(Table(name, model, setting, scen, mode, datasets, lines, part))
    return tables


# --- formatting ----------------------------------------------------------------------------------------

def fmt_cell(col: str, mean: float, std: float, n: int, pm: str = " ± ") -> str:
    if n == 0 or not math.isfinite(mean):
        return "–"
    scale, digits = (1.0, 3 if col in THREE_DIGITS else 2) if col in UNSCALED else (100.0, 2)
    s = f"{mean * scale:.{digits}f}"
    return s + (f"{pm}{std * scale:.{digits}f}" if math.isfinite(std) else "")


def _arrow(d: str) -> str:
    return {"+": "↑", "-": "↓"}.get(d, "")


def _lr(line: Line, ds: str) -> str:
    return f"{line.lr[ds]:g}" if ds in line.lr else ""


def to_markdown(t: Table) -> str:
    head = ["Method", "Source", "D_r", "D_f", "Real data"]
    for ds in t.datasets:
        head += [f"{ds} lr"] + [f"{ds} {h}{_arrow(d)}" for _, h, d in t.metrics] + [f"{ds} n"]
    out = [f"**{t.model}, {t.setting or 'no unlearning runs'}, {t.scenario}** (accuracies, MIA and Gap in %; "
           f"mean ± std over forget sets and originals; n = runs averaged)", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for ln in t.lines:
        cells = [ln.method, ln.source, ln.needs_retain, ln.needs_forget, ln.real_data]
        for ds in t.datasets:
            cells.append(_lr(ln, ds))
            cells += [fmt_cell(c, *ln.stats[(ds, c)]) for c, _, _ in t.metrics]
            cells.append(str(ln.n.get(ds, 0)))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n" + _repr_markdown(t)


def _repr_markdown(t: Table) -> str:
    """The representation table: the same lines, the columns of REPR_METRICS that some line fills."""
    metrics = t.repr_metrics
    if not any(c != "test_forget_acc" for c, _, _ in metrics):
        return ""
    head = ["Method", "Source"] + [f"{ds} {h}{_arrow(d)}" for ds in t.datasets for _, h, d in metrics]
    note = ("; fc: every method's head reads the Original's features (the cached embeddings), so their probe "
            "is the Original's, not refit, and their CKA to it is 1 by construction" if t.setting == "fc" else "")
    out = ["", f"**{t.model}, {t.setting}, {t.scenario}: representations** (probe, relearn accuracies in %; "
           f"CKA, attack AUC (0.5 = chance) and indiscernibility in [0, 1]; the Oracle's relearning is the same "
           f"attack on the Oracle{note})", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for ln in t.lines:
        cells = [ln.method, ln.source] + [fmt_cell(c, *ln.stats[(ds, c)]) for ds in t.datasets for c, _, _ in metrics]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def _tex(s: str) -> str:
    return s.replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")


def to_latex(t: Table) -> str:
    per = len(t.metrics) + 1
    spec = "llcc" + ("|" + "c" * per) * len(t.datasets)
    sym = {"✓": r"\checkmark", "✗": r"$\times$", "–": "--", "": ""}
    arrows = {"+": r"$\uparrow$", "-": r"$\downarrow$", "": ""}
    lines = [r"% " + f"{t.model}, {t.setting}, {t.scenario}: accuracies, MIA and Gap in \\%, mean $\\pm$ std",
             r"% needs \usepackage{booktabs,amssymb}",
             r"\begin{tabular}{" + spec + "}", r"\toprule",
             " & & & " + " ".join(f"& \\multicolumn{{{per}}}{{c}}{{{_tex(ds)}}}" for ds in t.datasets) + r" \\",
             r"Method & Source & $D_r$ & $D_f$ "
             + " ".join("& lr " + " ".join(f"& {_tex(h)}{arrows[d]}" for _, h, d in t.metrics) for _ in t.datasets)
             + r" \\", r"\midrule"]
    for ln in t.lines:
        if ln.method == ORACLE:
            lines.append(r"\midrule")
        cells = [_tex(ln.method), _tex(ln.source), sym[ln.needs_retain], sym[ln.needs_forget]]
        for ds in t.datasets:
            cells.append(_lr(ln, ds))
            cells += [fmt_cell(c, *ln.stats[(ds, c)], pm=r"$\pm$").replace("–", "--") for c, _, _ in t.metrics]
        lines.append(" & ".join(cells) + r" \\")
        if ln.method == ORIGINAL:
            lines.append(r"\midrule")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def csv_rows(t: Table) -> tuple[list[dict], list[str]]:
    """Machine-readable table: means and stds as plain numbers (fractions, seconds), one row per line."""
    cols = ["model", "setting", "scenario", "method", "source", "needs_retain", "needs_forget", "real_data"]
    metric_cols = [c for c, _, _ in t.metrics] + EXTRA
    for ds in t.datasets:
        cols += [f"{ds}:lr", f"{ds}:n"] + [f"{ds}:{c}:{s}" for c in metric_cols for s in ("mean", "std")]
    rows = []
    for ln in t.lines:
        r = {"model": t.model, "setting": t.setting, "scenario": t.scenario, "method": ln.method, "source": ln.source,
             "needs_retain": ln.needs_retain, "needs_forget": ln.needs_forget, "real_data": ln.real_data}
        for ds in t.datasets:
            r[f"{ds}:lr"] = _lr(ln, ds)
            r[f"{ds}:n"] = ln.n.get(ds, 0)
            for c in metric_cols:
                mean, std, _ = ln.stats[(ds, c)]
                r[f"{ds}:{c}:mean"], r[f"{ds}:{c}:std"] = results.fmt(mean), results.fmt(std)
        rows.append(r)
    return rows, cols


def write(t: Table, root: str) -> list:
    """The table as CSV, Markdown and LaTeX under <root>/tables (atomic writes)."""
    rows, cols = csv_rows(t)
    out = [paths.table_file(root, t.name, e) for e in ("csv", "md", "tex")]
    write_csv(out[0], rows, cols)
    atomic_write_text(out[1], to_markdown(t))
    atomic_write_text(out[2], to_latex(t))
    return out


def class_acc(s: str) -> np.ndarray:
    """The `test_class_acc` column back into an array (empty when the row has none)."""
    return np.array([float(v) for v in str(s).split()], dtype=float)
