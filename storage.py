"""Files that survive killed jobs: atomic writes, checked checkpoint loads, locked CSV appends.

Every output is written to a temporary file in the destination directory and renamed into place,
so a reader sees the old file or the new one, never a partial one. Result rows are appended under
an exclusive `fcntl` lock on `<csv>.lock`, so concurrent array tasks can share one CSV.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from runtime import UserError

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success fsync it and rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


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
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
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
def locked(path: str | Path) -> Iterator[None]:
    """Exclusive inter-process lock on `<path>.lock` (works on local disks and NFS with lockd)."""
    lock = Path(str(path) + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
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


def append_rows(path: str | Path, rows: list[dict], columns: list[str]) -> None:
    """Append rows under the lock; writes the header when the file is new. Unknown keys are an error."""
    path = Path(path)
    for row in rows:
        unknown = set(row) - set(columns)
        if unknown:
            raise ValueError(f"row has columns outside the schema: {sorted(unknown)}")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    with locked(path):
        check_schema(path, columns)
        if _header(path) is None:
            writer.writeheader()
        writer.writerows(rows)
        with open(path, "a", newline="") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())


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
    with locked(path), open(path, newline="") as f:
        return list(csv.DictReader(f))


def skip_or_run(path: Path, overwrite: bool, log: Callable[[str], None] = print) -> bool:
    """True when `path` must be (re)made; prints why it is skipped otherwise."""
    if path.exists() and not overwrite:
        log(f"skip: {path} exists (use --overwrite to redo)")
        return False
    return True
