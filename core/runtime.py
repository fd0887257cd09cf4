"""Process-level helpers shared by every stage: user errors, device choice, seeding, provenance."""

from __future__ import annotations

import functools
import os
import platform
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


class UserError(Exception):
    """A problem the user can fix (bad option, missing input); printed as one line, exit code 2."""

    exit_code = 2


class RunFailed(UserError):
    """One run cannot be done on its forget set (e.g. SCAR finds no class to pull toward). A stage
    looping over forget sets reports it, goes on to the next set, and exits 2 at the end."""


class Diverged(UserError):
    """Runs that stopped on a non-finite loss (their rows were written, with the stop reason): exit 3."""

    exit_code = 3


def _on_sigterm(signum, frame) -> None:
    """SIGTERM (Slurm time limit, preemption, scancel) unwinds like an exception: `finally` blocks
    remove half-written temporary files and release CSV locks; the unfinished run leaves no result
    row (reruns skip only finished runs) and training keeps the state of its last finished epoch."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second TERM must not interrupt the clean-up
    print("terminated (SIGTERM): stopped cleanly; rerun the same command to resume", file=sys.stderr)
    sys.exit(143)


def run_stage(main: Callable[[], object]) -> None:
    """Run a stage's main(); turn UserError into a one-line message and exit status 2, and SIGTERM
    into a clean stop with exit status 143."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def get_device(cuda: int | None) -> torch.device:
    """`--cuda` semantics of the seeds: -1 = CPU, N = cuda:N; unset = cuda:0 when present, else CPU."""
    if cuda is None:
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if cuda < 0:
        return torch.device("cpu")
    n = torch.cuda.device_count()
    if cuda >= n:
        have = f"GPUs 0..{n - 1}" if n else "no GPU"
        raise UserError(f"--cuda {cuda}: this machine has {have}; use --cuda -1 for the CPU")
    return torch.device(f"cuda:{cuda}")


def set_threads(threads: int | None) -> None:
    """Torch's CPU threads for this process (None: leave torch's default, all cores or $OMP_NUM_THREADS)."""
    if threads and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch; `deterministic` also asks torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


@functools.cache
def git_commit() -> str:
    """Commit of the code that produced a result ('+dirty' when the tree has local edits)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (sha + ("+dirty" if dirty else "")) if sha else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> str:
    """Package versions recorded in every result row."""
    import sklearn
    import timm
    import torchvision
    return (f"python={platform.python_version()} torch={torch.__version__} torchvision={torchvision.__version__} "
            f"timm={timm.__version__} numpy={np.__version__} sklearn={sklearn.__version__}")


def progress(iterable, **kw):
    """A tqdm bar on a terminal; silent in batch logs (Slurm output files), where the stages print
    one line per epoch or run instead. UNLEARN_PROGRESS=1 forces bars, =0 hides them."""
    from tqdm import tqdm
    force = os.environ.get("UNLEARN_PROGRESS")
    show = sys.stderr.isatty() if force is None else force == "1"
    kw["disable"] = kw.get("disable", False) or not show
    return tqdm(iterable, dynamic_ncols=True, leave=False, **kw)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device}:{torch.cuda.get_device_name(device)}"
    return f"cpu:{torch.get_num_threads()}threads"
