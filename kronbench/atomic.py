"""Files and directories that appear whole or not at all: write to a temporary sibling, then rename into place.

A killed run (Ctrl-C, a SLURM time limit) leaves at worst a hidden `.<name>.*.tmp` next to the target, never a
half-written target that Snakemake or a resumed run would take for finished.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # pid: concurrent writers never share a temp file
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> Path:
    with file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


@contextmanager
def directory(out: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary directory next to `out`; on success it replaces `out` (an existing `out` is moved
    aside first and put back if the rename fails), on error it is removed."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        _swap(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap(tmp: Path, out: Path) -> None:
    if not out.exists():
        os.rename(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.rename(out, old / "out")
    try:
        os.rename(tmp, out)
    except OSError:
        os.rename(old / "out", out)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def open_permissions(root: Path) -> None:
    """mkdtemp makes 0700 directories; give the tree the modes a plain mkdir/open would (umask applied)."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [root, *root.rglob("*")]:
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)
