"""The full setting (whole network on images), SCAR with surrogate images and no retain
set, HR mode from sampling to CSV, and seed B's run flags. A small 8×8 original of its own (three
epochs, about 0.87 val accuracy) keeps the whole-network runs cheap; every run goes through the real option parser."""

from __future__ import annotations

import csv
import json
import math
import pickle
from pathlib import Path

import pytest
import torch
from conftest import FORGET_CLASS, NO_REPR, run_stage

import opts
from core.storage import load_checkpoint
from engine.surrogates import sample_image_patches, surrogate_feed
from methods import get_method, list_methods
from stages import experiment

SMALL = ["--dataset", "digits", "--model", "resnet18", "--img_size", "8", "--cuda", "-1", "--no-mia"]
# NO_REPR: only test_scar_without_retain_forgets_and_keeps (which checks them) and the HR test compute the
# representation metrics, which cost more than a whole-network epoch here.


@pytest.fixture(scope="module")
def root8(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("full8")
    run_stage("training_original.py", *SMALL[:-1], "--epochs", "3", root=root)
    return root


def rows(root: Path, kind: str = "unlearn") -> list[dict]:
    f = root / "results" / f"{kind}.csv"
    return list(csv.DictReader(f.open())) if f.exists() else []


def main_in_process(root: Path, *argv: str, defaults: dict | None = None) -> list[dict]:
    args = opts.parse_args([*SMALL, "--root", str(root), "--setting", "full", *argv], stage="main", defaults=defaults)
    return experiment.main([args], torch.device("cpu"))


def original_state(root: Path) -> dict:
    return load_checkpoint(root / "digits" / "resnet18" / "original" / "m0.pt")["state_dict"]


@pytest.fixture(scope="module")
def full_rows(root8) -> dict[str, dict]:
    """One epoch of every method on the whole network, all in one call (one group, inputs loaded once)."""
    runs = opts.parse_runs([*SMALL, "--root", str(root8), "--setting", "full", "--method", *list_methods(),
                            "--forget_class", str(FORGET_CLASS), "--epochs", "1", "--bsize", "128",
                            "--surrogate_quantity", "512", "--save_model", *NO_REPR], stage="main")
    try:
        out = experiment.main(runs, torch.device("cpu"))
    except Exception:  # noqa: BLE001  (the rows that were made are in the CSV; a missing one fails its case)
        out = [r for r in rows(root8) if r["setting"] == "full"]
    return {r["method"]: r for r in out}


@pytest.mark.parametrize("method", list_methods())
def test_full_setting_every_method(root8, full_rows, method):
    """One epoch of every method on the whole network: a CSV row like the other settings', and the
    saved model differs from the original in its first convolution (the trunk was trained)."""
    assert method in full_rows, f"{method}: no row"
    row = full_rows[method]
    assert row["setting"] == "full" and row["method"] == method and row["epochs_run"] == "1"
    for k in ("train_retain_acc", "test_retain_acc", "test_forget_acc", "aus", "time_unlearn_s"):
        assert math.isfinite(float(row[k])), (k, row[k])
    assert row["run_id"] in {r["run_id"] for r in rows(root8)}
    ckpt = next((root8 / "digits" / "resnet18" / "unlearned" / "full" / "real" / method).rglob("m0_*.pt"))
    state = load_checkpoint(ckpt)["state_dict"]
    first_conv = next(k for k in state if k.endswith("weight") and state[k].dim() == 4)
    orig_key = first_conv.replace("body.0.", "trunk.", 1)
    assert not torch.equal(state[first_conv], original_state(root8)[orig_key]), "trunk not updated"
    assert state["head.1.weight"].shape[0] == 10  # BE returns the pruned head


def test_scar_without_retain_forgets_and_keeps(root8):
    """SCAR on the whole network, distilling only on scikit-learn's sample photographs: the forget
    class's test accuracy falls well below the original's while the retained classes hold.

    How far it falls depends on the original, whose last bits differ between CPUs. Over 16 originals
    (seeds 0-4 and 0-10, with two versions of the head's arithmetic), it fell below a quarter of the
    original's on 13; on the other three SCAR stalled at 0.27, 0.48 and 0.60 of it. The retained test
    accuracy fell by less than 0.15 on all of them (by at most 0.062 on the 11 printed). Hence the bound 0.8."""
    ref = main_in_process(root8, "--method", "SCAR", "--forget_class", "5", "--run_original",
                          "--run_unlearn", "--surrogate_dataset", "sample_images", "--epochs", "4",
                          "--lr", "1e-4", "--bsize", "128", "--surrogate_quantity", "1024")
    orig = next(r for r in ref if r["kind"] == "original")
    row = next(r for r in ref if r["kind"] == "unlearn")
    assert "retain" not in get_method("SCAR").needs
    assert '"surrogate_dataset": "sample_images"' in row["config"]
    assert float(orig["test_forget_acc"]) > 0.6
    assert float(row["test_forget_acc"]) < 0.8 * float(orig["test_forget_acc"])
    assert float(row["test_retain_acc"]) > float(orig["test_retain_acc"]) - 0.15
    # the representation metrics on the whole network: probes, CKA to the Original, the relearning attack
    for c in ("probe_forget_acc", "probe_cut_forget_acc", "cka_original", "relearn_k1_forget_acc",
              "relearn_k10_forget_acc"):
        assert 0.0 <= float(row[c]) <= 1.0, (c, row[c])
    assert float(row["cka_original"]) < 1.0 and "whole network (full)" in row["relearn_setup"]


def test_load_unlearned_model_and_main_def(root8):
    """--save_model then --load_unlearned_model gives the same metrics without training; main_def.py
    (SCAR's script name) runs the full setting with seed B's defaults, on the CPU with --cuda -1."""
    args = ["--method", "NG", "--forget_class", "1", "--epochs", "1", "--lr", "0.001", *NO_REPR]
    p = run_stage("main_def.py", *SMALL, *args, "--save_model", "--save_df", "--run_unlearn", root=root8)
    first = [r for r in rows(root8) if r["method"] == "NG" and r["forget_tag"] == "c1"]
    assert len(first) == 1 and first[0]["setting"] == "full" and first[0]["device"].startswith("cpu"), p.stdout
    assert (first[0]["bsize"], json.loads(first[0]["config"])["scheduler"]) == ("1024", [25, 40, "gamma=0.5"])
    again = main_in_process(root8, *args, "--load_unlearned_model", defaults=opts.SEED_B_MAIN_DEFAULTS)[0]
    assert again["stop_reason"].startswith("loaded")
    for k in ("test_retain_acc", "test_forget_acc", "train_forget_acc"):
        assert float(again[k]) == pytest.approx(float(first[0][k]), abs=1e-6)


def test_hr_mode_end_to_end(root8):
    """sample_fgt_samples.py -> training_oracle.py --mode HR -> main.py --mode HR with the original,
    the unlearned model and the Oracle as rows: forget accuracy on the drawn samples, none on test."""
    hr = ["--mode", "HR", "--hr_samples", "40", "--hr_seed", "1"]
    p = run_stage("sample_fgt_samples.py", "--dataset", "digits", "--hr_samples", "40", "--hr_seed", "1", root=root8)
    assert "40 of" in p.stdout
    p = run_stage("training_oracle.py", *SMALL[:-1], *hr, "--epochs", "1", root=root8)
    n_train = int(p.stdout.split("training on ")[1].split("/")[1].split()[0])
    assert f"training on {n_train - 40}/{n_train}" in p.stdout
    run_stage("main.py", *SMALL[:-1], *hr, "--setting", "full", "--method", "NG", "--epochs", "1", "--lr", "0.001",
              "--run_original", "--run_unlearn", "--run_rt_model", root=root8)
    got = {r["kind"]: r for r in rows(root8) if r["forget_tag"] == "hr40_s1"}
    assert set(got) == {"original", "unlearn", "oracle"}
    for r in got.values():
        assert r["mode"] == "HR" and r["test_forget_acc"] == "nan" and r["forget_classes"] == ""
        assert math.isfinite(float(r["train_forget_acc"])) and math.isfinite(float(r["aus"]))
    assert float(got["unlearn"]["oracle_aus"]) == pytest.approx(float(got["oracle"]["aus"]), abs=1e-5)
    assert math.isfinite(float(got["unlearn"]["gap_oracle"]))
    # asking for the references again (with another method and lr) finds their rows: no duplicates
    n_rows = len(rows(root8))
    again = main_in_process(root8, *hr, "--method", "RL", "--lr", "0.003", "--mia", "--run_original", "--run_rt_model")
    assert len(rows(root8)) == n_rows
    assert {r["run_id"] for r in again} == {got["original"]["run_id"], got["oracle"]["run_id"]}


def test_sample_image_patches_are_seeded_natural_images():
    a = sample_image_patches(64, torch.Generator().manual_seed(0))
    b = sample_image_patches(64, torch.Generator().manual_seed(0))
    c = sample_image_patches(64, torch.Generator().manual_seed(1))
    assert a.dtype == torch.uint8 and a.shape[0] == 64 and a.shape[1] == 3
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.float().std(dim=(1, 2, 3)).mean() > 5  # textured patches, not flat colour


def _write_cifar100(root: Path, n: int = 20) -> None:
    """A few CIFAR-100 images in torchvision's on-disk format."""
    d = root / "cifar-100-python"
    d.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for name in ("train", "test"):
        data = torch.randint(0, 256, (n, 3072), generator=g, dtype=torch.uint8).numpy()
        with open(d / name, "wb") as f:
            pickle.dump({"data": data, "fine_labels": [i % 100 for i in range(n)]}, f)
    with open(d / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)]}, f)


def test_other_dataset_surrogates(tmp_path):
    """`--surrogate_dataset cifar100` reads another data set from --data_root, resized and normalised
    for the target; asking for the data set being unlearned is refused."""
    _write_cifar100(tmp_path)
    args = opts.parse_args(["--dataset", "digits", "--setting", "full", "--img_size", "8", "--data_root",
                            str(tmp_path), "--surrogate_dataset", "cifar100", "--surrogate_quantity", "30"])
    feed = surrogate_feed(args.surrogate_dataset, args.surrogate_quantity, args.dataset, args.img_size,
                          torch.device("cpu"), seed=args.seed, data_root=args.data_root)
    assert feed.x.shape == (30, 3, 8, 8) and bool((feed.y == -1).all())
    assert abs(float(feed.x.mean())) < 3


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or one of its parent folders
    wins, `!` re-includes (fnmatch stands in for Go's filepath.Match; enough for these patterns)."""
    from fnmatch import fnmatch
    parts, out = path.split("/"), False
    for pat in patterns:
        neg, pat = pat.startswith("!"), pat.lstrip("!").strip("/")
        if any(fnmatch("/".join(parts[:i]), pat) for i in range(1, len(parts) + 1)):
            out = not neg
    return out


def test_docker_context_keeps_the_code_and_drops_data():
    """The image gets every tracked file (the `data` code package included), and no data set (the
    default --data_root is ./datasets), venv or runs tree."""
    import subprocess
    repo = Path(__file__).resolve().parents[1]
    pats = [ln.strip() for ln in (repo / ".dockerignore").read_text().splitlines()
            if ln.strip() and not ln.startswith("#")]
    try:
        tracked = subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    needed = [f for f in tracked.splitlines() if f.endswith((".py", ".sh", ".txt", ".toml"))]
    assert "data/cifar.py" in needed and not [f for f in needed if dockerignored(f, pats)]
    for junk in ("datasets/cifar-10-batches-py/data_batch_1", "datasets/tiny-imagenet-200/wnids.txt", ".venv/bin/python",
                 "runs/results/unlearn.csv", "models/__pycache__/zoo.cpython-311.pyc"):
        assert dockerignored(junk, pats), junk
