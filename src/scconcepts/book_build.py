"""The Jupyter Book build of :mod:`scconcepts.book`: MathJax vendoring (npm, once), the checks
that every chapter listed in ``_toc.yml`` exists, and ``jupyter-book build``.

:mod:`scconcepts.book` re-exports every name here; its command line is unchanged
(``python -m scconcepts.book build [--strict]``, ``python -m scconcepts.book mathjax``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

log = logging.getLogger("scconcepts.book")

__all__ = [
    "MATHJAX_VERSION",
    "MATHJAX_DIR",
    "MATHJAX_ENTRY",
    "MATHJAX_PARTS",
    "BookError",
    "find_root",
    "mathjax_vendored",
    "vendor_mathjax",
    "check_sources",
    "stale_chapters",
    "CHAPTER_LIST",
    "chapter_list",
    "write_chapter_list",
    "jupyter_book_command",
    "build",
]

#: MathJax is vendored (``python -m scconcepts.book mathjax``, run by ``make``) from the npm
#: package into this git-ignored folder; ``mathjax_path`` in ``_config.yml`` points to it.
MATHJAX_VERSION = "3.2.2"
MATHJAX_DIR = Path("book/_static/mathjax")
MATHJAX_ENTRY = "tex-mml-chtml.js"
#: Parts of ``mathjax/es5`` the browser may load: the combined component, the CHTML fonts, the
#: TeX/MathML extensions it autoloads, and the menu's accessibility and speech modules (with
#: their local locale files, so that SRE never falls back to its CDN).
MATHJAX_PARTS = (
    MATHJAX_ENTRY,
    "output/chtml/fonts/woff-v2",
    "input/tex/extensions",
    "input/mml/extensions",
    "a11y",
    "ui",
    "sre",
)


class BookError(RuntimeError):
    """A failure the user can act on; the message says what to do.

    ``exit_code`` is the runner's exit status for it (documented in :mod:`scconcepts.book`):
    1 a chapter failed in a cell (or the build failed), 3 the profile or an input is unusable
    (nothing was started), 4 a chapter ran past ``--timeout``.
    """

    exit_code = 1


class InputError(BookError):
    """The profile, the artefacts folder or an input is unusable; no kernel was started."""

    exit_code = 3


class ChapterTimeout(BookError):
    """A chapter's cell ran longer than the per-cell ``--timeout``."""

    exit_code = 4


def find_root(start: Path | None = None) -> Path:
    """The book root: the first folder from ``start`` (default: cwd) upwards with ``_toc.yml``,
    else the repository that holds this file (editable install), else the cwd."""
    start = Path(start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "_toc.yml").is_file() and (folder / "_config.yml").is_file():
            return folder
    here = Path(__file__).resolve().parents[2]
    if (here / "_toc.yml").is_file():
        return here
    return start


# --------------------------------------------------------------------------------------------
# MathJax
# --------------------------------------------------------------------------------------------


def mathjax_vendored(root: Path, version: str = MATHJAX_VERSION) -> bool:
    stamp = Path(root) / MATHJAX_DIR / "VERSION"
    return stamp.is_file() and stamp.read_text().strip() == version


def vendor_mathjax(root: Path | None = None, version: str = MATHJAX_VERSION,
                   force: bool = False) -> Path:
    """Install ``mathjax@version`` with npm and copy what the pages load into book/_static.

    Needs only the npm registry (or npm's cache). The ``VERSION`` file is written last, so an
    interrupted copy is redone on the next call.
    """
    root = Path(root or find_root()).resolve()
    dest = root / MATHJAX_DIR
    if not force and mathjax_vendored(root, version):
        log.info("MathJax %s already vendored in %s", version, dest)
        return dest
    npm = shutil.which("npm")
    if npm is None:
        raise BookError(
            "npm is needed once to vendor MathJax (the book loads nothing from a CDN): install "
            "Node.js/npm, or copy mathjax@3 es5/ files into book/_static/mathjax by hand"
        )
    with tempfile.TemporaryDirectory(prefix="scconcepts-mathjax-") as tmp:
        log.info("npm install mathjax@%s", version)
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--no-save", "--loglevel=error",
             "--prefix", tmp, f"mathjax@{version}"],
            check=True, stdout=subprocess.DEVNULL,
        )
        pkg = Path(tmp) / "node_modules" / "mathjax"
        es5 = pkg / "es5"
        staging = Path(tmp) / "staging"
        for part in MATHJAX_PARTS:
            src, dst = es5 / part, staging / part
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst)
            else:
                shutil.copy2(src, dst)
        shutil.copy2(pkg / "LICENSE", staging / "LICENSE")
        (staging / "PROVENANCE.txt").write_text(
            f"MathJax {version} (Apache License 2.0, see LICENSE), npm package mathjax@{version},\n"
            f"files from its es5/ folder: {', '.join(MATHJAX_PARTS)}.\n"
            "Copied by `python -m scconcepts.book mathjax` (make mathjax); not tracked by git.\n"
        )
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(staging, dest)
    (dest / "VERSION").write_text(version + "\n")
    log.info("MathJax %s vendored in %s", version, dest)
    return dest


# --------------------------------------------------------------------------------------------
# build
# --------------------------------------------------------------------------------------------


def _toc_files(toc: dict) -> list[str]:
    files: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(str(node["file"]))
            for key in ("root",):
                if key in node:
                    files.append(str(node[key]))
            for key in ("chapters", "sections", "parts"):
                for child in node.get(key, []) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(toc)
    return files


def check_sources(root: Path) -> None:
    """Fail early, with what to run, when MathJax or an executed chapter is missing."""
    root = Path(root)
    if not mathjax_vendored(root):
        raise BookError(
            f"MathJax {MATHJAX_VERSION} is not vendored in {root / MATHJAX_DIR}: run "
            "`make mathjax` or `python -m scconcepts.book mathjax` (needs npm once)"
        )
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    missing = []
    for entry in _toc_files(toc):
        stem = root / entry
        if not any(stem.with_name(stem.name + ext).is_file() for ext in ("", ".md", ".ipynb")):
            missing.append(entry)
    if missing:
        hint = (
            "; execute the notebooks first: python -m scconcepts.book execute --profile default"
            if any("_executed" in m for m in missing)
            else ""
        )
        raise BookError("files listed in _toc.yml are missing: " + ", ".join(missing) + hint)


#: The intro's chapter list, written by :func:`write_chapter_list` before every build and
#: included by ``book/intro.md`` (git-ignored: it is generated from the book's contents).
CHAPTER_LIST = Path("book/_generated/chapters.md")


def _numbered_chapters(toc: dict) -> list[str]:
    """The files of the numbered parts of ``_toc.yml``, in order (the chapters 1, 2, …)."""
    return [f for part in toc.get("parts", []) if part.get("numbered")
            for f in _toc_files({"chapters": part.get("chapters", [])})]


def chapter_list(root: Path) -> list[dict]:
    """Number, title, link and summary of every numbered chapter, from the book's contents.

    The title is the first ``# `` heading of the chapter's source ``notebooks/<stem>.py`` (else
    of the Markdown page or executed notebook the toc names); the summary is the metadata
    ``scconcepts.summary`` (the jupytext header of ``notebooks/<stem>.py``, or a Markdown page's
    YAML front matter).

    Raises
    ------
    BookError
        When a chapter has no title or no summary (the intro would list it without one).
    """
    import jupytext

    root = Path(root)
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    rows = []
    for number, entry in enumerate(_numbered_chapters(toc), start=1):
        stem = Path(entry).name
        source = root / "notebooks" / f"{stem}.py"  # the chapter's source: what gets executed
        if not source.is_file():
            source = next((p for p in (root / f"{entry}.md", root / f"{entry}.ipynb")
                           if p.is_file()), root / f"{entry}.ipynb")
        if source.suffix == ".md":  # a Markdown page: YAML front matter, then the text
            text = source.read_text()
            front = text.split("---", 2)[1] if text.startswith("---") else ""
            meta = yaml.safe_load(front) or {}
            lines = text.splitlines()
        else:
            nb = jupytext.read(source)
            meta = nb.metadata
            lines = [line for cell in nb.cells if cell.cell_type == "markdown"
                     for line in cell.source.splitlines()]
        title = next((line[2:].strip() for line in lines if line.startswith("# ")), None)
        summary = meta.get("scconcepts", {}).get("summary")
        if not title or not summary:
            raise BookError(f"{source}: a chapter needs a '# ' title and a `scconcepts: summary:` "
                            "entry in its jupytext header (the intro lists both)")
        rows.append({"number": number, "title": title, "doc": "/" + entry,
                     "summary": " ".join(str(summary).split())})
    return rows


def write_chapter_list(root: Path) -> Path:
    """Write :data:`CHAPTER_LIST` (a MyST numbered list of linked chapters) atomically."""
    root = Path(root)
    lines = [f"{r['number']}. {{doc}}`{r['title']} <{r['doc']}>` — {r['summary']}"
             for r in chapter_list(root)]
    out = root / CHAPTER_LIST
    out.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    if not out.is_file() or out.read_text() != text:  # unchanged file: no rebuild of the intro
        tmp = out.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(out)
    return out


def stale_chapters(root: Path) -> list[str]:
    """Executed chapters older than their ``notebooks/<stem>.py`` source."""
    root = Path(root)
    stale = []
    for executed in sorted((root / "book" / "_executed").glob("[0-9][0-9]_*.ipynb")):
        source = root / "notebooks" / f"{executed.stem}.py"
        if source.is_file() and source.stat().st_mtime > executed.stat().st_mtime:
            stale.append(executed.stem)
    return stale


def jupyter_book_command() -> list[str]:
    exe = Path(sys.executable).with_name("jupyter-book")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("jupyter-book")
    if found:
        return [found]
    return [sys.executable, "-c", "from jupyter_book.cli.main import main; main()"]


def build(
    root: Path | None = None,
    strict: bool = False,
    builder: str = "html",
    path_output: Path | None = None,
    all_pages: bool = False,
) -> Path:
    """``jupyter-book build`` of the book at ``root``; returns ``_build/html/index.html``.

    ``strict`` turns warnings (including nitpicky missing references) into errors and rebuilds
    every page, so no warning is hidden by an incremental build.
    """
    root = Path(root or find_root()).resolve()
    if not mathjax_vendored(root) and shutil.which("npm"):
        vendor_mathjax(root)
    out_root = Path(path_output).resolve() if path_output is not None else root
    write_chapter_list(root)
    index = out_root / "_build" / builder / "index.html"
    stamp = out_root / "_build" / f".scconcepts-{builder}.json"
    digest = build_inputs_digest(root, [builder, strict, all_pages])
    if index.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
        log.info("book sources and executed notebooks unchanged since the last build: %s", index)
        return index
    stamp.unlink(missing_ok=True)
    check_sources(root)
    stale = stale_chapters(root)
    if stale:
        log.warning(
            "building from executed notebooks older than their source: %s (re-run "
            "`python -m scconcepts.book execute --only NN` to refresh them)", ", ".join(stale)
        )
    cmd = jupyter_book_command() + ["build", str(root), "--builder", builder]
    if path_output is not None:
        cmd += ["--path-output", str(path_output)]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    if strict or all_pages:
        cmd += ["--all"]
    log.info("building: %s", " ".join(cmd))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root)
    if proc.returncode != 0:
        raise BookError(
            f"jupyter-book build failed (exit {proc.returncode})"
            + (" — strict mode: every Sphinx warning above is an error" if strict else "")
        )
    log.info("built in %.1f s: %s", time.perf_counter() - t0, index)
    stamp.write_text(digest)
    return index


def build_inputs_digest(root: Path, options: list) -> str:
    """SHA-1 of everything a build reads: ``_config.yml``, ``_toc.yml``, the files under
    ``book/`` (executed notebooks, pages, figures; vendored MathJax by its version file), the
    package (Sphinx extensions, viewer assets) and the build options. Equal digest → the last
    build's HTML is still right and :func:`build` reuses it."""
    from .book_cache import package_digest

    root = Path(root)
    h = hashlib.sha1(json.dumps([str(o) for o in options]).encode())
    h.update(package_digest().encode())
    files = [root / "_config.yml", root / "_toc.yml"]
    files += sorted(p for p in (root / "book").rglob("*")
                    if p.is_file() and not p.relative_to(root).as_posix().startswith(MATHJAX_DIR.as_posix())
                    and not p.name.startswith(".") and not p.name.endswith(".failed.ipynb"))
    mj = root / MATHJAX_DIR / "VERSION"
    for p in [*files, mj]:
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()
