"""Stages 1-4 on digits through the real scripts: original, embeddings, baselines, Oracle."""

from __future__ import annotations

import csv

import torch  # noqa: F401
from conftest import FORGET_CLASS, SEED, run_stage

from core import paths
from core.storage import torch_load


def rows(root, kind):
    with open(paths.results_csv(root, kind), newline="") as f:
        return list(csv.DictReader(f))


def test_original_reaches_95_percent(digits_root):
    (row,) = [r for r in rows(digits_root, "training") if r["kind"] == "original"]
    assert float(row["test_acc"]) >= 0.95, row["test_acc"]
    assert float(row["best_val_acc"]) >= 0.95
    ck = torch_load(paths.original_ckpt(digits_root, "digits", "resnet18", 0))
    assert ck["meta"]["best_epoch"] == int(row["best_epoch"])
    assert ck["meta"]["val_acc"] == max(h["val_acc"] for h in ck["history"])  # really the best epoch


def test_embeddings_cached_for_both_cuts(digits_root):
    sizes = {"train": 1211, "val": 136, "test": 450}
    shapes = {"fc": (512,), "partial": (512, 2, 2)}
    for cut, shape in shapes.items():
        for split, n in sizes.items():
            obj = torch_load(paths.embeddings_file(digits_root, "digits", "resnet18", cut, 0, split))
            assert obj["x"].shape == (n, *shape) and obj["y"].shape == (n,)
            assert obj["meta"]["cut"] == cut and obj["meta"]["split"] == split


def test_baseline_rows(digits_root):
    base = {r["forget_tag"]: r for r in rows(digits_root, "original")}
    assert set(base) == {f"c{c}" for c in range(10)}
    r = base[f"c{FORGET_CLASS}"]
    for col in ("train_retain_acc", "train_forget_acc", "test_retain_acc", "test_forget_acc", "full_retain_acc",
                "full_forget_acc", "aus"):
        assert 0.0 <= float(r[col]) <= 1.0, col
    assert float(r["test_forget_acc"]) > 0.8 and float(r["aus"]) < 0.6  # an original has not forgotten
    assert abs(float(r["aus"]) - 1 / (1 + float(r["test_forget_acc"]))) < 1e-4  # AUS with A_or measured
    assert r["dataset"] == "digits" and r["model"] == "resnet18" and r["model_num"] == "0" and r["seed"] == str(SEED)


def test_oracle_forgets_and_keeps_retain(digits_root):
    (o,) = rows(digits_root, "oracle")
    base = {r["forget_tag"]: r for r in rows(digits_root, "original")}[f"c{FORGET_CLASS}"]
    assert o["forget_tag"] == f"c{FORGET_CLASS}"
    assert float(o["test_forget_acc"]) == 0.0 and float(o["train_forget_acc"]) == 0.0
    assert abs(float(o["test_retain_acc"]) - float(base["test_retain_acc"])) <= 0.03
    ck = torch_load(paths.oracle_ckpt(digits_root, "digits", "resnet18", f"c{FORGET_CLASS}", 0))
    assert ck["state_dict"]["head.1.weight"].shape[0] == 10  # the full head, as the original's


def test_stages_skip_finished_work(digits_root):
    ck = paths.original_ckpt(digits_root, "digits", "resnet18", 0)
    before = ck.stat().st_mtime_ns
    out = run_stage("training_original.py", "--dataset", "digits", "--n_model", "1", root=digits_root).stdout
    assert "skip" in out and ck.stat().st_mtime_ns == before
    assert "skip" in run_stage("create_embeddings.py", "--dataset", "digits", root=digits_root).stdout
    assert "skip" in run_stage("training_oracle.py", "--dataset", "digits", "--forget_class", str(FORGET_CLASS),
                               root=digits_root).stdout
    n = len(rows(digits_root, "original"))
    run_stage("test_originalmodel_singleclass.py", "--dataset", "digits", root=digits_root)
    assert len(rows(digits_root, "original")) == n


def test_missing_input_names_the_stage_to_run(tmp_path):
    p = run_stage("create_embeddings.py", root=tmp_path, check=False)
    assert p.returncode == 2 and "training_original.py" in p.stderr and p.stderr.count("\n") == 1
    p = run_stage("test_originalmodel_singleclass.py", root=tmp_path, check=False)
    assert p.returncode == 2 and "training_original.py" in p.stderr
    p = run_stage("main.py", "--method", "FT", "--forget_class", "1", root=tmp_path, check=False)
    assert p.returncode == 2 and "training_original.py" in p.stderr
    assert not any(tmp_path.rglob("*.pt")) and not any(tmp_path.rglob("*.csv"))


def test_multiclass_baseline(digits_root):
    run_stage("test_originalmodel_multiclass.py", "--dataset", "digits", "--num_forget_classes", "3", root=digits_root)
    (r,) = [r for r in rows(digits_root, "original") if r["forget_tag"] == "multi3"]
    assert r["forget_mode"] == "multi" and len(r["forget_classes"].split()) == 3
    assert 0.8 < float(r["test_forget_acc"]) <= 1.0


def test_seed_quickstart_name_runs_both_baselines(digits_root):
    out = run_stage("test_originalmodel.py", "--dataset", "digits", root=digits_root).stdout  # seed A's README's name
    assert "skip: original m0 c3" in out
    tags = {r["forget_tag"] for r in rows(digits_root, "original")}
    assert {"multi2", "multi5"} <= tags


def test_oracle_row_restored_without_retraining(digits_root, tmp_path):
    csv_file = paths.results_csv(digits_root, "oracle")
    ck = paths.oracle_ckpt(digits_root, "digits", "resnet18", f"c{FORGET_CLASS}", 0)
    before, mtime = rows(digits_root, "oracle"), ck.stat().st_mtime_ns
    csv_file.rename(tmp_path / "oracle.csv")
    try:
        out = run_stage("training_oracle.py", "--dataset", "digits", "--forget_class", str(FORGET_CLASS),
                        root=digits_root).stdout
        assert "evaluating it" in out and ck.stat().st_mtime_ns == mtime
        (again,) = rows(digits_root, "oracle")
        assert again["run_id"] == before[-1]["run_id"] and again["test_retain_acc"] == before[-1]["test_retain_acc"]
    finally:
        (tmp_path / "oracle.csv").replace(csv_file)
