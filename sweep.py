"""Sweeps: a grid of unlearning runs, packed into tasks of many rows, run locally or as one Slurm job array.

    python sweep.py --datasets digits --methods FT DELETE --sources real synthetic --dry-run
    python sweep.py ... --launcher local                  # one task after another (--jobs N: N at once)
    python sweep.py ... --launcher gpus                   # one task per visible GPU at a time
    python sweep.py ... --launcher slurm --time 02:00:00 --sbatch_args "--partition=gpu --account=me"

A row is one (dataset, model, setting, source, noise, method, lr, original, forget set): one line of
<root>/results/unlearn.csv and one `python main.py ...` command line in <root>/sweeps/<name>/rows_*.txt
(each reruns its row alone). A task runs up to --rows_per_task rows in one process (`main.py
--rows_file FILE --rows START:STOP`), loading what rows share once. Rows whose result already exists
are left out (main.py would skip them too), so running the same sweep command again after a crash, a
time limit or a preemption runs only what is missing. Options that main.py knows (--epochs 20,
--no-mia, ...) are passed to every row. A Slurm array task runs its line of tasks_*.txt through
bash/sweep_task.sh.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import opts
from core import paths
from core.runtime import REPO, UserError, run_stage
from data import get_info, list_datasets
from engine import hparams
from methods import list_methods
from models import list_models
from reporting import results

TASK_SCRIPT = REPO / "bash" / "sweep_task.sh"


def get_parser() -> argparse.ArgumentParser:
    p = opts.Parser(description=__doc__.split("\n\n")[0], allow_abbrev=False,
                    formatter_class=opts.HelpFormatter,
                    epilog="Any other option is a main.py option, passed to every task (see python main.py --help).")
    g = p.add_argument_group("grid (one row per combination; rows are packed into tasks)")
    g.add_argument("--datasets", nargs="+", default=["digits"], choices=list_datasets())
    g.add_argument("--models", nargs="+", default=["resnet18"], type=opts.model_name, metavar="MODEL",
                   help=f"backbones: {', '.join(list_models())}, or timm:<name>")
    g.add_argument("--settings", nargs="+", default=["fc"], choices=opts.SETTINGS, help="cuts (full: images)")
    g.add_argument("--sources", nargs="+", default=["real", "synthetic"], choices=opts.SOURCES,
                   help="synthetic is left out for the full setting")
    g.add_argument("--noise_types", nargs="+", default=[hparams.SYNTHETIC_DEFAULTS["noise_type"]], choices=opts.NOISES,
                   help="noise families of the synthetic source")
    g.add_argument("--methods", nargs="+", default=list_methods(), choices=list_methods())
    g.add_argument("--lrs", nargs="+", type=float, default=None,
                   help="learning rates (default: each method's default from engine/hparams.py)")
    g.add_argument("--model_nums", nargs="+", type=int, default=[0], help="originals m<n>")
    f = g.add_mutually_exclusive_group()
    f.add_argument("--forget_classes", nargs="+", type=int, default=None,
                   help="single-class forgetting of these classes (default: the data set's own list, "
                        "e.g. all ten on digits/CIFAR-10)")
    f.add_argument("--num_forget_classes", nargs="+", type=int, default=None,
                   help="multi-class forgetting instead: the first k classes of the fixed permutation, for each k")
    f.add_argument("--hr_seeds", nargs="+", type=int, default=None,
                   help="HR mode instead: the stored random forget samples of these seeds (sample_fgt_samples.py)")

    g = p.add_argument_group("where and how")
    g.add_argument("--name", default="sweep", help="sweep name: task-list folder and Slurm job name")
    g.add_argument("--root", default=None, help="runs tree root (default: $UNLEARN_ROOT or ./runs)")
    g.add_argument("--launcher", default="local", choices=["local", "gpus", "slurm"],
                   help="local: in this shell; gpus: one task per visible GPU; slurm: one sbatch --array")
    g.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                   help="print the commands of the tasks still to run, run nothing")
    g.add_argument("--jobs", type=int, default=1, help="local: tasks at once (logs go to <root>/logs)")
    g.add_argument("--rows_per_task", type=int, default=100,
                   help="rows run by one task, in one process (on digits fc a row takes about a second)")

    g = p.add_argument_group("slurm")
    g.add_argument("--time", default="04:00:00", help="time limit of one task")
    g.add_argument("--cpus_per_task", type=int, default=4, help="CPU cores of one task")
    g.add_argument("--gpus_per_task", type=int, default=1, help="0: CPU-only tasks")
    g.add_argument("--max_parallel", type=int, default=None, help="at most this many tasks running at once (%%N)")
    g.add_argument("--array_limit", type=int, default=1000,
                   help="tasks per array job (the cluster's MaxArraySize); larger sweeps are split")
    g.add_argument("--grace", type=int, default=120,
                   help="seconds before the time limit at which a task gets SIGTERM and stops cleanly")
    g.add_argument("--sbatch_args", default="", help="more sbatch options, e.g. \"--partition=gpu --qos=long\"")
    g.add_argument("--wait", action="store_true", help="slurm: return only when every submitted task has ended")
    return p


def _forget_axis(a: argparse.Namespace, dataset: str) -> list[list[str]]:
    if a.hr_seeds is not None:
        return [["--mode", "HR", "--hr_seed", str(s)] for s in a.hr_seeds]
    if a.num_forget_classes is not None:
        return [["--forget_mode", "multi", "--num_forget_classes", str(k)] for k in a.num_forget_classes]
    classes = a.forget_classes if a.forget_classes is not None else get_info(dataset).forget_classes
    return [["--forget_class", str(c)] for c in classes]


def expand(a: argparse.Namespace, passthrough: list[str]) -> list[list[str]]:
    """Every task of the grid as main.py arguments (grid options first, then the passed-through ones)."""
    tasks = []
    for ds in a.datasets:
        for model in a.models:
            for setting in a.settings:
                for source in a.sources:
                    if setting == "full" and source == "synthetic":
                        continue
                    for noise in (a.noise_types if source == "synthetic" else [None]):
                        for method in a.methods:
                            for lr in (a.lrs or [None]):
                                for n in a.model_nums:
                                    for fset in _forget_axis(a, ds):
                                        argv = ["--dataset", ds, "--model", model, "--setting", setting,
                                                "--source", source, "--method", method, "--model_num", str(n),
                                                *fset]
                                        if noise:
                                            argv += ["--noise_type", noise]
                                        if lr is not None:
                                            argv += ["--lr", repr(lr)]
                                        tasks.append([*argv, "--root", str(a.root), "--run_name", a.name,
                                                      *passthrough])
    return tasks


# main.py options that are grid axes here, and the sweep option to use instead.
GRID_OPTIONS = {"dataset": "--datasets", "model": "--models", "setting": "--settings", "source": "--sources",
                "noise_type": "--noise_types", "method": "--methods", "lr": "--lrs", "model_num": "--model_nums",
                "forget_class": "--forget_classes", "num_forget_classes": "--num_forget_classes",
                "forget_mode": "--num_forget_classes", "mode": "--hr_seeds", "hr_seed": "--hr_seeds", "root": "--root"}


def check_passthrough(passthrough: list[str]) -> None:
    """Refuse options that are neither sweep.py's nor main.py's, and main.py options that the grid sets."""
    p = opts.get_parser()
    for action in p._actions:
        action.default = argparse.SUPPRESS
    given, leftover = p.parse_known_args(passthrough)
    if leftover:
        raise UserError(f"unknown option(s) {' '.join(leftover)}: neither a sweep.py nor a main.py option")
    for dest in vars(given):
        if dest in GRID_OPTIONS:
            raise UserError(f"main.py option --{dest} is a grid axis here; use sweep.py {GRID_OPTIONS[dest]} instead")


def run_ids(args: argparse.Namespace) -> list[str]:
    """The result-row ids main.py gives the runs of one parsed command (the same functions it uses)."""
    from stages.config import model_nums
    from stages.experiment import run_config
    from stages.pipeline import forget_sets
    return [results.run_id(run_config(args, n, fs)) for n in model_nums(args) for fs in forget_sets(args)]


def task_line(argv: list[str]) -> str:
    return shlex.join(["python", "main.py", *argv])


def pending_tasks(tasks: list[list[str]], root: Path) -> list[list[str]]:
    """The rows without a result row (all of them under --overwrite)."""
    done = results.existing(root, "unlearn")
    todo = []
    for t in tasks:
        args = opts.parse_args(t, stage="main")
        if args.overwrite or not all(r in done for r in run_ids(args)):
            todo.append(t)
    return todo


def _argv_of(line: str) -> list[str]:
    words = shlex.split(line)
    return [sys.executable, *words[1:]] if words[0] == "python" else words


def run_local(lines: list[str], slots: list[str | None], log_stem: Path | None) -> list[int]:
    """Run `lines` in this machine, at most len(slots) at once; a slot's value, when not None, is the
    CUDA_VISIBLE_DEVICES of its tasks. With one slot the output goes to this terminal, otherwise to
    `<log_stem>_<i>.out`. Returns the indices of failed tasks. SIGTERM stops the running tasks."""
    queue, running, failed = list(range(len(lines))), {}, []
    free = list(range(len(slots)))
    try:
        while queue or running:
            while queue and free:
                i, s = queue.pop(0), free.pop(0)
                env = dict(os.environ)
                if slots[s] is not None:
                    env["CUDA_VISIBLE_DEVICES"] = slots[s]
                out = None
                if log_stem is not None:
                    log_stem.parent.mkdir(parents=True, exist_ok=True)
                    out = open(f"{log_stem}_{i}.out", "w")
                where = f" on GPU {slots[s]}" if slots[s] is not None else ""
                print(f"[{i + 1}/{len(lines)}] start{where}: {lines[i]}", flush=True)
                proc = subprocess.Popen(_argv_of(lines[i]), cwd=REPO, env=env, stdout=out,
                                        stderr=subprocess.STDOUT if out else None)
                running[i] = (s, proc, out, time.time())
            time.sleep(0.2)
            for i, (s, proc, out, t0) in list(running.items()):
                if proc.poll() is None:
                    continue
                if out:
                    out.close()
                del running[i]
                free.append(s)
                ok = proc.returncode == 0
                if not ok:
                    failed.append(i)
                log = f" (log {log_stem}_{i}.out)" if out else ""
                print(f"[{i + 1}/{len(lines)}] {'done' if ok else f'FAILED (exit {proc.returncode})'} "
                      f"in {time.time() - t0:.0f}s{log}", flush=True)
    finally:
        for _, proc, _out, _ in running.values():
            proc.terminate()
        for _, proc, out, _ in running.values():
            proc.wait()
            if out:
                out.close()
    return sorted(failed)


def visible_gpus() -> list[str]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d for d in env.split(",") if d.strip()]
    import torch
    return [str(i) for i in range(torch.cuda.device_count())]


def submit_slurm(a: argparse.Namespace, task_files: list[Path]) -> list[str]:
    """One `sbatch --array` per task file; returns the job ids."""
    if shutil.which("sbatch") is None:
        raise UserError("--launcher slurm: sbatch not found on PATH (run on a Slurm login node, or use --launcher local)")
    logs = paths.logs_dir(a.root)
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "UNLEARN_REPO": str(REPO), "UNLEARN_PYTHON": sys.executable}
    ids = []
    for f in task_files:
        n = sum(1 for _ in open(f))
        array = f"0-{n - 1}" + (f"%{a.max_parallel}" if a.max_parallel else "")
        cmd = ["sbatch", "--parsable", f"--array={array}", f"--job-name={a.name}", f"--output={logs}/%x-%A_%a.out",
               f"--time={a.time}", f"--cpus-per-task={a.cpus_per_task}",
               f"--gres=gpu:{a.gpus_per_task}" if a.gpus_per_task > 0 else "--gres=none",
               "--requeue", f"--signal=B:TERM@{a.grace}", *shlex.split(a.sbatch_args), str(TASK_SCRIPT), str(f)]
        p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            msg = (p.stderr.strip() or p.stdout.strip()).splitlines()
            raise UserError(f"sbatch refused the array ({msg[-1] if msg else f'exit {p.returncode}'}); command: "
                            f"{shlex.join(cmd)}")
        job = p.stdout.strip().split(";")[0]
        ids.append(job)
        print(f"submitted array job {job}: {n} tasks from {f} (logs: {logs}/{a.name}-{job}_<task>.out)")
    return ids


def wait_slurm(ids: list[str], poll: float = 2.0, max_errors: int = 30) -> None:
    """Return when none of the array jobs `ids` is queued or running any more. A job that ended long
    ago is purged by slurmctld, and squeue then answers 'Invalid job id': that is done too."""
    errors = 0
    while True:
        p = subprocess.run(["squeue", "-h", "-j", ",".join(ids), "-o", "%i"], capture_output=True, text=True)
        if p.returncode == 0 and not p.stdout.strip():
            return
        if p.returncode != 0:
            if "invalid job id" in p.stderr.lower():
                return
            errors += 1
            if errors >= max_errors:
                raise UserError(f"squeue keeps failing ({p.stderr.strip() or f'exit {p.returncode}'}); "
                                f"jobs {','.join(ids)} may still run: check with squeue, rerun the sweep to collect")
        else:
            errors = 0
        time.sleep(poll)


def main() -> None:
    a, passthrough = get_parser().parse_known_args()
    check_passthrough(passthrough)
    if a.rows_per_task < 1 or a.jobs < 1:
        raise UserError(f"--rows_per_task {a.rows_per_task} / --jobs {a.jobs}: both must be at least 1")
    a.root = Path(a.root or paths.default_root()).resolve()
    rows = expand(a, passthrough)
    if not rows:
        raise UserError("the grid is empty (synthetic sources are left out of the full setting)")
    todo = pending_tasks(rows, a.root)
    lines = [task_line(t) for t in todo]
    k = a.rows_per_task
    n_tasks = -(-len(lines) // k)
    print(f"sweep {a.name}: {len(rows)} rows, {len(rows) - len(todo)} with a result row already, {len(todo)} to run"
          + (f" in {n_tasks} task(s) of up to {k} rows" if todo else ""), flush=True)
    if a.dry_run:
        print("\n".join(lines))
        return
    if not todo:
        print("nothing to run")
        return
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    sdir = paths.sweep_dir(a.root, a.name)
    sdir.mkdir(parents=True, exist_ok=True)
    rows_file = sdir / f"rows_{stamp}.txt"
    rows_file.write_text("\n".join(lines) + "\n")
    tasks = [shlex.join(["python", "main.py", "--rows_file", str(rows_file), "--rows", f"{i}:{i + k}"])
             for i in range(0, len(lines), k)]
    chunks = [tasks[i:i + a.array_limit] for i in range(0, len(tasks), max(1, a.array_limit))]
    files = [sdir / (f"tasks_{stamp}" + (f"_{c}" if len(chunks) > 1 else "") + ".txt") for c in range(len(chunks))]
    for f, chunk in zip(files, chunks):
        f.write_text("\n".join(chunk) + "\n")
    if a.launcher == "slurm":
        ids = submit_slurm(a, files)
        if not a.wait:
            print(f"watch with: squeue -j {','.join(ids)};  rerun this command to submit only what is still missing")
            return
        wait_slurm(ids)
    else:
        if a.launcher == "gpus":
            slots = visible_gpus()
            if not slots:
                raise UserError("--launcher gpus: no visible GPU; use --launcher local (CPU) or --launcher slurm")
        else:
            slots = [None] * a.jobs
        log_stem = paths.logs_dir(a.root) / f"{a.name}-{stamp}" if len(slots) > 1 else None
        failed = run_local(tasks, slots, log_stem)
        if failed:
            print(f"{len(failed)} task(s) ended with an error: " + ", ".join(str(i + 1) for i in failed))
    left = pending_tasks(rows, a.root)
    print(f"sweep {a.name}: {len(rows) - len(left)}/{len(rows)} rows have a result row"
          + (f"; {len(left)} missing (see the logs; rerun this command to retry them)" if left else ""))
    if left:
        sys.exit(1)


if __name__ == "__main__":
    run_stage(main)
