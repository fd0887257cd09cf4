"""Files that survive killed jobs: atomic writes, checked checkpoint loads, locked CSV appends.

Every output is written to a temporary file in the destination directory and renamed into place,
so a reader sees the old file or the new one, never a partial one; a failed write (disk full, quota)
is a one-line UserError and leaves the old file untouched. Temporary files are named
`.<name>.<host>.<pid>.<random>.tmp`; one left by a killed job is removed by the next write of the
same file on the same host once its process is gone. Result rows are appended under an exclusive
`fcntl` lock on `<csv>.lock`, so concurrent array tasks can share one CSV; an append that fails
half-way is rolled back, and a row torn by a killed writer is cut off before the next append.
"""

from __future__ import annotations

import csv
import fcntl
import glob
import io
import json
import os
import pickle
import socket
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch

from core.runtime import UserError

_UMASK = os.umask(0)
os.umask(_UMASK)


_HOST = socket.gethostname().split(".")[0] or "host"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_tmps(path: Path) -> None:
    """Temporary files of `path` left by killed writers on this host (their pid no longer runs)."""
    for old in path.parent.glob(f".{glob.escape(path.name)}.{glob.escape(_HOST)}.*.tmp"):
        pid = old.name[len(f".{path.name}.{_HOST}."):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            old.unlink(missing_ok=True)


def _write_failure(path: Path, e: BaseException) -> UserError | None:
    """A UserError for a write that failed for lack of space/quota/permission (not for a bug)."""
    if isinstance(e, OSError):
        why = e.strerror or type(e).__name__
    elif isinstance(e, RuntimeError) and ("PytorchStreamWriter" in str(e) or "file write failed" in str(e)):
        why = str(e).splitlines()[0]
    else:
        return None
    return UserError(f"could not write {path} ({why}); the previous file, if any, is untouched")


def _fsync_dir(d: Path) -> None:
    """Make a rename durable across a power cut (best effort: some file systems refuse it)."""
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success fsync it and rename it over `path`."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_tmps(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_HOST}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    except (OSError, RuntimeError) as e:
        err = _write_failure(path, e)
        if err is None:
            raise
        raise err from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def atomic_savefig(fig: Any, path: str | Path, **kw: Any) -> None:
    """`fig.savefig` through a temporary file (format from `path`'s suffix): plots are atomic too."""
    path = Path(path)
    kw.setdefault("format", path.suffix.lstrip(".") or "png")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **kw)


def save_checkpoint(path: str | Path, state_dict: dict, meta: dict, **extra: Any) -> None:
    """A checkpoint is {'state_dict', 'meta', **extra}; meta says what it is (dataset, model, cut...)."""
    atomic_torch_save({"state_dict": state_dict, "meta": meta, **extra}, path)


def torch_load(path: str | Path) -> Any:
    """`torch.load` with weights_only=True; corrupt, truncated or code-carrying files become UserError."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower() or "weights_only" in str(e).lower():
            raise UserError(f"{path}: refused to load: the file holds pickled code or objects, not plain "
                            f"tensors (weights_only=True)") from None
        raise UserError(f"{path}: corrupt or truncated file ({str(e).splitlines()[0]}); delete it and "
                        f"rerun the stage that wrote it") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as e:
        msg = (str(e).splitlines()[0].split(". ")[0] if str(e) else "") or type(e).__name__
        raise UserError(f"{path}: corrupt or truncated file ({msg}); delete it and rerun the stage that "
                        f"wrote it") from None


def load_checkpoint(path: str | Path, expect: dict | None = None, missing_hint: str = "") -> dict:
    """Load a checkpoint and refuse it when its meta disagrees with `expect` (naming both values)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"not found: {path}" + (f"; {missing_hint}" if missing_hint else ""))
    obj = torch_load(path)
    if not isinstance(obj, dict) or "meta" not in obj:
        raise UserError(f"{path}: not a checkpoint of this framework (no 'meta' entry)")
    meta = obj["meta"]
    bad = [f"{k}: checkpoint has {meta.get(k)!r}, requested {v!r}"
           for k, v in (expect or {}).items() if meta.get(k) != v]
    if bad:
        raise UserError(f"{path} does not match the request ({'; '.join(bad)})")
    return obj


@contextmanager
def locked(path: str | Path, shared: bool = False) -> Iterator[None]:
    """Inter-process lock on `<path>.lock`: exclusive for writers, shared for readers (flock; NFS
    clients emulate it with POSIX byte-range locks)."""
    lock = Path(str(path) + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _header(path: Path) -> list[str] | None:
    if not path.exists() or path.stat().st_size == 0:
        return None
    with open(path, newline="") as f:
        return next(csv.reader(f), None)


def check_schema(path: str | Path, columns: list[str]) -> None:
    """Refuse a CSV whose header is not `columns` (a foreign or older schema)."""
    header = _header(Path(path))
    if header is not None and header != columns:
        missing = [c for c in columns if c not in header][:5]
        extra = [c for c in header if c not in columns][:5]
        raise UserError(f"{path}: foreign CSV schema (missing columns {missing}, unexpected {extra}); "
                        f"move the file aside or use another --root")


def _cut_torn_tail(path: Path) -> None:
    """A writer killed in the middle of a row leaves a last line without its newline: cut it off."""
    size = path.stat().st_size if path.exists() else 0
    if size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        f.seek(max(0, size - (1 << 20)))
        tail = f.read()
        keep = size - len(tail) + tail.rfind(b"\n") + 1 if b"\n" in tail else 0
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    print(f"warning: {path}: removed a torn last row ({size - keep} bytes) left by a killed writer", file=sys.stderr)


def _cut_torn_header(path: Path, columns: list[str]) -> None:
    """A writer killed inside the very first append leaves a prefix of our header line: empty the file
    (a foreign file is never touched: it is not a prefix of the header)."""
    line = (",".join(columns) + "\n").encode()
    if path.exists() and 0 < path.stat().st_size < len(line) and line.startswith(path.read_bytes()):
        os.truncate(path, 0)


def append_rows(path: str | Path, rows: list[dict], columns: list[str]) -> None:
    """Append rows under the lock; writes the header when the file is new. Unknown keys are an error.

    All-or-nothing: if the write fails (disk full, quota), the file is cut back to its old size."""
    path = Path(path)
    for row in rows:
        unknown = set(row) - set(columns)
        if unknown:
            raise ValueError(f"row has columns outside the schema: {sorted(unknown)}")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    with locked(path):
        _cut_torn_header(path, columns)
        check_schema(path, columns)
        _cut_torn_tail(path)
        if _header(path) is None:
            writer.writeheader()
        writer.writerows(rows)
        data = buf.getvalue().encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            start = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError as e:
                os.ftruncate(fd, start)
                raise UserError(f"could not append to {path} ({e.strerror}); the file is unchanged") from None
        finally:
            os.close(fd)


def write_csv(path: str | Path, rows: list[dict], columns: list[str]) -> None:
    """Write a whole CSV atomically (per-run logs, tables)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def read_rows(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    lock = Path(str(path) + ".lock")
    with locked(path, shared=True) if lock.exists() else nullcontext(), open(path, newline="") as f:
        text = f.read()
    if text and not text.endswith("\n"):  # a row torn by a killed writer: not a row
        text = text[:text.rfind("\n") + 1]
    return list(csv.DictReader(io.StringIO(text, newline="")))


def skip_or_run(path: Path, overwrite: bool, log: Callable[[str], None] = print) -> bool:
    """True when `path` must be (re)made; prints why it is skipped otherwise."""
    if path.exists() and not overwrite:
        log(f"skip: {path} exists (use --overwrite to redo)")
        return False
    return True
