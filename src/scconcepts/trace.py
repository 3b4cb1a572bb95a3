"""What a chapter read: profile keys, input files, artefacts, and the time each step took.

The book runner (:mod:`scconcepts.book`) gives every notebook kernel a trace file in
``$SCCONCEPTS_TRACE``. While it is set, the kernel appends one JSON line per *new* item:

* ``{"kind": "param", "path": "models.scvi.c"}`` — a profile value the chapter read (recorded by
  :class:`scconcepts.models.base.Traced` on attribute access); ``"keys"`` records the names of a
  mapping of blocks (``models``: which models exist), ``"param"`` with a section path records a
  whole section (read with ``model_dump``, e.g. to hash it);
* ``{"kind": "file", "path": ..., "fingerprint": ...}`` — an input file whose bytes the chapter
  hashed (datasets, checkpoints, gene-set libraries, rating exports);
* ``{"kind": "artifact", "key": ..., "hit": bool}`` — an artefact of the store it loaded or made;
* ``{"kind": "step", "key": ..., "step": ..., "wall_s": ..., "cpu_s": ...}`` — a cached step it
  computed (wall time and CPU time of this process and its children);
* ``{"kind": "rss", "maxrss_mb": ...}`` — the kernel's peak resident memory, when it exits.

The runner reuses an executed notebook only when the values at every recorded ``param`` path,
every recorded file and the notebook and package sources are unchanged
(:func:`scconcepts.book_cache.is_fresh`); ``benchmarks/book_steps.py`` tabulates the ``step``
lines. Writes are single ``O_APPEND`` lines, so concurrent kernels never interleave a line.
Without ``$SCCONCEPTS_TRACE`` nothing is recorded and nothing is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import time
from pathlib import Path
from typing import Any, Iterator

__all__ = ["ENV", "active", "record", "record_path", "paused", "read", "timed_step"]

#: environment variable naming the trace file of this process
ENV = "SCCONCEPTS_TRACE"

_seen: set[str] = set()
_pause = 0
_stack: list[list[float]] = []


def active() -> bool:
    """True while this process records a trace (``$SCCONCEPTS_TRACE`` set, not paused)."""
    return _pause == 0 and bool(os.environ.get(ENV))


_paths: set[tuple[str, str]] = set()


_file: list[str] = [""]


def _same_file() -> None:
    """Forget what was recorded when the trace file changes (a new chapter, a test); the first
    record of a file registers the ``rss`` line written when the process exits."""
    if os.environ.get(ENV, "") != _file[0]:
        _file[0] = os.environ.get(ENV, "")
        _seen.clear()
        _paths.clear()
        if _file[0] and not _exit_hook:
            import atexit

            atexit.register(_record_peak_memory)
            _exit_hook.append(True)


_exit_hook: list[bool] = []


def _record_peak_memory() -> None:
    """``{"kind": "rss", "maxrss_mb": ...}``: the peak resident memory of this process (Linux
    reports ``ru_maxrss`` in KiB), written when the kernel exits."""
    if active():
        record("rss", dedupe=False,
               maxrss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))


def record_path(kind: str, path: str) -> None:
    """:func:`record` of a ``param``/``keys`` path, with a cheap in-process de-duplication
    (profile attributes are read millions of times)."""
    if not active():
        return
    _same_file()
    if (kind, path) in _paths:
        return
    _paths.add((kind, path))
    record(kind, path=path)


def record(kind: str, dedupe: bool = True, **fields: Any) -> None:
    """Append ``{"kind": kind, **fields}`` to the trace file (once per distinct line)."""
    if not active():
        return
    _same_file()
    line = json.dumps({"kind": kind, **fields}, sort_keys=True, default=str)
    if dedupe:
        if line in _seen:
            return
        _seen.add(line)
    fd = os.open(os.environ[ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Record nothing inside (e.g. a full ``model_dump`` made only to list the keys)."""
    global _pause
    _pause += 1
    try:
        yield
    finally:
        _pause -= 1


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@contextlib.contextmanager
def timed_step(key: str, **fields: Any) -> Iterator[None]:
    """Record the wall and CPU seconds of computing artefact ``key`` (a ``step`` line).

    CPU seconds include finished child processes (e.g. GSEA workers); CPU / wall is the number
    of cores the step kept busy on average. Times are the step's own: the time of steps
    computed inside it (its inputs) is subtracted and reported as ``nested_wall_s``.
    """
    if not active():
        yield
        return
    w0, c0 = time.perf_counter(), _cpu_seconds()
    _stack.append([0.0, 0.0])  # wall and CPU seconds of steps nested inside this one
    try:
        yield
    finally:
        inner_wall, inner_cpu = _stack.pop()
        wall, cpu = time.perf_counter() - w0, _cpu_seconds() - c0
        if _stack:
            _stack[-1][0] += wall
            _stack[-1][1] += cpu
        record("step", dedupe=False, key=key, step=key.split("-", 1)[0],
               wall_s=round(wall - inner_wall, 3), cpu_s=round(cpu - inner_cpu, 3),
               nested_wall_s=round(inner_wall, 3), **fields)


def read(path: str | os.PathLike) -> list[dict]:
    """The lines of a trace file (a torn last line, from a killed kernel, is skipped)."""
    out = []
    p = Path(path)
    if not p.is_file():
        return out
    for line in p.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
