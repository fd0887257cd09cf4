"""Membership inference on constructed logits whose answer is known: a model that memorised its
training samples (confident, low loss) vs one whose training and test outputs come from one
distribution (never saw them, or forgot them completely)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from evaluation import metrics, mia

C = 10


def logits_for(y: torch.Tensor, margin: float, g: torch.Generator, wrong: torch.Tensor | None = None) -> torch.Tensor:
    """Gaussian logits with `margin` added to the true class (or to `wrong`'s class, when given)."""
    lo = torch.randn(len(y), C, generator=g)
    target = y if wrong is None else wrong
    lo[torch.arange(len(y)), target] += margin
    return lo


def outputs(mode: str, memorised: bool, n_train: int = 1500, n_test: int = 1000, seed: int = 0) -> dict:
    """{split: (logits, labels, forget_mask)} of a model on train/test.

    Retain-train is always memorised (margin 8 + noise), test generalises (margin 2). The forget part
    (class 0 in CR, a random 10% of train in HR) is memorised like retain-train when `memorised`,
    and otherwise looks exactly like unseen data of the same kind (CR: test samples of class 0, which
    the model never learnt: margin on a wrong class; HR: like test)."""
    g = torch.Generator().manual_seed(seed)
    y_tr = torch.randint(0, C, (n_train,), generator=g)
    y_te = torch.randint(0, C, (n_test,), generator=g)
    if mode == "CR":
        fm_tr, fm_te = y_tr == 0, y_te == 0
    else:
        fm_tr = torch.rand(n_train, generator=g) < 0.1
        fm_te = torch.zeros(n_test, dtype=torch.bool)
    lo_tr = logits_for(y_tr, 8.0, g)
    lo_te = logits_for(y_te, 2.0, g)
    if mode == "CR":  # the class-0 test samples: a model without class 0 puts them elsewhere
        other = torch.randint(1, C, (n_test,), generator=g)
        lo_te[fm_te] = logits_for(y_te[fm_te], 2.0, g, wrong=other[fm_te])
    if not memorised:
        k = int(fm_tr.sum())
        if mode == "CR":
            other = torch.randint(1, C, (k,), generator=g)
            lo_tr[fm_tr] = logits_for(y_tr[fm_tr], 2.0, g, wrong=other)
        else:
            lo_tr[fm_tr] = logits_for(y_tr[fm_tr], 2.0, g)
    return {"train": (lo_tr, y_tr, fm_tr), "test": (lo_te, y_te, fm_te)}


@pytest.mark.parametrize("mode", ["CR", "HR"])
def test_attacks_separate_memorised_from_never_seen(mode):
    mem = metrics.mia_columns(outputs(mode, memorised=True), mode)
    fresh = metrics.mia_columns(outputs(mode, memorised=False), mode)
    # a. the seed's SVC: memorised forget samples are told from non-members, unseen ones are not
    assert mem["mia_svc"] > 0.95 > mem["mia_svc_chance"]
    assert abs(fresh["mia_svc"] - fresh["mia_svc_chance"]) < 0.1
    assert 0.5 <= fresh["mia_svc_chance"] < 1
    # b. MIA-efficacy: memorised forget samples look like members; unseen ones like non-members
    assert mem["mia_efficacy"] < 0.1
    assert fresh["mia_efficacy"] > 0.9
    # c. loss attack: forget vs test, balanced (chance 0.5)
    assert mem["mia_loss"] > 0.9
    assert abs(fresh["mia_loss"] - 0.5) < 0.12


def test_memorisation_strength_is_ordered():
    """A partial memoriser sits between the two extremes on every attack."""
    def with_margin(m: float) -> dict:
        out = outputs("HR", memorised=True)
        lo, y, fm = out["train"]
        g = torch.Generator().manual_seed(1)
        lo = lo.clone()
        lo[fm] = logits_for(y[fm], m, g)
        return metrics.mia_columns({**out, "train": (lo, y, fm)}, "HR")
    low, mid, high = with_margin(2.0), with_margin(5.0), with_margin(8.0)
    assert low["mia_loss"] < mid["mia_loss"] < high["mia_loss"]
    assert low["mia_efficacy"] > mid["mia_efficacy"] > high["mia_efficacy"]


def test_empty_parts_give_nan_without_crash():
    out = outputs("CR", memorised=True)
    lo_te, y_te, _ = out["test"]
    # a class removal whose class is absent from test: attacks a and c have no non-members
    no_test_forget = {**out, "test": (lo_te, y_te, torch.zeros_like(y_te, dtype=torch.bool))}
    m = metrics.mia_columns(no_test_forget, "CR")
    assert math.isnan(m["mia_svc"]) and math.isnan(m["mia_svc_chance"]) and math.isnan(m["mia_loss"])
    assert math.isfinite(m["mia_efficacy"])
    lo_tr, y_tr, _ = out["train"]
    empty_forget = {**out, "train": (lo_tr, y_tr, torch.zeros_like(y_tr, dtype=torch.bool))}
    for mode in ("CR", "HR"):
        assert all(math.isnan(v) for v in metrics.mia_columns(empty_forget, mode).values())
    bad = lo_tr.clone()
    bad[0, 0] = float("nan")
    fm = y_tr == y_tr[0]
    m = metrics.mia_columns({**out, "train": (bad, y_tr, fm)}, "CR")
    assert math.isnan(m["mia_svc"]) and math.isnan(m["mia_loss"]) and math.isnan(m["mia_efficacy"])


def test_deterministic_and_subsampling_is_distinct_rows(monkeypatch):
    out = outputs("HR", memorised=True, n_train=3000, n_test=2500)
    monkeypatch.setattr(mia, "MAX_PER_GROUP", 300)
    monkeypatch.setattr(mia, "SVC_MAX_PER_GROUP", 100)
    assert metrics.mia_columns(out, "HR") == metrics.mia_columns(out, "HR")
    idx = mia.subsample(2500, 300, np.random.default_rng(0))
    assert len(idx) == 300 == len(np.unique(idx)) and idx.max() < 2500
    # the rows behind the attack are copies of distinct rows, never duplicated by a shuffle
    x = mia.to_numpy(torch.arange(20.0).reshape(10, 2))
    assert len(np.unique(x[mia.subsample(10, 5, np.random.default_rng(0))], axis=0)) == 5
