"""Execute the book's notebooks with papermill and build the Jupyter Book.

The notebooks in ``notebooks/NN_<name>.py`` (jupytext py:percent) are the only source of the
chapters. This runner converts each one in memory to ``.ipynb``, executes it with papermill
(parameters ``profile`` and ``params``, the validated overrides of ``params/<profile>.yaml``) and writes
the executed notebook to ``book/_executed/<stem>.ipynb``, which ``_toc.yml`` points to. Jupyter
Book never executes anything itself (``execute_notebooks: "off"`` in ``_config.yml``).

Command line::

    python -m scconcepts.book execute --profile default [--only 02] [--out book/_executed]
    python -m scconcepts.book build [--strict]
    python -m scconcepts.book all --profile default      # execute, strict build, print index.html

``python -m scconcepts.book mathjax`` vendors MathJax (npm, once). ``--notebooks DIR`` and
``--params-dir DIR`` redirect the sources (tests use them); ``--set key=value`` overrides one
parameter of the profile (dotted key, value parsed as YAML; see :mod:`scconcepts.config`); the
profile is validated before any kernel starts. MathJax vendoring and the Jupyter Book build live
in :mod:`scconcepts.book_build` and are re-exported here.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from .book_build import (  # noqa: F401  (re-exported: the build half of this module)
    MATHJAX_DIR,
    MATHJAX_ENTRY,
    MATHJAX_PARTS,
    MATHJAX_VERSION,
    BookError,
    _toc_files,
    build,
    check_sources,
    find_root,
    jupyter_book_command,
    mathjax_vendored,
    stale_chapters,
    vendor_mathjax,
)

log = logging.getLogger("scconcepts.book")

NOTEBOOK_GLOB = "[0-9][0-9]_*.py"
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
# locations
# --------------------------------------------------------------------------------------------


def discover_notebooks(notebooks_dir: Path, only: Sequence[str] | None = None) -> list[Path]:
    """Notebook sources ``NN_<name>.py`` in chapter order, optionally filtered.

    ``only`` holds chapter numbers (``"02"``, ``"2"``) or stems (``"02_topk_saes"``); comma
    separated lists are accepted too. An entry that matches nothing is an error.
    """
    notebooks_dir = Path(notebooks_dir)
    found = sorted(notebooks_dir.glob(NOTEBOOK_GLOB))
    if not found:
        raise BookError(f"no notebooks matching {NOTEBOOK_GLOB!r} in {notebooks_dir}")
    if not only:
        return found
    wanted = [w.strip() for item in only for w in str(item).split(",") if w.strip()]
    selected: list[Path] = []
    for w in wanted:
        w_stem = Path(w).stem
        hits = [
            p
            for p in found
            if p.stem == w_stem or (w_stem.isdigit() and int(p.stem[:2]) == int(w_stem))
        ]
        if not hits:
            names = ", ".join(p.stem for p in found)
            raise BookError(f"--only {w!r} matches no notebook (have: {names})")
        selected.extend(h for h in hits if h not in selected)
    return sorted(selected)


def available_profiles(params_dir: Path) -> list[str]:
    return sorted(p.stem for p in Path(params_dir).glob("*.yaml"))


def load_params(profile: str, params_dir: Path, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Validate ``params/<profile>.yaml`` with ``key=value`` overrides; return the overrides.

    The notebooks receive the overrides (dotted keys) and rebuild the same validated profile
    with :func:`scconcepts.config.load_config`, so a typo or an ill-typed value fails here,
    in about a second and before any kernel starts, naming the closest valid key.

    Raises
    ------
    BookError
        Unknown profile, unknown key, ill-typed value (the message names the fix).
    """
    from .config import ConfigError, load_config, parse_overrides

    try:
        params = parse_overrides(overrides)
        cfg = load_config(profile, params, params_dir=params_dir)
    except ConfigError as err:
        raise BookError(str(err)) from None
    return {"params": cfg.overrides, "cfg": cfg}


# --------------------------------------------------------------------------------------------
# kernel
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def kernel_environment(kernel_name: str = KERNEL_NAME) -> Iterator[None]:
    """Environment in which kernels are started; the caller's environment is restored after.

    Sets :data:`KERNEL_ENV` and puts the virtualenv's own kernelspec folder first on
    ``JUPYTER_PATH`` so that a user-level ``python3`` kernel (``~/.local/share/jupyter``) cannot
    shadow it. A kernel copies the environment when it starts, so restoring is safe.
    """
    keys = (*KERNEL_ENV, "JUPYTER_PATH")
    saved = {k: os.environ.get(k) for k in keys}
    try:
        os.environ.update(KERNEL_ENV)
        env_share = Path(sys.prefix) / "share" / "jupyter"
        if (env_share / "kernels" / kernel_name).is_dir():
            paths = [str(env_share)] + [
                p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p
            ]
            os.environ["JUPYTER_PATH"] = os.pathsep.join(dict.fromkeys(paths))
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


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
        except BaseException:
            final.unlink(missing_ok=True)
            if running.exists():
                running.replace(failed)
            raise
    executed = nbformat.read(running, as_version=4)
    hide_parameter_cells(executed)
    nbformat.write(executed, running)
    running.replace(final)
    return NotebookRun(source, final, time.perf_counter() - t0, True, params=params)


def execute(
    profile: str = "default",
    only: Sequence[str] | None = None,
    out: Path | None = None,
    notebooks: Path | None = None,
    params_dir: Path | None = None,
    overrides: Iterable[str] = (),
    root: Path | None = None,
    kernel_name: str = KERNEL_NAME,
    timeout: int | None = None,
) -> list[NotebookRun]:
    """Execute the selected notebooks in chapter order; stop at the first failure."""
    from tqdm import tqdm

    root = Path(root or find_root()).resolve()
    notebooks = Path(notebooks or root / "notebooks")
    params_dir = Path(params_dir or root / "params")
    out = Path(out or root / "book" / "_executed")
    sources = discover_notebooks(notebooks, only)
    loaded = load_params(profile, params_dir, overrides)
    params, cfg = loaded["params"], loaded["cfg"]
    if cfg.scale.uses_census:
        # Census (paper) profile: check the downloads first, so that missing data or checkpoints
        # fail here within seconds with what to download, not deep inside a notebook.
        from .data import census

        try:
            census.preflight(cfg)
        except census.PaperInputsMissing as err:
            raise BookError(str(err)) from err
    python = prepare_kernel_env(kernel_name)
    log.info(
        "executing %d notebook(s) with profile %r (kernel %s -> %s) into %s",
        len(sources), profile, kernel_name, python, out,
    )
    interactive = sys.stderr.isatty()
    runs: list[NotebookRun] = []
    bar = tqdm(sources, desc=f"notebooks [{profile}]", unit="nb", disable=not interactive)
    saved = os.environ.get("SCCONCEPTS_PARAMS_DIR")
    os.environ["SCCONCEPTS_PARAMS_DIR"] = str(params_dir)  # kernels read the same profiles
    try:
        for src in bar:
            bar.set_postfix_str(src.stem)
            log.info("-> %s", src.name)
            run = execute_one(
                src, out, profile, params, cwd=root, kernel_name=kernel_name,
                progress_bar=interactive, timeout=timeout,
            )
            log.info("   %s done in %.1f s -> %s", src.stem, run.seconds, run.output)
            runs.append(run)
    finally:
        if saved is None:
            os.environ.pop("SCCONCEPTS_PARAMS_DIR", None)
        else:
            os.environ["SCCONCEPTS_PARAMS_DIR"] = saved
    log.info("executed %d notebook(s) in %.1f s", len(runs), sum(r.seconds for r in runs))
    return runs


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m scconcepts.book",
        description="Execute the scconcepts notebooks with papermill and build the Jupyter Book.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    def add_root(sp):
        sp.add_argument("--root", type=Path, default=None,
                        help="book root holding _config.yml and _toc.yml (default: found from cwd)")
        sp.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    def add_execute(sp, with_out: bool):
        sp.add_argument("--profile", default="default",
                        help="params/<profile>.yaml (default: default)")
        sp.add_argument("--only", action="append", default=None, metavar="NN",
                        help="only these chapters: number (02) or stem; repeat or comma-separate")
        if with_out:
            sp.add_argument("--out", type=Path, default=None,
                            help="folder for executed notebooks (default: book/_executed)")
        sp.add_argument("--notebooks", type=Path, default=None,
                        help="folder with NN_<name>.py sources (default: notebooks)")
        sp.add_argument("--params-dir", type=Path, default=None,
                        help="folder with <profile>.yaml files (default: params)")
        sp.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one parameter of the profile (value parsed as YAML)")
        sp.add_argument("--kernel", default=KERNEL_NAME,
                        help="Jupyter kernel name (default: python3)")
        sp.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")

    def add_build(sp, strict_default: bool):
        if strict_default:
            sp.add_argument("--no-strict", dest="strict", action="store_false",
                            help="do not turn warnings into errors")
        else:
            sp.add_argument("--strict", action="store_true",
                            help="-W -n --keep-going --all: every warning is an error")
        sp.add_argument("--builder", default="html")
        sp.add_argument("--path-output", type=Path, default=None,
                        help="put _build/ under this folder (default: the book root)")

    sp = sub.add_parser("execute", help="execute notebooks with papermill")
    add_root(sp)
    add_execute(sp, with_out=True)
    sp = sub.add_parser("build", help="build the book from executed notebooks")
    add_root(sp)
    add_build(sp, strict_default=False)
    sp = sub.add_parser("mathjax", help="vendor MathJax from npm into book/_static/mathjax")
    add_root(sp)
    sp.add_argument("--version", default=MATHJAX_VERSION,
                    help=f"mathjax version ({MATHJAX_VERSION})")
    sp.add_argument("--force", action="store_true", help="re-install even if present")
    sp = sub.add_parser("all", help="execute every notebook, build strictly, print index.html")
    add_root(sp)
    add_execute(sp, with_out=False)  # the build reads book/_executed, as _toc.yml says
    add_build(sp, strict_default=True)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    root = Path(args.root).resolve() if args.root else find_root()
    try:
        if args.command == "mathjax":
            print(vendor_mathjax(root, version=args.version, force=args.force))
            return 0
        if args.command in ("execute", "all"):
            execute(
                profile=args.profile, only=args.only, out=getattr(args, "out", None),
                notebooks=args.notebooks,
                params_dir=args.params_dir, overrides=args.overrides, root=root,
                kernel_name=args.kernel, timeout=args.timeout,
            )
        if args.command in ("build", "all"):
            index = build(root, strict=args.strict, builder=args.builder,
                          path_output=args.path_output)
            print(index.resolve())
    except BookError as err:
        log.error("%s", err)
        return 1
    except subprocess.CalledProcessError as err:
        log.error("command failed (exit %s): %s", err.returncode, " ".join(map(str, err.cmd)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
