"""The artefacts folder's disk and permissions: a clear :class:`StoreError` instead of an
``OSError`` deep in a writer, naming the folder, the artefact, the space it needs and the fix.

:func:`prepare_root` proves a folder writable before anything runs; :func:`storage_problem`
turns a failed write into a :class:`StoreError` when the disk is full or the folder unwritable
(``None`` for any other error, which is the computation's own). Used by
:mod:`scconcepts.store`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["StoreError", "prepare_root", "storage_problem"]


class StoreError(OSError):
    """The artefacts folder cannot hold a result: unwritable, read-only or full.

    The message names the folder, the artefact and the space it needs, and the fix; nothing
    partial is left behind (the temporary file is removed, the artefact keeps its old state).
    """


#: errors of a full disk or quota, and of a folder one may not write
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}
#: below this much free space (or the artefact's size) a failed write is taken for a full disk
#: even when the writer's error carries no errno
_FULL_BELOW = 32 << 20


def _mb(n: float) -> str:
    return f"{n / 2**20:,.1f} MB"


def prepare_root(root: str | os.PathLike) -> Path:
    """Create the store folder ``root`` and prove it writable (a probe file), or raise.

    Raises
    ------
    StoreError
        The folder cannot be created or written (read-only, no permission, full), naming it
        and the fix.
    """
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=root, prefix=".probe-", suffix=".tmp")
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        free = _free(root)
        raise StoreError(
            err.errno or errno.EIO,
            f"the artefacts folder {root} is not writable ({err.strerror or err}); "
            + (f"{_mb(free)} free there. " if free is not None else "")
            + "Make it writable, free space, or point the profile at another folder "
            "(--set artifacts_dir=/path/with/space).") from err
    return root


def _free(path: Path) -> int | None:
    """Free bytes on the file system of ``path`` (its nearest existing parent)."""
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    with contextlib.suppress(OSError):
        return shutil.disk_usage(existing).free if existing else None
    return None


def _nbytes(value: Any) -> int | None:
    """Size of an artefact's value in memory: what its file needs, to a small factor."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if hasattr(value, "memory_usage"):  # a DataFrame
        return int(value.memory_usage(deep=True).sum())
    return None


def storage_problem(root: Path, err: BaseException, what: str,
                    needed: int | None) -> StoreError | None:
    """A :class:`StoreError` naming folder, artefact and space when ``err`` is a full or
    unwritable disk, else None (the error is the computation's own)."""
    free = _free(root)
    code = getattr(err, "errno", None)
    # writers that report no errno (numpy: "N requested and M written"; torch.save) fail
    # for a full disk when the space left cannot hold the artefact
    full = code in _FULL or (code is None and free is not None
                             and free < max(_FULL_BELOW, needed or 0))
    if not full and code not in _DENIED:
        return None
    need = f"about {_mb(needed)}" if needed else "more than the free space"
    state = "is full" if full else "is not writable"
    return StoreError(
        code or errno.ENOSPC,
        f"the artefacts folder {root} {state}: writing {what} needs {need}"
        + (f", {_mb(free)} free" if free is not None else "")
        + f" ({type(err).__name__}: {err}). Nothing partial was kept. Free space or make "
        "the folder writable and run again (finished artefacts are reused), or point the "
        "profile at another folder (--set artifacts_dir=/path/with/space).")
