"""Turning model outputs into the metric columns of a result row, the same way in every stage."""

from __future__ import annotations

import time

import torch

from data.forget import ForgetSet
from evaluation import metrics


def with_masks(outputs: dict[str, tuple[torch.Tensor, torch.Tensor]], forget: ForgetSet) -> dict:
    """{split: (logits, labels)} -> {split: (logits, labels, forget_mask)}."""
    return {s: (lo, y, forget.mask(s, y)) for s, (lo, y) in outputs.items()}


def original_accuracy(outputs: dict, forget: ForgetSet) -> float:
    """A_or: the original's test accuracy on what is retained (CR) or on all of test (HR), measured."""
    lo, y, fm = with_masks({"test": outputs["test"]}, forget)["test"]
    return metrics.accuracy(lo, y, ~fm)


def row_metrics(outputs: dict[str, tuple[torch.Tensor, torch.Tensor]], forget: ForgetSet, a_or: float,
                mia: bool = True, svc_params: dict | None = None) -> dict:
    """Accuracy columns (train/val/test/full × retain/forget), AUS, and the MIA columns with the
    seconds they took (`time_mia_s`, part of the run's `time_total_s`); `svc_params`: the reference fit
    of the SVC attack on the original (see evaluation.mia.svc_reference), reused by every row of a group."""
    masked = with_masks(outputs, forget)
    row = metrics.retain_forget_accuracies(masked)
    row["a_or"] = a_or
    metrics.add_aus(row, forget.mode, a_or)
    if mia:
        t0 = time.perf_counter()
        row.update(metrics.mia_columns(masked, forget.mode, svc_params))
        row["time_mia_s"] = time.perf_counter() - t0
    return row
