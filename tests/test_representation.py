"""Representation-level evaluation: linear CKA, the linear probe, the few-shot relearning attack and the
attack AUCs on constructed inputs whose answer is known (exact identities, or wide margins), then the
new columns end to end on the digits fixture (fc and partial rows, Original and Oracle references,
opt-out flags, the collected table and plot)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import FORGET_CLASS, private_copy, run_stage

import opts
from core import paths
from core.feeds import TensorFeed
from evaluation import mia
from evaluation import representation as rep
from reporting import results
from stages import experiment

CPU = torch.device("cpu")
C, D = 5, 16


def _orthonormal(n: int, k: int, seed: int) -> torch.Tensor:
    """n×k orthonormal columns, each orthogonal to the all-ones vector (so already centred)."""
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(n, k, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(m - m.mean(0))
    return q


def _cka_reference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Kornblith et al.'s feature-space formula in numpy, for comparison."""
    a, b = a.double().numpy(), b.double().numpy()
    a, b = a - a.mean(0), b - b.mean(0)
    return float(np.linalg.norm(b.T @ a) ** 2 / (np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)))


@pytest.mark.parametrize("n,d", [(40, 8), (8, 40)])  # both the d×d and the n×n (Gram) forms
def test_linear_cka_identities(n, d):
    g = torch.Generator().manual_seed(1)
    a = torch.randn(n, d, generator=g, dtype=torch.float64)
    b = torch.randn(n, d + 3, generator=g, dtype=torch.float64)
    assert rep.linear_cka(a, a) == pytest.approx(1.0, abs=1e-12)
    assert rep.linear_cka(a, b) == pytest.approx(_cka_reference(a, b), rel=1e-9)
    assert rep.linear_cka(a, b) == pytest.approx(rep.linear_cka(b, a), rel=1e-12)
    r = _orthonormal(d + 3, d + 3, 2)  # an orthogonal transform of b's feature space
    moved = 3.7 * (b @ r) + 5.0  # rotated, isotropically scaled, translated
    assert rep.linear_cka(a, moved) == pytest.approx(rep.linear_cka(a, b), rel=1e-9)
    assert 0.0 <= rep.linear_cka(a, b) <= 1.0


def test_linear_cka_orthogonal_is_zero_and_degenerate_is_nan():
    q = _orthonormal(30, 6, 3)
    assert rep.linear_cka(q[:, :3], q[:, 3:]) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(rep.linear_cka(torch.ones(1, 4), torch.ones(1, 4)))  # one sample
    assert math.isnan(rep.linear_cka(torch.ones(10, 4), torch.randn(10, 4)))  # a constant side
    with pytest.raises(ValueError):
        rep.linear_cka(torch.ones(3, 2), torch.ones(4, 2))


def _clusters(per_class: int, seed: int, merge: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian clusters (unit noise) around class means 12 apart; with `merge`, class 0 is drawn from
    class 1's cluster (its features carry nothing that tells it apart)."""
    g = torch.Generator().manual_seed(seed)
    means = 12.0 * torch.eye(C, D)
    y = torch.arange(C).repeat_interleave(per_class)
    src = y.clone()
    if merge:
        src[y == 0] = 1
    return means[src] + torch.randn(len(y), D, generator=g), y


def test_probe_recovers_a_separable_class_and_not_a_merged_one():
    fit_x, fit_y = _clusters(6, 0)  # a small fitting split, like digits' val
    test_x, test_y = _clusters(50, 1)
    fm = test_y == 0
    logits = rep.probe_predictions(fit_x, fit_y, test_x, C)
    forget, retain = rep.forget_retain_accuracy(logits, test_y, fm)
    assert forget > 0.95 and retain > 0.95
    assert torch.equal(logits, rep.probe_predictions(fit_x, fit_y, test_x, C))  # deterministic
    mx, my = _clusters(6, 0, merge=True)
    tx, ty = _clusters(50, 1, merge=True)
    forget, _ = rep.forget_retain_accuracy(rep.probe_predictions(mx, my, tx, C), ty, ty == 0)
    assert forget < 0.8  # classes 0 and 1 share one cluster: at best a coin flip between them


def test_per_class_sample_draws_k_of_every_class():
    y = torch.tensor([0] * 7 + [1] * 3 + [2] * 12)[torch.randperm(22, generator=torch.Generator().manual_seed(0))]
    idx = rep.per_class_sample(y, 4)
    assert torch.equal(idx, torch.sort(idx).values) and len(torch.unique(idx)) == len(idx)
    assert torch.bincount(y[idx], minlength=3).tolist() == [4, 3, 4]  # class 1 has only 3
    assert torch.equal(idx, rep.per_class_sample(y, 4)) and not torch.equal(idx, rep.per_class_sample(y, 4, seed=1))


def test_relearning_brings_a_removed_class_back():
    """A head that never learnt class 0 (an Oracle's, over features that do separate it): 10 samples
    per class bring class 0 back; the attack reports it."""
    from models.cutnet import Tail, make_head
    train_x, train_y = _clusters(40, 2)
    test_x, test_y = _clusters(40, 3)
    head = make_head(D, C)
    with torch.no_grad():
        head[1].weight.copy_(torch.eye(C, D))
        head[1].bias.zero_()
        head[1].weight[0] = 0.0
        head[1].bias[0] = -20.0  # class 0 removed
    tail = Tail(torch.nn.Identity(), head).eval()
    fm = test_y == 0
    before = rep.forget_retain_accuracy(tail(test_x), test_y, fm)[0]
    acc = rep.relearn_forget_accuracy(tail, TensorFeed(train_x, train_y), TensorFeed(test_x[fm], test_y[fm]), lr=0.5)
    assert before == 0.0 and set(acc) == set(rep.RELEARN_K)
    assert acc[10] > before + 0.5
    assert torch.equal(head[1].bias, tail.linear.bias)  # the attack trains a copy


def test_attack_auc_and_indiscernibility():
    g = torch.Generator().manual_seed(0)
    low, high = torch.rand(200, generator=g) * 0.1, 5 + torch.rand(300, generator=g)
    assert mia.auc(low, high) == 1.0  # every member has the lower loss
    assert mia.auc(high, low) == 0.0
    same = torch.rand(300, generator=g)
    assert mia.auc(same, same) == pytest.approx(0.5, abs=1e-12)  # ties between the groups count half
    assert abs(mia.auc(torch.rand(2000, generator=g), torch.rand(2000, generator=g)) - 0.5) < 0.05
    assert math.isnan(mia.auc(low[:3], high))  # too few members
    from sklearn.metrics import roc_auc_score  # the same number as scikit-learn's score, ties included
    for n in (10, 77, 400):
        a, b = (torch.randint(0, 20, (k,), generator=g).double() / 4 for k in (n, 2 * n + 3))
        y = [1] * len(a) + [0] * len(b)
        assert mia.auc(a, b) == roc_auc_score(y, -torch.cat([a, b]).numpy())
    assert (mia.indiscernibility(0.5), mia.indiscernibility(1.0), mia.indiscernibility(0.0)) == (1.0, 0.0, 0.0)
    assert mia.indiscernibility(0.75) == 0.5


# --- end to end on the digits fixture -----------------------------------------------------------------

OWN = ["probe_forget_acc", "probe_retain_acc", "cka_original", "cka_oracle", "relearn_k1_forget_acc",
       "relearn_k10_forget_acc", "mia_auc_forget", "mia_auc_retain", "mia_indisc"]
REFS = ["original_probe_forget_acc", "oracle_probe_forget_acc", "oracle_cka_original", "oracle_relearn_k1_forget_acc",
        "oracle_relearn_k10_forget_acc", "oracle_mia_auc_forget", "oracle_mia_auc_retain", "oracle_mia_indisc"]


def _rows(root, *argv: str) -> list[dict]:
    runs = opts.parse_runs([*argv, "--root", str(root), "--forget_class", str(FORGET_CLASS), "--overwrite",
                            "--no-save_df"], stage="main")
    return experiment.main(runs, CPU)


def _f(row: dict, col: str) -> float:
    return float(row[col])


@pytest.fixture(scope="module")
def repr_rows(digits_root) -> dict[str, dict]:
    """fc and partial rows of two methods in one process (one group each), and seed B's reference rows."""
    rows = _rows(digits_root, "--method", "DELETE", "CMF", "--setting", "fc", "partial", "--epochs", "2",
                 "--run_original", "--run_rt_model", "--run_unlearn")
    return {f"{r['kind']}/{r['setting']}/{r['method']}": r for r in rows}


def test_rows_carry_the_representation_columns(repr_rows):
    for setting in ("fc", "partial"):
        for method in ("DELETE", "CMF"):
            r = repr_rows[f"unlearn/{setting}/{method}"]
            for c in OWN + REFS + ["time_probe_s", "time_cka_s", "time_relearn_s", "time_reference_s"]:
                assert math.isfinite(_f(r, c)), (setting, method, c, r[c])
            for c in OWN + REFS:
                assert -1e-6 <= _f(r, c) <= 1 + 1e-6, (c, r[c])
            assert setting in r["relearn_setup"] and "per class" in r["relearn_setup"]
    fc = repr_rows["unlearn/fc/DELETE"]
    # fc: the head reads the Original's features: its probe, CKA 1 (by construction, not recomputed)
    assert fc["probe_forget_acc"] == fc["original_probe_forget_acc"] and _f(fc, "cka_original") == 1.0
    assert fc.get("probe_cut_forget_acc", "") == ""
    # the CKA of the Original's features to the Oracle's: the group's, and the Oracle's own row's
    assert _f(fc, "cka_oracle") == pytest.approx(_f(fc, "oracle_cka_original"), abs=1e-3)
    part = repr_rows["unlearn/partial/DELETE"]
    # partial: the cut (the last block's input) is the cached embedding, unchanged: the Original's cut probe
    assert part["probe_cut_forget_acc"] == part["original_probe_cut_forget_acc"] != ""
    assert _f(part, "cka_original") < 1.0
    # the references are the same in every row of the forget set; the Oracle's relearning per setting
    for c in REFS:
        same = [repr_rows[f"unlearn/{s}/{m}"][c] for s in ("fc", "partial") for m in ("DELETE", "CMF")
                if "relearn" not in c or s == "partial"]
        assert len(set(same)) == 1, (c, same)


def test_reference_rows_carry_their_own_values(repr_rows):
    orig, oracle = repr_rows["original/fc/original"], repr_rows["oracle/full/oracle"]
    un = repr_rows["unlearn/fc/DELETE"]
    assert orig["probe_forget_acc"] == un["original_probe_forget_acc"] and _f(orig, "cka_original") == 1.0
    assert _f(oracle, "cka_oracle") == 1.0 and oracle["cka_original"] == orig["cka_oracle"] == un["cka_oracle"]
    # the unlearning rows copy the Oracle's own row of oracle.csv (stage 4, another process): the same
    # network and images, so the same values up to float rounding (one test sample at most)
    assert _f(oracle, "probe_forget_acc") == pytest.approx(_f(un, "oracle_probe_forget_acc"), abs=0.05)
    for c in ("mia_auc_forget", "mia_auc_retain", "mia_indisc", "cka_original"):
        assert _f(oracle, c) == pytest.approx(_f(un, f"oracle_{c}"), abs=1e-3), c
    # the Oracle never saw the class: the Original's relearning columns stay empty, the Oracle's are in
    # every unlearning row
    assert orig.get("relearn_k10_forget_acc", "") == oracle.get("relearn_k10_forget_acc", "") == ""


def test_opt_out_flags_leave_the_columns_empty(digits_root):
    (r,) = _rows(digits_root, "--method", "DELETE", "--epochs", "2", "--no-probe", "--no-cka", "--no-relearn", "--no-mia")
    for c in results.REPR_COLUMNS:
        if c != "time_reference_s":
            assert r.get(c, "") == "", (c, r[c])


def test_collect_results_shows_the_representation_table_and_plot(digits_root, tmp_path):
    # a tree of its own: other tests' rows (e.g. the engine's CMF rows without the metrics) would
    # compete in the table's choice of configuration
    digits_root = private_copy(digits_root, tmp_path / "runs", rows=False)
    for setting in ("fc", "partial"):
        run_stage("main.py", "--dataset", "digits", "--method", "CMF", "--setting", setting, "--epochs", "2",
                  "--forget_class", str(FORGET_CLASS), "--lr", "0.0031", "--run_original", "--run_rt_model", "--run_unlearn",
                  root=digits_root)
    for setting in ("fc", "partial"):
        p = run_stage("collect_results.py", "--dataset", "digits", "--method", "CMF", "--setting", setting,
                      "--forget_class", str(FORGET_CLASS), root=digits_root)
        md = paths.table_file(digits_root, f"digits_resnet18_{setting}_single", "md").read_text()
        assert md in p.stdout.replace("\r", "")
        part = md.split(": representations**", 1)[1]
        assert "Probe A_f" in part and "CKA→Oracle" in part and "Relearn k10 A_f" in part and "AUC forget" in part
        assert ("Probe-cut A_f" in part) == (setting == "partial")
        for line in ("| Original |", "| CMF | real |", "| Oracle | retrain |"):
            (row,) = [ln for ln in part.splitlines() if ln.startswith(line)]
            cells = row.split("|")[3:-1]
            filled = [c for c in cells if c.strip() != "–"]
            assert len(filled) >= len(cells) - (2 if line == "| Original |" else 0), row  # the Original has no relearning
        png = paths.plot_file(digits_root, f"digits_resnet18_{setting}_single_repr")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
