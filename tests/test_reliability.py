"""Fault injection (issue 6): killed writers, torn and concurrent CSV appends, resume after a kill,
unsafe or mismatched checkpoints, bad input, determinism.

Stages run in this process (runpy, as `python <script>` would) or, where a process must die, in a
forked child that is SIGKILLed at a chosen point: the kill is real, only the moment is chosen.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import multiprocessing as mp
import os
import random
import re
import runpy
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import FORGET_CLASS, REPO

from core import paths, storage
from core.runtime import UserError
from reporting import results

DS, MODEL = "digits", "resnet18"
METRIC_COLS = [c for c in results.COLUMNS if c.endswith("_acc") or c.startswith(("mia_", "aus", "a_or"))]
FAST = ["--dataset", DS, "--model", MODEL, "--method", "FT", "--forget_class", str(FORGET_CLASS), "--epochs", "2",
        "--cuda", "-1"]


# ---------------------------------------------------------------- helpers

@pytest.fixture
def runs(digits_root: Path, tmp_path: Path) -> Path:
    """A private copy of the parts of the shared runs tree these tests read (original, fc embeddings, rows)."""
    root = tmp_path / "runs"
    src = digits_root / DS / MODEL
    for sub in ("original", "embeddings/fc"):
        shutil.copytree(src / sub, root / DS / MODEL / sub)
    shutil.copytree(digits_root / "results", root / "results")
    (root / "results" / "unlearn.csv").unlink(missing_ok=True)  # other tests' runs; these count their own rows
    return root


def stage(capsys, script: str, *argv: str, root: Path) -> tuple[int, str, str]:
    """Run a stage in this process as `python script argv --root root`; (exit status, stdout, stderr)."""
    capsys.readouterr()
    old_argv, old_cwd = sys.argv, os.getcwd()
    sys.argv = [script, *argv, "--root", str(root)]
    os.chdir(REPO)
    code = 0
    try:
        runpy.run_path(str(REPO / script), run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)
    out = capsys.readouterr()
    return code, out.out, out.err


def tree(root: Path) -> dict[str, str]:
    """Every file under root with a hash of its bytes: equal trees = nothing created or changed."""
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _child(script: str, argv: list[str], log: str, fault: str) -> None:
    """Body of a forked stage process: output to `log`, then the stage, with `fault` armed."""
    torch.set_num_threads(1)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), write_through=True)
    sys.stderr = sys.stdout
    os.chdir(REPO)
    die = lambda: os.kill(os.getpid(), signal.SIGKILL)  # noqa: E731
    if fault == "mid_write":  # the first file write stops half-way: SIGKILL with a partial temporary file
        real = torch.save

        def half_save(obj, f, *a, **kw):
            buf = io.BytesIO()
            real(obj, buf, *a, **kw)
            with open(f, "wb") as fh:
                fh.write(buf.getvalue()[: len(buf.getvalue()) // 2])
                fh.flush()
            die()
        torch.save = half_save
    elif fault.startswith("after_epoch"):  # SIGKILL right after the epoch-k state is in place
        from engine import training
        k, real_save = int(fault.split(":")[1]), training.atomic_torch_save

        def save_then_die(obj, path):
            real_save(obj, path)
            if isinstance(obj, dict) and obj.get("epoch") == k - 1:
                die()
        training.atomic_torch_save = save_then_die
    sys.argv = [script, *argv]
    try:
        runpy.run_path(str(REPO / script), run_name="__main__")
    except SystemExit as e:
        os._exit(e.code if isinstance(e.code, int) else 1)
    os._exit(0)


def forked_stage(tmp_path: Path, script: str, *argv: str, fault: str = "", timeout: float = 300) -> tuple[int, str]:
    """Run a stage in a forked process; (exit code, -9 when SIGKILLed; its output)."""
    log = tmp_path / f"child{time.monotonic_ns()}.log"
    p = mp.get_context("fork").Process(target=_child, args=(script, list(argv), str(log), fault))
    p.start()
    p.join(timeout)
    if p.is_alive():
        p.kill()
        p.join()
    return p.exitcode, log.read_text() if log.exists() else ""


def unlearned(root: Path, row: dict) -> Path:
    return paths.unlearned_ckpt(root, DS, MODEL, row["setting"], row["source"], row["method"], row["forget_tag"],
                                int(row["model_num"]), row["run_id"])


def tmp_files(d: Path) -> list[Path]:
    return sorted(d.glob(".*.tmp"))


def one_line_error(err: str, *needles: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])


# ---------------------------------------------------------------- 1. atomic outputs

def _writer_loop(path: str) -> None:
    torch.set_num_threads(1)
    i = 0
    while True:
        i += 1
        storage.atomic_torch_save({"i": i, "x": torch.full((1 << 20,), float(i))}, path)


def test_sigkill_at_random_moments_never_leaves_a_truncated_file(tmp_path):
    """A writer rewriting a 4 MB tensor file in a loop, SIGKILLed at random moments of a write: the file
    always loads whole (old or new); the temporary files of dead writers are removed by the next write."""
    f = tmp_path / "t.pt"
    storage.atomic_torch_save({"i": 0, "x": torch.zeros(1 << 20)}, f)
    rng = random.Random(0)
    seen_tmp = 0
    for _ in range(6):
        p = mp.get_context("fork").Process(target=_writer_loop, args=(str(f),))
        p.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(f".{p.pid}." in t.name for t in tmp_files(tmp_path)):
            pass  # until this writer has begun a write
        time.sleep(rng.uniform(0, 0.02))
        os.kill(p.pid, signal.SIGKILL)
        p.join()
        obj = storage.torch_load(f)
        assert obj["x"].shape == (1 << 20,) and bool((obj["x"] == obj["i"]).all())
        seen_tmp += len(tmp_files(tmp_path))
    assert seen_tmp > 0  # some kills did land inside a write
    storage.atomic_torch_save({"i": -1, "x": torch.zeros(1)}, f)
    assert tmp_files(tmp_path) == []  # stale ones (dead pids) cleaned


def test_stage_killed_mid_write_keeps_old_file_and_rerun_completes(runs, tmp_path, capsys):
    """main.py --save_model killed while writing the unlearned checkpoint: the old checkpoint is intact,
    no row was added; the rerun replaces the checkpoint, removes the partial file and adds the row."""
    cmd = [*FAST, "--save_model", "--no-mia"]
    code, out, err = stage(capsys, "main.py", *cmd, root=runs)
    assert code == 0, err
    (row,) = storage.read_rows(paths.results_csv(runs, "unlearn"))
    ckpt = unlearned(runs, row)
    before, csv_before = ckpt.read_bytes(), paths.results_csv(runs, "unlearn").read_bytes()
    code, log = forked_stage(tmp_path, "main.py", *cmd, "--overwrite", "--root", str(runs), fault="mid_write")
    assert code == -signal.SIGKILL, log
    assert ckpt.read_bytes() == before  # the old file, not a torn one
    assert paths.results_csv(runs, "unlearn").read_bytes() == csv_before
    partial = tmp_files(ckpt.parent)
    assert len(partial) == 1 and partial[0].stat().st_size > 0
    code, out, err = stage(capsys, "main.py", *cmd, "--overwrite", root=runs)
    assert code == 0, err
    assert tmp_files(ckpt.parent) == []
    assert storage.load_checkpoint(ckpt)["meta"]["forget_tag"] == f"c{FORGET_CLASS}"
    assert len(storage.read_rows(paths.results_csv(runs, "unlearn"))) == 2


def test_synthetic_set_killed_mid_write_leaves_none(runs, tmp_path, capsys):
    """A synthetic sample set killed while written does not exist afterwards (not truncated); a rerun makes it."""
    cmd = [*FAST, "--source", "synthetic", "--samples_per_class", "5", "--epochs", "1", "--no-mia"]
    f = paths.synthetic_file(runs, DS, MODEL, "fc", 0, "matched", 5, 0)
    code, log = forked_stage(tmp_path, "main.py", *cmd, "--root", str(runs), fault="mid_write")
    assert code == -signal.SIGKILL, log
    assert not f.exists() and len(tmp_files(f.parent)) == 1
    code, out, err = stage(capsys, "main.py", *cmd, root=runs)
    assert code == 0, err
    assert len(storage.torch_load(f)["y"]) == 50 and tmp_files(f.parent) == []


def test_plot_and_write_failures_leave_old_file(tmp_path, monkeypatch):
    """A plot whose save fails half-way (disk full) raises a one-line UserError; the old plot stays."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    f = tmp_path / "plots" / "fig.png"
    fig = plt.figure()
    storage.atomic_savefig(fig, f)
    old = f.read_bytes()
    assert old.startswith(b"\x89PNG")

    def full_disk(path, **kw):
        Path(path).write_bytes(b"\x89PNG partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(fig, "savefig", full_disk)
    with pytest.raises(UserError, match="No space left on device"):
        storage.atomic_savefig(fig, f)
    plt.close(fig)
    assert f.read_bytes() == old and tmp_files(f.parent) == []


# ---------------------------------------------------------------- 2. concurrent-safe results

def _append_many(root: str, proc: int, n: int) -> None:
    for i in range(n):
        row = {c: "" for c in results.COLUMNS}
        row.update(run_id=f"p{proc}r{i}", kind="unlearn", config=json.dumps({"pad": "x" * 6000, "p": proc, "i": i}),
                   command=f"python main.py --seed {i}, \"quoted\"\nsecond line")
        results.append(root, "unlearn", [row])


def test_concurrent_appends_8x50(tmp_path):
    """8 processes x 50 rows (6 kB each, larger than a pipe's atomic write) into one CSV: exactly 400
    well-formed rows and one header."""
    procs = [mp.get_context("fork").Process(target=_append_many, args=(str(tmp_path), p, 50)) for p in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    f = paths.results_csv(tmp_path, "unlearn")
    with open(f, newline="") as fh:
        table = list(csv.reader(fh))
    assert table[0] == results.COLUMNS
    assert sum(r == results.COLUMNS for r in table) == 1
    body = table[1:]
    assert len(body) == 400 and all(len(r) == len(results.COLUMNS) for r in body)
    assert {r[0] for r in body} == {f"p{p}r{i}" for p in range(8) for i in range(50)}
    assert all(json.loads(r[results.COLUMNS.index("config")])["pad"] == "x" * 6000 for r in body)


def test_torn_row_is_ignored_and_repaired(tmp_path, capsys):
    """A writer killed inside a row leaves a line without newline: readers skip it, the next append cuts it."""
    cols = ["a", "b"]
    f = tmp_path / "r.csv"
    storage.append_rows(f, [{"a": 1, "b": 2}], cols)
    with open(f, "a") as fh:
        fh.write("3,\"unterminated")
    assert storage.read_rows(f) == [{"a": "1", "b": "2"}]
    storage.append_rows(f, [{"a": 5, "b": 6}], cols)
    assert f.read_text() == "a,b\n1,2\n5,6\n"
    assert "torn last row" in capsys.readouterr().err


def test_torn_header_is_repaired_foreign_file_is_not(tmp_path):
    cols = ["alpha", "beta"]
    f, g = tmp_path / "torn.csv", tmp_path / "foreign.csv"
    f.write_text("alpha,be")
    g.write_text("gamma")
    storage.append_rows(f, [{"alpha": 1, "beta": 2}], cols)
    assert f.read_text() == "alpha,beta\n1,2\n"
    with pytest.raises(UserError, match="foreign CSV schema"):
        storage.append_rows(g, [{"alpha": 1, "beta": 2}], cols)
    assert g.read_text() == "gamma"


def test_append_on_full_disk_leaves_csv_unchanged(tmp_path, monkeypatch):
    cols = ["a", "b"]
    f = tmp_path / "r.csv"
    storage.append_rows(f, [{"a": 1, "b": 2}], cols)
    before = f.read_bytes()
    real = os.write

    def half_then_enospc(fd, data):
        real(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "write", half_then_enospc)
    with pytest.raises(UserError, match="could not append.*No space left on device.*unchanged"):
        storage.append_rows(f, [{"a": "x" * 100, "b": 4}], cols)
    monkeypatch.undo()
    assert f.read_bytes() == before


# ---------------------------------------------------------------- 3. resume

TRAIN = ["--dataset", DS, "--model", MODEL, "--img_size", "4", "--epochs", "2", "--bsize", "512", "--deterministic",
         "--cuda", "-1", "--no-save_df"]


def test_training_killed_after_epoch_resumes_to_identical_weights(tmp_path, capsys):
    """training_original.py SIGKILLed right after epoch 1 (of 2) resumes from its state file and ends with the
    same weights and per-epoch losses as an uninterrupted run; other options are refused."""
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    code, log = forked_stage(tmp_path, "training_original.py", *TRAIN, "--root", str(ref))
    assert code == 0, log
    code, log = forked_stage(tmp_path, "training_original.py", *TRAIN, "--root", str(cut), fault="after_epoch:1")
    assert code == -signal.SIGKILL, log
    ckpt = paths.original_ckpt(cut, DS, MODEL, 0)
    assert not ckpt.exists() and storage.torch_load(paths.training_state(ckpt))["epoch"] == 0
    state = tree(cut)
    code, out, err = stage(capsys, "training_original.py", *TRAIN, "--lr", "0.01", root=cut)
    one_line_error(err, "other options", "(now 0.01)")
    assert code == 2 and tree(cut) == state
    code, log = forked_stage(tmp_path, "training_original.py", *TRAIN, "--root", str(cut))
    assert code == 0, log
    assert "resuming m0.pt after epoch 1" in log and "epoch 1/2" not in log and "epoch 2/2" in log
    a, b = storage.torch_load(paths.original_ckpt(ref, DS, MODEL, 0)), storage.torch_load(ckpt)
    assert a["history"] == b["history"] and len(b["history"]) == 2
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert not paths.training_state(ckpt).exists()


# ---------------------------------------------------------------- 4. safe loading

class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def test_pickled_callable_is_refused_and_never_runs(runs, tmp_path, capsys):
    marker = tmp_path / "pwned"
    ckpt = paths.original_ckpt(runs, DS, MODEL, 0)
    torch.save({"state_dict": {}, "meta": {"dataset": DS}, "x": _Payload(marker)}, ckpt)
    with pytest.raises(UserError, match="refused to load"):
        storage.torch_load(ckpt)
    state = tree(runs)
    code, out, err = stage(capsys, "main.py", *FAST, root=runs)
    assert code == 2 and not marker.exists() and tree(runs) == state
    one_line_error(err, str(ckpt), "refused to load", "weights_only")


def _sources() -> dict[str, str]:
    return {str(p.relative_to(REPO)): p.read_text() for p in REPO.rglob("*.py")
            if not {".venv", "tests"} & set(p.relative_to(REPO).parts)}


def test_every_torch_load_is_weights_only():
    """Static guard: no torch.load in the code base without weights_only=True."""
    calls = [(f, m.group(0)) for f, text in _sources().items() for m in re.finditer(r"torch\.load\([^)]*\)", text)]
    assert calls and all("weights_only=True" in c for _, c in calls), calls


def test_outputs_are_written_through_storage():
    """Static guard: tensors, plots and tables are written by storage.py's atomic writers, or into the
    temporary path `tmp` that `storage.atomic_path` yields."""
    direct = re.compile(r"torch\.save\((?!tmp\b)|\.savefig\((?!tmp\b)|\.to_csv\((?!tmp\b)|open\([^)]*[\"'][wa]b?[\"']")
    # A subprocess's live log is streamed as it runs, so it cannot be written atomically; it is not a result.
    live_logs = {("sweep.py", 'open(f"{log_stem}_{i}.out", "w"')}
    found = [(f, m.group(0)) for f, text in _sources().items() if f != "core/storage.py" for m in direct.finditer(text)
             if (f, m.group(0)) not in live_logs]
    assert found == [], f"write these through storage.atomic_*: {found}"


@pytest.mark.parametrize("key,value", [("dataset", "cifar10"), ("model", "resnet50"), ("num_classes", 100)])
def test_mismatched_original_is_refused_naming_both(runs, capsys, key, value):
    ckpt = paths.original_ckpt(runs, DS, MODEL, 0)
    obj = storage.torch_load(ckpt)
    requested = obj["meta"][key]
    obj["meta"][key] = value
    storage.atomic_torch_save(obj, ckpt)
    state = tree(runs)
    code, out, err = stage(capsys, "main.py", *FAST, root=runs)
    assert code == 2 and tree(runs) == state
    one_line_error(err, str(ckpt), f"{key}: checkpoint has {value!r}, requested {requested!r}")


def test_embeddings_of_another_cut_are_refused(runs, capsys):
    src = paths.embeddings_file(runs, DS, MODEL, "fc", 0, "train")
    for split in ("train", "val", "test"):
        dst = paths.embeddings_file(runs, DS, MODEL, "partial", 0, split)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(paths.embeddings_file(runs, DS, MODEL, "fc", 0, split), dst)
    state = tree(runs)
    code, out, err = stage(capsys, "main.py", *FAST, "--setting", "partial", root=runs)
    assert code == 2 and tree(runs) == state and src.exists()
    one_line_error(err, "cut: checkpoint has 'fc', requested 'partial'")


# ---------------------------------------------------------------- 5. bad input, clear errors

def _truncate_original(root: Path) -> str:
    f = paths.original_ckpt(root, DS, MODEL, 0)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    return "corrupt or truncated"


def _foreign_csv(root: Path) -> str:
    paths.results_csv(root, "unlearn").write_text("name,score\nx,1\n")
    return "foreign CSV schema"


def _empty_hr(root: Path) -> str:
    import opts
    from data.forget import hr_tag
    from stages.pipeline import splits
    n_train = len(splits(opts.parse_args(FAST))["train"])
    f = paths.forget_set_file(root, DS, hr_tag(100, 0))
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps({"dataset": DS, "seed": 0, "n_train": n_train, "indices": []}))
    return "empty forget set"


BAD_INPUTS = {
    "unknown dataset": (["--dataset", "mnist"], None, "invalid choice: 'mnist'"),
    "unknown method": (["--method", "FOO"], None, "invalid choice: 'FOO'"),
    "unknown model": (["--model", "vgg11"], None, "invalid choice: 'vgg11'"),
    "class out of range": (["--forget_class", "10"], None, "--forget_class: 10 out of range"),
    "samples_per_class 0": (["--source", "synthetic", "--samples_per_class", "0"], None, "--samples_per_class"),
    "empty forget set": (["--mode", "HR", "--hr_samples", "100", "--hr_seed", "0"], _empty_hr, "empty forget set"),
    "truncated checkpoint": ([], _truncate_original, "corrupt or truncated"),
    "foreign CSV schema": ([], _foreign_csv, "foreign CSV schema"),
    "--cuda 3": (["--cuda", "3"], None, "--cuda 3: this machine has"),
    "unknown --hp": (["--hp", "alpha=1"], None, "FT has no hyperparameter 'alpha'"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_one_line_no_output(runs, capsys, name):
    argv, prepare, needle = BAD_INPUTS[name]
    if prepare:
        prepare(runs)
    state = tree(runs)
    base = [a for a in FAST if a != "--cuda" and a != "-1"] if "--cuda" in argv else FAST
    code, out, err = stage(capsys, "main.py", *base, *argv, root=runs)
    assert code == 2, (out, err)
    one_line_error(err, needle)
    assert tree(runs) == state


def test_missing_data_root(tmp_path, capsys):
    root = tmp_path / "runs"
    code, out, err = stage(capsys, "training_original.py", "--dataset", "cifar10", "--data_root",
                           str(tmp_path / "nowhere"), "--cuda", "-1", root=root)
    assert code == 2
    one_line_error(err, "CIFAR-10 not found", str(tmp_path / "nowhere"))
    assert not root.exists()


def test_nan_loss_stops_keeps_last_good_weights(runs, capsys):
    """A learning rate that overflows the head: the run stops at the epoch that went non-finite, keeps
    (and saves) the finite weights of the best earlier epoch, records why, and exits 3."""
    code, out, err = stage(capsys, "main.py", *FAST, "--lr", "1e36", "--bsize", "4096", "--epochs", "4",
                           "--save_model", "--no-mia", root=runs)
    assert code == 3
    one_line_error(err, "non-finite loss at epoch 2", "lower --lr")
    (row,) = storage.read_rows(paths.results_csv(runs, "unlearn"))
    assert row["stop_reason"].startswith("non-finite loss at epoch 2") and row["best_epoch"] == "1"
    ckpt = unlearned(runs, row)
    sd = storage.load_checkpoint(ckpt)["state_dict"]
    assert all(bool(torch.isfinite(v).all()) for v in sd.values() if v.is_floating_point())


# ---------------------------------------------------------------- 3 + 6. skip, determinism, provenance

def test_same_command_same_metrics_and_row_reruns_itself(runs, capsys):
    """Same command twice -> identical metrics; the second is skipped until --overwrite; the row's own
    `command` (plus --root) reproduces the metrics; the row records config, versions and commit."""
    code, out, err = stage(capsys, "main.py", *FAST, root=runs)
    assert code == 0, err
    f = paths.results_csv(runs, "unlearn")
    (first,) = storage.read_rows(f)
    code, out, err = stage(capsys, "main.py", *FAST, root=runs)
    assert code == 0 and "skip:" in out and len(storage.read_rows(f)) == 1
    code, out, err = stage(capsys, "main.py", *FAST, "--overwrite", root=runs)
    assert code == 0, err
    words = shlex.split(first["command"])
    assert words[:2] == ["python", "main.py"]
    code, out, err = stage(capsys, "main.py", *words[2:], "--overwrite", "--cuda", "-1", root=runs)
    assert code == 0, err
    rows = storage.read_rows(f)
    assert len(rows) == 3 and len({r["run_id"] for r in rows}) == 1
    for r in rows[1:]:
        assert {c: r[c] for c in METRIC_COLS} == {c: first[c] for c in METRIC_COLS}
    assert all(first[c] not in ("", "nan") for c in ("test_retain_acc", "test_forget_acc", "aus", "a_or"))
    cfg = json.loads(first["config"])
    assert cfg["seed"] == 0 and cfg["method"] == "FT" and cfg["epochs"] == 2 and "lr" in cfg and "wd" in cfg
    assert "torch=" in first["versions"] and "numpy=" in first["versions"]
    assert re.fullmatch(r"[0-9a-f]{12}(\+dirty)?", first["git_commit"]), first["git_commit"]
