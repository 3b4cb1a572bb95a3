"""Kernels and the execution of one notebook (papermill), for the book runner.

:func:`execute_one` converts a jupytext notebook in memory, executes it with papermill in a
kernel of this interpreter (:func:`prepare_kernel_env` checks which python the kernel runs) and
writes the executed notebook atomically, keeping a failed one as ``<stem>.failed.ipynb``.
:mod:`scconcepts.book` decides which chapters run, in which order and how many at a time.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .book_build import BookError, ChapterTimeout

KERNEL_NAME = "python3"
#: Tags papermill puts on (``injected-parameters``) or finds on (``parameters``) the parameter
#: cells; both are hidden in the book, each chapter shows a run-parameters table instead.
PARAMETER_TAGS = ("parameters", "injected-parameters")
HIDE_TAG = "remove-cell"
#: Environment for the kernels. The inline backend is headless and, unlike ``Agg``, still
#: displays figures shown with ``plt.show()``; ipykernel keeps a pre-set ``MPLBACKEND``.
KERNEL_ENV = {
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
}


# --------------------------------------------------------------------------------------------
# kernel
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def scoped_environ(env: dict[str, str]) -> Iterator[None]:
    """``os.environ`` updated with ``env`` inside, restored exactly after."""
    saved = {k: os.environ.get(k) for k in env}
    try:
        os.environ.update(env)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def kernel_environment(kernel_name: str = KERNEL_NAME) -> Iterator[None]:
    """Environment in which kernels are started; the caller's environment is restored after.

    Sets :data:`KERNEL_ENV` and puts the virtualenv's own kernelspec folder first on
    ``JUPYTER_PATH`` so that a user-level ``python3`` kernel (``~/.local/share/jupyter``) cannot
    shadow it. A kernel copies the environment when it starts, so restoring is safe.
    """
    env = dict(KERNEL_ENV)
    env_share = Path(sys.prefix) / "share" / "jupyter"
    if (env_share / "kernels" / kernel_name).is_dir():
        paths = [str(env_share)] + [
            p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p
        ]
        env["JUPYTER_PATH"] = os.pathsep.join(dict.fromkeys(paths))
    with scoped_environ(env):
        yield


def prepare_kernel_env(kernel_name: str = KERNEL_NAME) -> str:
    """Check that ``kernel_name`` runs this interpreter; return the kernel's python.

    jupyter_client runs a spec whose ``argv[0]`` is ``python``/``python3`` with
    ``sys.executable``; any other interpreter is an error with the command that fixes it.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    with kernel_environment(kernel_name):
        try:
            spec = KernelSpecManager().get_kernel_spec(kernel_name)
        except NoSuchKernel as err:
            raise BookError(
                f"no Jupyter kernel named {kernel_name!r}; install one for this interpreter with"
                f"\n  {sys.executable} -m ipykernel install --sys-prefix --name {kernel_name}"
            ) from err
    exe = spec.argv[0] if spec.argv else ""
    short = {"python", f"python{sys.version_info[0]}", "python%i.%i" % sys.version_info[:2]}
    exe = sys.executable if exe in short else exe
    if not _same_python(exe, sys.executable):
        raise BookError(
            f"kernel {kernel_name!r} runs {exe}, not this interpreter {sys.executable}; "
            "fix it with\n"
            f"  {sys.executable} -m ipykernel install --sys-prefix --name {kernel_name}"
        )
    return exe


def _same_python(a: str, b: str) -> bool:
    """Same interpreter *and* same environment (a venv's python links to the system one)."""
    if not a or not Path(a).exists():
        return False
    same_dir = os.path.abspath(os.path.dirname(a)) == os.path.abspath(os.path.dirname(b))
    return same_dir and os.path.realpath(a) == os.path.realpath(b)


# --------------------------------------------------------------------------------------------
# execution
# --------------------------------------------------------------------------------------------


def hide_parameter_cells(nb) -> int:
    """Tag the ``parameters`` and papermill's ``injected-parameters`` cells ``remove-cell``."""
    n = 0
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if any(t in tags for t in PARAMETER_TAGS) and HIDE_TAG not in tags:
            cell.setdefault("metadata", {}).setdefault("tags", []).append(HIDE_TAG)
            n += 1
    return n


def _ipc_kernel_manager(folder: str):
    """A kernel manager whose kernels talk over Unix sockets in ``folder`` (private, temporary:
    the caller removes it).

    Kernels started at the same moment by parallel chapters (separate processes) pick their TCP
    ports independently and can collide ("Address already in use", the kernel dies before
    replying); IPC sockets have unique paths and are not reachable from the network.
    """
    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            kwargs.setdefault("transport", "ipc")
            kwargs.setdefault("ip", os.path.join(folder, "kernel"))
            super().__init__(**kwargs)

    return IPCKernelManager


def _running_cell(running: Path) -> str:
    """``[n]`` (execution count) or ``#i`` (position) of the last cell papermill started."""
    import nbformat

    try:
        nb = nbformat.read(running, as_version=4)
    except Exception:  # noqa: BLE001 - a best-effort detail of an error message
        return "?"
    code = [c for c in nb.cells if c.cell_type == "code"]
    started = [(i, c) for i, c in enumerate(code, 1)
               if c.get("metadata", {}).get("papermill", {}).get("start_time")]
    if not started:
        return "?"
    i, c = started[-1]
    return f"[{c.execution_count}]" if c.execution_count else f"#{i} of {len(code)}"


@dataclass
class NotebookRun:
    source: Path
    output: Path
    seconds: float
    ok: bool
    error: str = ""
    params: dict = field(default_factory=dict)


def execute_one(
    source: Path,
    out_dir: Path,
    profile: str,
    params: dict[str, Any],
    cwd: Path,
    kernel_name: str = KERNEL_NAME,
    progress_bar: bool = False,
    timeout: int | None = None,
) -> NotebookRun:
    """Execute one jupytext notebook; raise :class:`BookError` naming it if a cell fails.

    Success writes ``<out_dir>/<stem>.ipynb`` (atomically, after hiding the parameter cells).
    Failure removes that file, so a later build cannot use a stale chapter, and keeps the
    partially executed notebook as ``<out_dir>/<stem>.failed.ipynb`` for debugging.
    """
    import jupytext
    import nbformat
    import papermill
    from nbclient.exceptions import CellTimeoutError
    from papermill.exceptions import PapermillExecutionError

    source = Path(source)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"{source.stem}.ipynb"
    failed = out_dir / f"{source.stem}.failed.ipynb"
    running = out_dir / f".{source.stem}.running.ipynb"
    failed.unlink(missing_ok=True)

    nb = jupytext.read(source)
    # a py:percent file without a jupytext header carries no kernel; papermill needs a language
    nb.metadata.setdefault(
        "kernelspec", {"name": kernel_name, "display_name": "Python 3", "language": "python"}
    )
    nb.metadata.setdefault("language_info", {"name": "python"})
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        raise BookError(f"{source}: no cell tagged 'parameters'")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="scconcepts-book-") as tmp:
        src_ipynb = Path(tmp) / f"{source.stem}.ipynb"
        nbformat.write(nb, src_ipynb)
        try:
            with kernel_environment(kernel_name):
                papermill.execute_notebook(
                    str(src_ipynb),
                    str(running),
                    parameters={"profile": profile, "params": params},
                    kernel_name=kernel_name,
                    cwd=str(cwd),
                    progress_bar=progress_bar,
                    execution_timeout=timeout,
                    kernel_manager_class=_ipc_kernel_manager(tmp),
                )
        except PapermillExecutionError as err:
            seconds = time.perf_counter() - t0
            final.unlink(missing_ok=True)
            if running.exists():
                partial = nbformat.read(running, as_version=4)
                hide_parameter_cells(partial)
                nbformat.write(partial, failed)
                running.unlink()
            raise BookError(
                f"notebook {source.name} failed in cell [{err.exec_count}] after {seconds:.0f} s: "
                f"{err.ename}: {err.evalue}\n  partially executed notebook kept at {failed}"
            ) from err
        except BaseException as err:
            final.unlink(missing_ok=True)
            cell = _running_cell(running)
            if running.exists():
                running.replace(failed)
            if isinstance(err, CellTimeoutError):
                raise ChapterTimeout(
                    f"notebook {source.name} timed out: cell {cell} ran longer than the "
                    f"per-cell timeout of {timeout} s ({time.perf_counter() - t0:.0f} s in all)."
                    f"\n  Raise --timeout (or leave it out: no limit) or use a smaller profile;"
                    f" finished artefacts are kept and reused. Partially executed notebook "
                    f"kept at {failed}") from err
            raise
    executed = nbformat.read(running, as_version=4)
    hide_parameter_cells(executed)
    nbformat.write(executed, running)
    running.replace(final)
    return NotebookRun(source, final, time.perf_counter() - t0, True, params=params)
