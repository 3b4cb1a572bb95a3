"""Execute the book's notebooks with papermill and build the Jupyter Book.

The notebooks in ``notebooks/NN_<name>.py`` (jupytext py:percent) are the only source of the
chapters. This runner converts each one in memory to ``.ipynb``, executes it with papermill
(parameters ``profile`` and ``params``, the validated overrides of ``params/<profile>.yaml``) and writes
the executed notebook to ``book/_executed/<stem>.ipynb``, which ``_toc.yml`` points to. Jupyter
Book never executes anything itself (``execute_notebooks: "off"`` in ``_config.yml``).

A chapter is executed only when something it read changed: its notebook, the package, a library
version, a profile value it read or an input file it hashed (:mod:`scconcepts.book_cache`, from
the trace each kernel writes, :mod:`scconcepts.trace`); otherwise its executed notebook is
reused, and an unchanged book is not rebuilt either. Chapters run two at a time in worker
processes (``--jobs``), each kernel with its share of the cores; they share the artefact store,
whose per-artefact locks make a chapter wait for an input another one is computing.

Command line::

    python -m scconcepts.book execute --profile default [--only 02] [--out book/_executed]
                                       [--jobs 2] [--force] [--keep-going]
    python -m scconcepts.book build [--strict]
    python -m scconcepts.book all --profile default      # execute, strict build, print index.html

Exit status: 0 success; 1 a chapter failed in a cell (the message names the notebook, the cell,
the exception and where the partially executed notebook is kept) or the build failed; 2 a
command-line usage error; 3 the profile, the artefacts folder or an input is unusable (found
before any kernel starts); 4 a chapter ran past ``--timeout`` (per cell); 130 interrupted
(Ctrl-C). With ``--keep-going`` the status is the highest of the failed chapters'.

``python -m scconcepts.book mathjax`` vendors MathJax (npm, once). ``--notebooks DIR`` and
``--params-dir DIR`` redirect the sources (tests use them); ``--set key=value`` overrides one
parameter of the profile (dotted key, value parsed as YAML; see :mod:`scconcepts.config`); the
profile is validated before any kernel starts. MathJax vendoring and the Jupyter Book build live
in :mod:`scconcepts.book_build` and are re-exported here.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

from . import book_cache, trace
from .book_kernel import (  # noqa: F401  (re-exported: kernels and one notebook's execution)
    HIDE_TAG,
    KERNEL_ENV,
    KERNEL_NAME,
    PARAMETER_TAGS,
    NotebookRun,
    _same_python,
    execute_one,
    hide_parameter_cells,
    kernel_environment,
    prepare_kernel_env,
    scoped_environ,
)
from .book_build import (  # noqa: F401  (re-exported: the build half of this module)
    MATHJAX_DIR,
    MATHJAX_ENTRY,
    MATHJAX_PARTS,
    MATHJAX_VERSION,
    BookError,
    ChapterTimeout,
    InputError,
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
        raise InputError(f"no notebooks matching {NOTEBOOK_GLOB!r} in {notebooks_dir}")
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
            raise InputError(f"--only {w!r} matches no notebook (have: {names})")
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
        raise InputError(str(err)) from None
    return {"params": cfg.overrides, "cfg": cfg}


def _chapter_env(trace_file: Path, params_dir: Path, threads: int | None) -> dict[str, str]:
    """Environment of one chapter's kernel: its trace file, the profiles, BLAS/OpenMP threads."""
    env = {trace.ENV: str(trace_file), "SCCONCEPTS_PARAMS_DIR": str(params_dir)}
    if threads:
        # numpy/scipy BLAS, OpenMP and numba (UMAP, pynndescent) threads, as many as torch's
        # (the profile's torch_threads): every step runs on a fixed number of threads
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS"):
            env[var] = str(threads)
    return env


def _run_chapter(src: Path, out: Path, profile: str, params: dict, root: Path, params_dir: Path,
                 kernel_name: str, progress_bar: bool, timeout: int | None,
                 threads: int | None) -> NotebookRun:
    """Execute one chapter with its trace; on success record its inputs (book_cache.write).

    Runs in the runner's process (``jobs=1``) or in a worker process of the chapter pool; the
    environment it sets is restored after.
    """
    from .config import load_config

    tfile = book_cache.trace_path(out, src.stem)
    out.mkdir(parents=True, exist_ok=True)
    tfile.unlink(missing_ok=True)
    book_cache.fingerprint_path(out, src.stem).unlink(missing_ok=True)
    with scoped_environ(_chapter_env(tfile, params_dir, threads)):
        run = execute_one(src, out, profile, params, cwd=root, kernel_name=kernel_name,
                          progress_bar=progress_bar, timeout=timeout)
    book_cache.write(out, src, profile, load_config(profile, params, params_dir=params_dir))
    return run


def plan(sources: Sequence[Path], out: Path, profile: str, cfg,
         force: bool = False) -> tuple[list[Path], dict[str, str]]:
    """(chapters to execute, {stem: why} for them); the others are reused unchanged.

    The chapters to execute come in chapter order, except that those whose notebook metadata
    says ``scconcepts: {start_first: true}`` come first: they share no artefact with the other
    chapters (chapter 12 trains its own models), so they fill a core while the next chapters
    wait for chapter 01's models. The order changes only the wall time, never a result.
    """
    import jupytext

    todo, why = [], {}
    for src in sources:
        fresh, reason = (False, "--force") if force else book_cache.is_fresh(out, src, profile, cfg)
        if not fresh:
            todo.append(src)
            why[src.stem] = reason
    first = {src for src in todo
             if jupytext.read(src).metadata.get("scconcepts", {}).get("start_first")}
    return sorted(todo, key=lambda p: (p not in first, p.name)), why


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
    jobs: int | None = None,
    force: bool = False,
    keep_going: bool = False,
) -> list[NotebookRun]:
    """Execute the selected notebooks whose inputs changed; stop at the first failure.

    A chapter whose notebook, package, libraries and every profile value and input file it read
    are unchanged since its last successful run is reused (:mod:`scconcepts.book_cache`);
    ``force`` re-runs every selected chapter; ``keep_going`` executes the other chapters after a
    failure (then raises naming every failed one). ``jobs`` chapters run side by side in worker
    processes (default: one per core, at most 2 per 2 cores); they share the artefact store,
    whose per-artefact locks let a chapter wait for an input another chapter is computing.
    Chapters never read each other's notebooks, so the results do not depend on ``jobs``
    (``tests/test_book.py`` compares a parallel and a serial smoke run).
    """
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
            raise InputError(str(err)) from err
    from .store import StoreError, prepare_root

    try:  # an unwritable or full artefacts folder fails here, before any kernel starts
        prepare_root(cfg.artifacts)
    except StoreError as err:
        raise InputError(str(err)) from err
    todo, why = plan(sources, out, profile, cfg, force)
    for src in sources:
        if src not in todo:
            log.info("   %s unchanged (notebook, package, parameters and inputs it read): "
                     "reused", src.stem)
            os.utime(out / f"{src.stem}.ipynb")  # newer than its source for stale_chapters
    if not todo:
        log.info("nothing to execute: %d chapter(s) reused", len(sources))
        return []
    python = prepare_kernel_env(kernel_name)
    cores = os.cpu_count() or 1
    jobs = max(1, min(int(jobs or min(cores, 2)), len(todo)))
    # BLAS/OpenMP threads of a kernel: the profile's torch_threads, else its share of the cores
    # (fixed by the profile, so results do not depend on --jobs)
    threads = int(cfg.torch_threads or max(1, cores // jobs))
    log.info(
        "executing %d notebook(s) with profile %r (kernel %s -> %s, %d at a time) into %s",
        len(todo), profile, kernel_name, python, jobs, out,
    )
    for src in todo:
        log.info("   %s: %s", src.stem, why[src.stem])
    interactive = sys.stderr.isatty()
    args = dict(out=out, profile=profile, params=params, root=root, params_dir=params_dir,
                kernel_name=kernel_name, timeout=timeout, threads=threads)
    runs: list[NotebookRun] = []
    bar = tqdm(total=len(todo), desc=f"notebooks [{profile}]", unit="nb", disable=not interactive)
    failed: dict[str, BookError] = {}
    if jobs == 1:
        for src in todo:
            bar.set_postfix_str(src.stem)
            log.info("-> %s", src.name)
            try:
                run = _run_chapter(src, progress_bar=interactive, **args)
            except BookError as err:
                if not keep_going:
                    raise
                log.error("%s", err)
                failed[src.stem] = err
                continue
            finally:
                bar.update()
            log.info("   %s done in %.1f s -> %s", src.stem, run.seconds, run.output)
            runs.append(run)
    else:
        runs = _execute_parallel(todo, jobs, args, bar, keep_going, failed)
    if failed:
        summary = BookError(f"{len(failed)} chapter(s) failed: {', '.join(sorted(failed))}")
        summary.exit_code = max(e.exit_code for e in failed.values())  # 4 if one timed out
        raise summary
    log.info("executed %d notebook(s) in %.1f s of kernel time", len(runs),
             sum(r.seconds for r in runs))
    return runs


def _execute_parallel(todo: list[Path], jobs: int, args: dict, bar, keep_going: bool,
                      failed: dict[str, BookError]) -> list[NotebookRun]:
    """Chapters in a pool of ``jobs`` worker processes (spawned: no inherited threads), started
    in chapter order; the first failure cancels the chapters not yet started unless
    ``keep_going`` (then each failure is logged and put in ``failed``)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    runs: list[NotebookRun] = []
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = {pool.submit(_run_chapter, src, progress_bar=False, **args): src
                   for src in todo}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                err = fut.exception()
                if err is not None and keep_going and isinstance(err, BookError):
                    log.error("%s", err)
                    failed[futures[fut].stem] = err
                    bar.update()
                    continue
                if err is not None:
                    for other in pending:
                        other.cancel()
                    wait(pending)
                    raise err
                run = fut.result()
                log.info("   %s done in %.1f s -> %s", run.source.stem, run.seconds, run.output)
                runs.append(run)
                bar.update()
    return sorted(runs, key=lambda r: r.source.stem)


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m scconcepts.book",
        description="Execute the scconcepts notebooks with papermill and build the Jupyter Book.",
        epilog="exit status: 0 ok, 1 a chapter (cell) or the build failed, 2 usage error, "
               "3 unusable profile, artefacts folder or input (nothing started), 4 a cell ran "
               "past --timeout, 130 interrupted",
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
        sp.add_argument("--jobs", "-j", type=int, default=None,
                        help="chapters executed side by side (default: one per core, at most 2)")
        sp.add_argument("--force", action="store_true",
                        help="re-execute even the chapters whose inputs did not change")
        sp.add_argument("--keep-going", action="store_true",
                        help="after a failed chapter, execute the others (exit 1 at the end)")

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
                kernel_name=args.kernel, timeout=args.timeout, jobs=args.jobs,
                force=args.force, keep_going=args.keep_going,
            )
        if args.command in ("build", "all"):
            index = build(root, strict=args.strict, builder=args.builder,
                          path_output=args.path_output)
            print(index.resolve())
    except BookError as err:
        log.error("%s", err)
        return err.exit_code
    except subprocess.CalledProcessError as err:
        log.error("command failed (exit %s): %s", err.returncode, " ".join(map(str, err.cmd)))
        return 1
    except KeyboardInterrupt:
        log.error("interrupted: finished artefacts and chapters are kept; run the same command "
                  "again to resume")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
