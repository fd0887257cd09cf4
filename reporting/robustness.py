"""The robustness table: how unlearning results spread over originals and forget classes, per method,
source and setting, from the result rows of a robustness run (see robustness.py).

Per (setting, method, source): median and worst (largest) test forget accuracy; median and worst
test-retain drop against the original (`a_or - test_retain_acc`, in points); for synthetic sources,
the synthetic-minus-real difference of test forget accuracy on the same (original, class) pair
(median of the absolute value, and its median signed value). The targets are checked for the
methods that use forget data (every method but FT), on the synthetic source.
"""

from __future__ import annotations

import pandas as pd

# (column, bound in %): median/worst test forget, median/worst retain drop, median |synthetic - real|
TARGETS = {"forget_median": 3.0, "forget_worst": 10.0, "drop_median": 1.5, "drop_worst": 4.0, "abs_delta_median": 3.0}
COLUMNS = ["setting", "method", "source", "n", "forget_median", "forget_worst", "drop_median", "drop_worst",
           "delta_median", "abs_delta_median", "meets_targets", "unlearn_s_median"]


def table(rows: pd.DataFrame, methods_using_forget: set[str], order: list[str] | None = None) -> pd.DataFrame:
    """`rows`: unlearning rows (results CSV columns, numeric accuracies). Values in % (points) and seconds.
    Lines per setting, methods in `order` (default: as they come), real first."""
    df = rows.copy()
    df["source_label"] = df.apply(lambda r: f"synthetic/{r['noise_type']}" if r["source"] == "synthetic" else "real",
                                  axis=1)
    df["forget"] = 100 * df["test_forget_acc"].astype(float)
    df["drop"] = 100 * (df["a_or"].astype(float) - df["test_retain_acc"].astype(float))
    key = ["setting", "method", "model_num", "forget_tag"]
    real = df[df["source"] == "real"].set_index(key)["forget"]
    out = []
    for (setting, method, src), g in df.groupby(["setting", "method", "source_label"], sort=False):
        r = {"setting": setting, "method": method, "source": src, "n": len(g),
             "forget_median": g["forget"].median(), "forget_worst": g["forget"].max(),
             "drop_median": g["drop"].median(), "drop_worst": g["drop"].max(),
             "unlearn_s_median": g["time_unlearn_s"].astype(float).median()}
        if src != "real":
            pair = g.set_index(key)["forget"]
            delta = (pair - real.reindex(pair.index)).dropna()
            r["delta_median"] = delta.median() if len(delta) else float("nan")
            r["abs_delta_median"] = delta.abs().median() if len(delta) else float("nan")
            if method in methods_using_forget:
                r["meets_targets"] = "yes" if all(r[k] <= v for k, v in TARGETS.items()) else \
                    "no: " + ", ".join(k for k, v in TARGETS.items() if not r[k] <= v)
        out.append(r)
    t = pd.DataFrame(out).reindex(columns=COLUMNS)
    rank = {m: i for i, m in enumerate(order or dict.fromkeys(t["method"]))}
    key = t.apply(lambda r: (r["setting"], rank.get(r["method"], len(rank)), r["source"] != "real", r["source"]), axis=1)
    return t.iloc[sorted(range(len(t)), key=lambda i: key.iloc[i])].reset_index(drop=True)


def to_markdown(t: pd.DataFrame) -> str:
    """The table as Markdown, one block per setting (numbers in %, retain drop in points)."""
    head = ["Method", "Source", "n", "forget med", "forget worst", "drop med", "drop worst", "Δ syn−real med",
            "\\|Δ\\| med", "targets", "s/run"]
    blocks = []
    for setting, g in t.groupby("setting", sort=False):
        lines = [f"**{setting}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in g.itertuples():
            num = [f"{v:.1f}" if pd.notna(v) else "" for v in (r.forget_median, r.forget_worst, r.drop_median,
                                                                 r.drop_worst, r.delta_median, r.abs_delta_median)]
            lines.append("| " + " | ".join([r.method, r.source, str(r.n), *num,
                                            r.meets_targets if isinstance(r.meets_targets, str) else "",
                                            f"{r.unlearn_s_median:.2f}"]) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
