"""Metrics, one definition each, used by every stage (baselines, oracles, unlearning) so that a
column means the same thing in every CSV. Accuracies are fractions in [0, 1]; NaN marks an empty part
(e.g. the test forget part in HR mode, where no test sample is forgotten).
"""

from __future__ import annotations

import math

import torch

from core.logits import log_softmax, softmax


def accuracy(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    if mask is not None:
        logits, y = logits[mask], y[mask]
    if len(y) == 0:
        return float("nan")
    return (logits.argmax(1) == y).float().mean().item()


def firmness(logits: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor, forget_mask: torch.Tensor,
             terms: dict | None = None) -> float:
    """Tie-break of an accuracy-based selection score (higher is better): minus the mean probability the
    model gives forget samples' own class, minus KL(original ‖ model) on retain samples. At equal AUS
    (often 1 once every held-out sample is right) it prefers the epoch that forgets more firmly and has
    moved the retain outputs least. `terms`, when given, receives the two parts (`p_forget`, `retain_kl`)."""
    p_forget = softmax(logits[forget_mask]).gather(1, y[forget_mask, None]).mean()
    r = ~forget_mask
    kl = torch.nn.functional.kl_div(log_softmax(logits[r]), log_softmax(teacher_logits[r]),
                                    reduction="batchmean", log_target=True)
    p_forget, kl = p_forget.nan_to_num(0.0), kl.nan_to_num(0.0)
    p, k, total = torch.stack([p_forget, kl, p_forget + kl]).tolist()  # one device read for all three
    if terms is not None:
        terms.update(p_forget=p, retain_kl=k)
    return -total


def class_accuracies(logits: torch.Tensor, y: torch.Tensor) -> list[float]:
    """Accuracy of each class 0..C-1 (C = logits' width; NaN for a class without samples)."""
    c = logits.shape[1]
    hits = torch.bincount(y[logits.argmax(1) == y], minlength=c)[:c].double()
    counts = torch.bincount(y, minlength=c)[:c].double()
    return (hits / counts).tolist()


def aus(mode: str, a_or: float, a_test_retain: float, a_forget: float) -> float:
    """Accuracy-Unlearning Score (seeds' definition), with A_or the original's measured accuracy.

    CR: (1 − (A_or − A_test_retain)) / (1 + A_test_forget)
    HR: (1 − (A_or − A_test)) / (1 + |A_forget − A_test|), A_forget on the forgotten train samples.
    """
    if mode == "CR":
        return (1 - (a_or - a_test_retain)) / (1 + a_forget)
    return (1 - (a_or - a_test_retain)) / (1 + abs(a_forget - a_test_retain))


def retain_forget_accuracies(outputs: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> dict:
    """`outputs[split] = (logits, labels, forget_mask)` for train/test (and val) -> accuracy columns,
    plus `full_*` on train+test together and the per-class test accuracies (for the per-class plot)."""
    row = {}
    for split, (lo, y, fm) in outputs.items():
        row[f"{split}_retain_acc"] = accuracy(lo, y, ~fm)
        row[f"{split}_forget_acc"] = accuracy(lo, y, fm)
    if "train" in outputs and "test" in outputs:
        lo = torch.cat([outputs["train"][0], outputs["test"][0]])
        y = torch.cat([outputs["train"][1], outputs["test"][1]])
        fm = torch.cat([outputs["train"][2], outputs["test"][2]])
        row["full_retain_acc"] = accuracy(lo, y, ~fm)
        row["full_forget_acc"] = accuracy(lo, y, fm)
    if "test" in outputs:
        row["test_class_acc"] = [round(a, 4) for a in class_accuracies(*outputs["test"][:2])]
    return row


def add_aus(row: dict, mode: str, a_or: float, split: str = "test") -> dict:
    """AUS on `split` (test for the CSV, val for epoch selection); HR's forget accuracy is train's."""
    forget = row[f"{split}_forget_acc"] if mode == "CR" else row["train_forget_acc"]
    row[f"{split}_aus" if split != "test" else "aus"] = aus(mode, a_or, row[f"{split}_retain_acc"], forget)
    return row


# Gap to the Oracle: the metrics compared. HR has no test forget part; its forget accuracy is the
# forgotten train samples' (as in AUS).
GAP_KEYS: dict[str, list[str]] = {"CR": ["test_retain_acc", "test_forget_acc", "mia_efficacy"],
                                  "HR": ["test_retain_acc", "train_forget_acc", "mia_efficacy"]}


def mean_abs_gap(a: dict, b: dict, keys: list[str]) -> float:
    """Mean absolute difference over `keys`; NaN unless every key is a finite number in both rows, so
    that gaps of different rows always average the same metrics."""
    if not all(k in a and k in b and _finite(a[k]) and _finite(b[k]) for k in keys):
        return float("nan")
    return sum(abs(float(a[k]) - float(b[k])) for k in keys) / len(keys)


def gap_to_oracle(row: dict, oracle: dict, mode: str) -> float:
    """Mean absolute gap between a row and the Oracle's row for the same forget set (GAP_KEYS)."""
    return mean_abs_gap(row, oracle, GAP_KEYS[mode])


def _finite(v) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def mia_columns(outputs: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]], mode: str,
                svc_params: dict | None = None) -> dict:
    """Membership-inference columns mia_svc, mia_svc_chance, mia_efficacy, mia_loss (see mia.py);
    NaN where a part an attack needs is empty. `svc_params`: attack a's reference fit (mia.svc_reference)."""
    from evaluation import mia
    return mia.attack_columns(outputs, mode, svc_params)
