"""Many rows in one process (main.py with several values, --rows_file): the same numbers as one
process per row, shared inputs loaded once, resumable, and a failing row does not stop the others."""

from __future__ import annotations

import csv
import shlex

import pytest
from conftest import FORGET_CLASS, run_stage

import opts
from core import paths

METRICS = ["train_retain_acc", "train_forget_acc", "val_retain_acc", "val_forget_acc", "test_retain_acc",
           "test_forget_acc", "aus", "val_aus", "mia_svc", "mia_efficacy", "mia_loss", "best_epoch", "epochs_run"]


def rows(root, run_name: str) -> dict[tuple, dict]:
    with open(paths.results_csv(root, "unlearn"), newline="") as f:
        return {(r["method"], r["source"], r["forget_tag"]): r for r in csv.DictReader(f) if r["run_name"] == run_name}


def test_several_values_expand_to_one_run_each():
    runs = opts.parse_runs(["--method", "FT", "NGFTW", "--forget_class", "3", "4", "--hp", "alpha=0.8"])
    assert [(r.method, r.forget_class) for r in runs] == [("FT", 3), ("FT", 4), ("NGFTW", 3), ("NGFTW", 4)]
    assert runs[0].method_hp == {} and runs[2].method_hp == {"alpha": 0.8}  # --hp goes to the method that has it
    with pytest.raises(SystemExit):
        opts.parse_runs(["--method", "FT", "NG", "--hp", "alpha=0.8"])  # no method given has it
    single = opts.parse_args(["--method", "NGFTW", "--forget_class", "3", "--hp", "alpha=0.8"])
    assert vars(single) == vars(runs[2])  # each run is exactly its single-valued command
    with pytest.raises(SystemExit):
        opts.parse_args(["--method", "FT", "NG"])  # a one-run entry point refuses several values


def test_in_process_rows_equal_rows_alone(digits_root):
    """Four rows (two methods x two sources) in one process give the CSV metrics of the same four rows
    each run alone in a process of its own, with the same seeds."""
    grid = ["--method", "NGFTW", "DELETE", "--source", "real", "synthetic", "--forget_class", str(FORGET_CLASS),
            "--epochs", "15", "--samples_per_class", "80"]
    p = run_stage("main.py", *grid, "--run_name", "inproc", "--overwrite", root=digits_root)
    assert p.stdout.count(f" m0 c{FORGET_CLASS} fc/") == 4
    together = rows(digits_root, "inproc")
    assert len(together) == 4
    for r in together.values():
        argv = shlex.split(r["command"])[2:]  # the row's own rerun command, alone in its own process
        run_stage("main.py", *argv, "--run_name", "alone", "--overwrite", root=digits_root)
    alone = rows(digits_root, "alone")
    assert together.keys() == alone.keys()
    for k in together:
        assert [together[k][c] for c in METRICS] == [alone[k][c] for c in METRICS], k


def test_rows_file_resumes_and_goes_on_after_a_failing_row(digits_root, tmp_path):
    """--rows_file runs its lines in one process; rows with a result are skipped (a killed task resumes
    at its first row without one); a row that cannot run is reported, the others run, exit 2."""
    good = f"python main.py --method NG --forget_class {FORGET_CLASS} --epochs 3 --no-mia --run_name rf --root {digits_root}"
    bad = f"python main.py --method NG --forget_class {FORGET_CLASS} --epochs 3 --no-mia --run_name rf --root {digits_root} " \
          f"--model resnet50"  # no such original in this tree
    other = good.replace("--method NG", "--method RL")
    f = tmp_path / "rows.txt"
    f.write_text("\n".join([good, bad, other]) + "\n")
    p = run_stage("main.py", "--rows_file", str(f), "--rows", "0:1", check=False)
    assert p.returncode == 0 and "NG m0 c3 fc/real: test retain" in p.stdout, p.stderr
    p = run_stage("main.py", "--rows_file", str(f), check=False)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "skip: NG m0 c3 (fc/real) already in results/unlearn.csv" in p.stdout
    assert "RL m0 c3 fc/real: test retain" in p.stdout
    assert "error: NG m0 c3: not found:" in p.stderr and "1 run(s) could not be done" in p.stderr
    p = run_stage("main.py", "--rows_file", str(f), "--method", "FT", check=False)
    assert p.returncode == 2 and "on its line of the file; not here (--method)" in p.stderr
    p = run_stage("main.py", "--rows_file", str(tmp_path / "none.txt"), check=False)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "cannot read" in p.stderr


def test_rows_share_one_load_of_their_inputs(digits_root, monkeypatch):
    """The original, its embeddings and its outputs are loaded once for all rows of a group."""
    from stages import experiment, pipeline
    calls = {"original": 0, "embeddings": 0}
    real_original, real_embeddings = pipeline.load_original, pipeline.load_embeddings

    def count(name, fn):
        def wrapped(*a, **k):
            calls[name] += 1
            return fn(*a, **k)
        return wrapped

    monkeypatch.setattr(experiment, "load_original", count("original", real_original))
    monkeypatch.setattr(experiment, "load_embeddings", count("embeddings", real_embeddings))
    runs = opts.parse_runs(["--root", str(digits_root), "--method", "NG", "RL", "BS", "--forget_class", "2", "3",
                            "--epochs", "2", "--no-mia", "--no-save_df"])
    import torch
    out = experiment.main(runs, torch.device("cpu"))
    assert len(out) == 6 and calls == {"original": 1, "embeddings": 3}  # train, val, test of the fc cut
