"""Scale-out: the seed's job scripts, the sweep launcher (task lists, Slurm job arrays against a real
local Slurm, resubmission that runs nothing), SIGTERM clean stops, and torchrun/DDP training on CPU."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FORGET_CLASS, REPO, private_copy
from slurm_local import LocalSlurm, Unavailable, slurm_version

from core import paths
from core.storage import load_checkpoint, torch_load
from reporting import results

KINDS = ["real", "synth", "part_real", "part_synth", "multiclass_real", "multiclass_synth"]
DATASETS = ["cifar10", "cifar100", "tiny", "digits"]
ENV = {**os.environ, "UNLEARN_PROGRESS": "0", "OMP_NUM_THREADS": "1", "UNLEARN_PYTHON": sys.executable}


@pytest.fixture(scope="module")
def runs(digits_root, tmp_path_factory) -> Path:
    return private_copy(digits_root, tmp_path_factory.mktemp("cluster") / "runs")


def _unlearn_rows(root: Path) -> list[dict]:
    return results.read_rows(paths.results_csv(root, "unlearn")) if paths.results_csv(root, "unlearn").exists() else []


def _check_row(r: dict) -> None:
    """A well-formed unlearning row: every schema column present, accuracies in [0, 1], a command."""
    assert set(results.COLUMNS) <= set(r)
    for k in ("test_retain_acc", "test_forget_acc", "train_retain_acc", "aus"):
        v = float(r[k])
        assert math.isfinite(v) and 0.0 <= v <= (1.0 if k != "aus" else 2.0), (k, v)
    assert r["command"].startswith("python main.py")


# --- job scripts ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_job_scripts_headers_and_usage(kind):
    for ds in DATASETS:
        name = f"job_{kind}_{ds}"
        script = REPO / "bash" / f"{name}.sh"
        head = script.read_text()
        sb = dict(re.findall(r"^#SBATCH --([\w-]+)=(\S+)", head, re.M))
        assert sb["job-name"] == name and sb["gres"] == "gpu:1" and int(sb["cpus-per-task"]) >= 1
        assert re.fullmatch(r"\d+:\d\d:\d\d", sb["time"]) and sb["output"].startswith("runs/logs/")
        assert "_job.sh" in head and len(head.splitlines()) < 20  # a thin wrapper of the one body
    p = subprocess.run(["bash", str(REPO / "bash" / f"job_{kind}_cifar10.sh"), "FT", "0.01"],
                       capture_output=True, text=True, cwd="/")
    assert p.returncode == 2 and "takes 7" in p.stderr and f"usage: job_{kind}_cifar10.sh METHOD LR" in p.stderr
    p = subprocess.run(["bash", str(REPO / "bash" / f"job_{kind}_cifar10.sh"), *"FT 0.01 1 10 gpu0 1 resnet18".split()],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "GPU must be a device index or -1" in p.stderr


def test_job_script_by_hand_on_cpu(runs):
    """The seed's positional interface, GPU -1 = CPU: one FC/real FT run with the given lr and epochs."""
    env = {**ENV, "UNLEARN_ROOT": str(runs), "UNLEARN_ARGS": f"--forget_class {FORGET_CLASS} --no-mia"}
    before = len(_unlearn_rows(runs))
    p = subprocess.run(["bash", "bash/job_real_digits.sh", "FT", "0.02", "1", "50", "-1", "1", "resnet18"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    rows = _unlearn_rows(runs)[before:]
    assert len(rows) == 1
    r = rows[0]
    assert (r["run_name"], r["method"], r["setting"], r["source"], r["epochs"], r["forget_classes"]) == \
        ("job_real_digits", "FT", "fc", "real", "1", str(FORGET_CLASS))
    assert float(r["lr"]) == 0.02 and r["device"].startswith("cpu")
    _check_row(r)


# --- sweep launcher -------------------------------------------------------------------------------------

def test_sweep_grid_and_passthrough():
    import opts
    import sweep
    from core.runtime import UserError
    a, rest = sweep.get_parser().parse_known_args(
        ["--methods", "FT", "NG", "--sources", "real", "synthetic", "--forget_classes", "3", "4", "--lrs", "0.1",
         "0.01", "--model_nums", "0", "1", "--epochs", "2"])
    a.root = Path("/r")
    tasks = sweep.expand(a, rest)
    assert len(tasks) == 2 * 2 * 2 * 2 * 2
    assert len({sweep.task_line(t) for t in tasks}) == len(tasks)
    assert all(t[-2:] == ["--epochs", "2"] for t in tasks)
    ids = {rid for t in tasks for rid in sweep.run_ids(opts.parse_args(t, stage="main"))}
    assert len(ids) == len(tasks)  # one result row each
    with pytest.raises(UserError, match="--method is a grid axis here; use sweep.py --methods"):
        sweep.check_passthrough(["--method", "FT"])
    with pytest.raises(UserError, match="unknown option"):
        sweep.check_passthrough(["--no_such_option"])


def test_sweep_local_launcher_and_task_script(runs):
    """--launcher local runs the task list here; the kept list reruns a line by hand (a no-op once
    its row exists, since main.py skips finished runs); a rerun of the sweep runs nothing."""
    cmd = [sys.executable, "sweep.py", "--root", str(runs), "--name", "loc", "--methods", "NG", "--sources", "real",
           "--forget_classes", str(FORGET_CLASS), "--epochs", "1", "--no-mia"]
    before = len(_unlearn_rows(runs))
    p = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "1 to run in 1 task(s)" in p.stdout and "1/1 rows have a result row" in p.stdout
    rows = _unlearn_rows(runs)[before:]
    assert len(rows) == 1 and rows[0]["method"] == "NG" and rows[0]["run_name"] == "loc"
    _check_row(rows[0])
    (tasks,) = paths.sweep_dir(runs, "loc").glob("tasks_*.txt")
    (rows_file,) = paths.sweep_dir(runs, "loc").glob("rows_*.txt")
    assert rows_file.read_text().startswith("python main.py --dataset digits")
    assert tasks.read_text() == f"python main.py --rows_file {rows_file} --rows 0:100\n"
    p = subprocess.run([sys.executable, "sweep.py", *cmd[2:], "--dry-run"], cwd=REPO, env=ENV, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0 and "1 with a result row already, 0 to run" in p.stdout
    p = subprocess.run(["bash", "bash/sweep_task.sh", str(tasks), "5"], cwd=REPO, env=ENV, capture_output=True, text=True)
    assert p.returncode == 2 and "has no line 6 (it has 1)" in p.stderr
    assert len(_unlearn_rows(runs)) == before + 1


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    base = tmp_path_factory.mktemp("slurm")
    cluster = LocalSlurm(base)
    try:
        env = cluster.start()
    except Unavailable as e:
        cluster.stop()
        pytest.skip(f"no local Slurm: {e}")
    yield env
    cluster.stop()


def test_sweep_slurm_array_and_resubmission(runs, slurm):
    """A packed `sbatch --array` of digits unlearning runs through sweep.py on a real local Slurm: 4
    rows in 2 tasks of 2 rows, 4 well-formed rows; the same command again submits nothing."""
    print(slurm_version(slurm))
    env = {**slurm, **ENV}
    cmd = [sys.executable, "sweep.py", "--root", str(runs), "--name", "arr", "--launcher", "slurm", "--wait",
           "--methods", "FT", "DELETE", "--sources", "real", "--forget_classes", str(FORGET_CLASS), "4",
           "--cpus_per_task", "1", "--gpus_per_task", "0", "--time", "00:10:00", "--rows_per_task", "2", "--epochs", "1",
           "--no-mia"]
    before = len(_unlearn_rows(runs))
    t0 = time.time()
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    logs = sorted(paths.logs_dir(runs).glob("arr-*_*.out"))
    detail = p.stdout[-2000:] + p.stderr[-2000:] + "".join(f"\n--- {f}\n{f.read_text()[-800:]}" for f in logs)
    assert p.returncode == 0, detail
    m = re.search(r"submitted array job (\d+): 2 tasks", p.stdout)
    assert m and "4 to run in 2 task(s) of up to 2 rows" in p.stdout, detail
    assert len(logs) == 2 and all(f"arr-{m.group(1)}_" in f.name for f in logs)
    rows = _unlearn_rows(runs)[before:]
    assert len(rows) == 4, detail
    assert sorted((r["method"], r["forget_classes"]) for r in rows) == \
        sorted((mth, c) for mth in ("FT", "DELETE") for c in (str(FORGET_CLASS), "4"))
    assert all(r["run_name"] == "arr" and r["epochs"] == "1" for r in rows)
    for r in rows:
        _check_row(r)
    assert "4/4 rows have a result row" in p.stdout
    print(f"slurm array of 2 tasks x 2 rows: {time.time() - t0:.1f}s")

    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "4 with a result row already, 0 to run" in again.stdout and "nothing to run" in again.stdout
    assert "submitted" not in again.stdout
    assert len(_unlearn_rows(runs)) == before + 4
    q = subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True)
    assert q.returncode == 0 and q.stdout.strip() == ""


# --- SIGTERM and torchrun -------------------------------------------------------------------------------

def test_sigterm_stops_cleanly_with_resumable_state(tmp_path):
    """What Slurm sends before the time limit or on preemption: exit 143, no final checkpoint, no
    temporary file, and the state of the last finished epoch kept for the rerun to resume from."""
    cmd = [sys.executable, "training_original.py", "--dataset", "digits", "--img_size", "8", "--epochs", "30",
           "--cuda", "-1", "--root", str(tmp_path)]
    ckpt = paths.original_ckpt(tmp_path, "digits", "resnet18", 0)
    state = paths.training_state(ckpt)
    p = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.time()
        while not state.exists() and p.poll() is None and time.time() - t0 < 300:
            time.sleep(0.2)
        assert state.exists(), "no epoch finished"
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 143, err[-2000:]
    assert "stopped cleanly" in err and "Traceback" not in err
    assert not ckpt.exists()
    assert not list(tmp_path.rglob("*.tmp"))
    st = torch_load(state)
    assert 0 <= st["epoch"] < 29 and len(st["history"]) == st["epoch"] + 1


def test_torchrun_two_ranks_gloo(tmp_path):
    """`torchrun --nproc_per_node 2` on CPU (gloo), one digits epoch: one checkpoint, one CSV row with
    world_size 2, and the same weights on both ranks, equal to the ones rank 0 wrote."""
    from engine.training import state_digest
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "training_original.py", "--dataset", "digits", "--img_size", "8", "--epochs", "1", "--cuda", "-1",
           "--root", str(tmp_path)]
    t0 = time.time()
    p = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    out = p.stdout + p.stderr
    m = re.search(r"DDP final weights sha1 per rank: ([0-9a-f]{40}) ([0-9a-f]{40}) \((\w+)", out)
    assert m, out[-3000:]
    assert m.group(1) == m.group(2) and m.group(3) == "identical"
    ckpts = [f for f in tmp_path.rglob("*.pt")]
    ckpt = paths.original_ckpt(tmp_path, "digits", "resnet18", 0)
    assert ckpts == [ckpt]
    saved = load_checkpoint(ckpt)
    assert state_digest(saved["state_dict"]) == m.group(1)
    rows = results.read_rows(paths.results_csv(tmp_path, "training"))
    assert len(rows) == 1 and rows[0]["world_size"] == "2" and rows[0]["epochs_run"] == "1"
    assert 0.0 <= float(rows[0]["test_acc"]) <= 1.0
    print(f"torchrun 2 ranks, 1 epoch: {time.time() - t0:.1f}s")


def test_plain_python_unchanged(digits_root):
    """The same script under plain python trained the session original: world size 1 in its row."""
    rows = [r for r in results.read_rows(paths.results_csv(digits_root, "training")) if r["kind"] == "original"]
    assert rows and rows[0]["world_size"] == "1"
