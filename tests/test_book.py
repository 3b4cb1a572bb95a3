"""The book end to end: every notebook executes with the ``smoke`` profile through the runner,
the book builds strictly (no Sphinx warning), every chapter page holds its figures, and the
rendered HTML loads nothing from another host.

The executed notebooks and the built site live in temporary folders; the repository's
``book/_executed`` and ``_build`` are not touched. Artifacts of the smoke run go to a temporary
folder too (``--set artifacts_dir=...``), so the run proves the chapters work from scratch.

``SCCONCEPTS_BOOK_NOTEBOOKS`` / ``SCCONCEPTS_BOOK_PARAMS`` point the tests at other notebook
and profile folders (used to develop the runner before the chapters existed).
"""

from __future__ import annotations

import os
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest
import yaml
from test_faults import glued

from scconcepts import book as runner

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = Path(os.environ.get("SCCONCEPTS_BOOK_NOTEBOOKS", ROOT / "notebooks"))
PARAMS = Path(os.environ.get("SCCONCEPTS_BOOK_PARAMS", ROOT / "params"))
PROFILE = "smoke"
SOURCES = sorted(NOTEBOOKS.glob(runner.NOTEBOOK_GLOB))
STEMS = [p.stem for p in SOURCES]

REMOTE = re.compile(r"^\s*(https?:)?//", re.I)


# --------------------------------------------------------------------------------------------
# fast unit tests of the runner
# --------------------------------------------------------------------------------------------


def _write_percent(path: Path, body: str) -> Path:
    header = (
        "# %% tags=[\"parameters\"]\n"
        "profile = \"default\"\n"
        "params = {}\n\n"
    )
    path.write_text(header + body)
    return path


def test_discover_and_only(tmp_path):
    for name in ("02_b.py", "01_a.py", "10_c.py", "notes.py", "1_x.py"):
        (tmp_path / name).write_text("")
    names = [p.name for p in runner.discover_notebooks(tmp_path)]
    assert names == ["01_a.py", "02_b.py", "10_c.py"]
    assert [p.name for p in runner.discover_notebooks(tmp_path, ["2"])] == ["02_b.py"]
    names = [p.name for p in runner.discover_notebooks(tmp_path, ["10,01_a"])]
    assert names == ["01_a.py", "10_c.py"]
    with pytest.raises(runner.BookError, match="matches no notebook"):
        runner.discover_notebooks(tmp_path, ["03"])


def test_load_params_and_overrides(tmp_path):
    (tmp_path / "default.yaml").write_text((PARAMS / "default.yaml").read_text())
    (tmp_path / "p.yaml").write_text("extends: default\nseed: 1\n")
    got = runner.load_params("p", tmp_path, ["seed=2", "main_dataset=x.h5ad",
                                             "models.scvi.grid=[[10, 2]]", "models.scvi.c=10",
                                             "models.scvi.k=2"])
    assert got["params"] == {"seed": 2, "data.main.dataset": "x.h5ad",
                             "models.scvi.grid": [[10, 2]], "models.scvi.c": 10,
                             "models.scvi.k": 2}
    assert got["cfg"].seed == 2 and got["cfg"].data.main.dataset == "x.h5ad"
    with pytest.raises(runner.BookError, match="available"):
        runner.load_params("nope", tmp_path)
    with pytest.raises(runner.BookError, match="key=value"):
        runner.load_params("p", tmp_path, ["novalue"])
    with pytest.raises(runner.BookError, match="sae.epochs"):
        runner.load_params("p", tmp_path, ["sae.epoch=3"])


def test_kernel_is_this_interpreter():
    before = dict(os.environ)
    exe = runner.prepare_kernel_env()
    assert runner._same_python(exe, sys.executable)
    assert dict(os.environ) == before  # the kernel environment does not leak into the caller


def test_execute_one_injects_params_and_hides_parameter_cells(tmp_path):
    src = _write_percent(
        tmp_path / "01_probe.py",
        "# %%\nimport os, sys\nprint(sys.executable)\nprint(profile, params['x'], os.getcwd())\n",
    )
    runner.prepare_kernel_env()
    run = runner.execute_one(src, tmp_path / "out", "probe", {"x": 42}, cwd=ROOT)
    nb = nbformat.read(run.output, as_version=4)
    tagged = [c.metadata.get("tags", []) for c in nb.cells]
    assert any("injected-parameters" in t for t in tagged)
    for tags in tagged:
        if "parameters" in tags or "injected-parameters" in tags:
            assert "remove-cell" in tags
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    exe, rest = text.splitlines()[:2]
    assert runner._same_python(exe, sys.executable), exe
    assert rest == f"probe 42 {ROOT}"


def test_execute_one_failure_keeps_partial_notebook(tmp_path):
    src = _write_percent(
        tmp_path / "07_fails.py", "# %%\nx = 1\n\n# %%\nraise ValueError('boom')\n"
    )
    out = tmp_path / "out"
    out.mkdir()
    (out / "07_fails.ipynb").write_text("stale")
    runner.prepare_kernel_env()
    with pytest.raises(runner.BookError, match=r"07_fails\.py failed .*ValueError: boom"):
        runner.execute_one(src, out, "probe", {}, cwd=ROOT)
    assert not (out / "07_fails.ipynb").exists()  # no stale chapter for the build
    partial = nbformat.read(out / "07_fails.failed.ipynb", as_version=4)
    assert any(o.get("ename") == "ValueError" for c in partial.cells for o in c.get("outputs", []))


def test_exit_status_names_a_timeout_a_failed_cell_and_a_bad_profile(tmp_path, caplog):
    """The runner's documented exit codes: 4 a cell ran past --timeout (named, partial notebook
    kept), 1 a cell raised, 3 an unusable profile (before any kernel starts), 2 usage."""
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _write_percent(nbs / "01_slow.py", "# %%\nimport time\n\n# %%\ntime.sleep(60)\n")
    _write_percent(nbs / "02_fails.py", "# %%\nraise ValueError('boom')\n")
    base = ["execute", "--profile", "smoke", "--notebooks", str(nbs), "--root", str(ROOT),
            "--out", str(tmp_path / "out"), "--jobs", "1",
            "--set", f"artifacts_dir={tmp_path / 'art'}"]
    with caplog.at_level("ERROR"):
        assert runner.main(base + ["--only", "01", "--timeout", "2"]) == 4
    assert "01_slow.py timed out: cell [4] ran longer than the per-cell timeout of 2 s" in caplog.text
    assert (tmp_path / "out" / "01_slow.failed.ipynb").is_file()
    caplog.clear()
    with caplog.at_level("ERROR"):
        assert runner.main(base + ["--only", "02"]) == 1
    assert "02_fails.py failed in cell [3]" in caplog.text and "ValueError: boom" in caplog.text
    caplog.clear()
    with caplog.at_level("ERROR"):
        assert runner.main(base + ["--only", "02", "--set", "sae.epochs=many"]) == 3
    assert "sae.epochs" in caplog.text
    with pytest.raises(SystemExit) as exit_:
        runner.main(["execute", "--no-such-flag"])
    assert exit_.value.code == 2


def test_toc_lists_every_notebook_and_config_is_offline():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = runner._toc_files(toc)
    for stem in [p.stem for p in sorted((ROOT / "notebooks").glob(runner.NOTEBOOK_GLOB))]:
        assert f"book/_executed/{stem}" in files, f"{stem} missing from _toc.yml"
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off"
    sphinx = config["sphinx"]["config"]
    assert not REMOTE.match(sphinx["mathjax_path"])
    assert sphinx["nb_ipywidgets_js"] == {}
    assert "sphinx_thebe" not in sphinx["extensions"]


# --------------------------------------------------------------------------------------------
# smoke execution of every notebook + strict build
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def executed(smoke_book):
    """(out_dir, {stem: error}) of the smoke execution (session fixture in conftest.py, shared
    with the browser tests)."""
    if not SOURCES:
        pytest.skip(f"no notebooks in {NOTEBOOKS}")
    return smoke_book.out, smoke_book.errors


@pytest.fixture(scope="module")
def site(smoke_site):
    """The strictly built smoke book (session fixture in conftest.py)."""
    return smoke_site


@pytest.mark.slow
@pytest.mark.parametrize("stem", STEMS)
def test_notebook_executes_with_smoke_profile(executed, stem):
    out, errors = executed
    assert stem not in errors, f"{stem} failed:\n{errors[stem]}"
    nb = nbformat.read(out / f"{stem}.ipynb", as_version=4)
    assert nb.metadata["papermill"]["parameters"]["profile"] == PROFILE
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            assert output.get("output_type") != "error", f"{stem}: error output"


@pytest.mark.slow
def test_strict_build_has_no_warnings(site):
    proc = site["proc"]
    log = proc.stdout + proc.stderr
    warnings = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
    assert proc.returncode == 0 and not warnings, (
        "\n".join(warnings) + "\n--- end of the build log ---\n" + log[-2000:]
    )
    assert (site["html"] / "index.html").is_file()


class _Resources(HTMLParser):
    """Collect what a page *loads*: script/img/iframe/... sources, <link> targets, inline
    script bodies and inline style url()s; also every <img> src."""

    LOAD_ATTRS = {
        "script": ("src",), "img": ("src", "srcset"), "iframe": ("src",), "link": ("href",),
        "source": ("src", "srcset"), "video": ("src", "poster"), "audio": ("src",),
        "embed": ("src",), "object": ("data",), "input": ("src",),
    }

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.loaded: list[tuple[str, str]] = []
        self.imgs: list[str] = []
        self.inline: list[str] = []
        self._in = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in self.LOAD_ATTRS.get(tag, ()):
            if attrs.get(name):
                self.loaded.append((tag, attrs[name]))
        if tag == "img" and attrs.get("src"):
            self.imgs.append(attrs["src"])
        if attrs.get("style"):
            self.inline.append(attrs["style"])
        self._in = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in in ("script", "style") and data.strip():
            self.inline.append(data)


def _parse(path: Path) -> _Resources:
    p = _Resources()
    p.feed(path.read_text(encoding="utf-8", errors="replace"))
    return p


CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)['"]?\s*\)|@import\s+['"]([^'"]+)['"]""", re.I)
INLINE_URL = re.compile(r"""['"(]\s*((?:https?:)?//[^'")\s]+)""", re.I)
NAMESPACES = ("http://www.w3.org/",)


def _css_remote_urls(css: str) -> list[str]:
    urls = [a or b for a, b in CSS_URL.findall(css)]
    return [u for u in urls if REMOTE.match(u)]


@pytest.mark.slow
def test_nothing_is_loaded_from_another_host(site):
    html_root = site["html"]
    assert html_root.is_dir(), "book not built"
    problems: list[str] = []
    css_loaded: set[Path] = set()
    for page in sorted(html_root.rglob("*.html")):
        res = _parse(page)
        rel = page.relative_to(html_root)
        for tag, url in res.loaded:
            for part in url.split(","):
                u = part.strip().split(" ")[0]
                if REMOTE.match(u):
                    problems.append(f"{rel}: <{tag}> loads {u}")
                elif tag == "link" and u.split("?")[0].endswith(".css"):
                    target = (page.parent / urlparse(u).path).resolve()
                    css_loaded.add(target)
        for body in res.inline:
            for u in INLINE_URL.findall(body) + _css_remote_urls(body):
                if not u.startswith(NAMESPACES):
                    problems.append(f"{rel}: inline script/style names {u}")
    for css in sorted(css_loaded):
        if css.is_file():
            for u in _css_remote_urls(css.read_text(encoding="utf-8", errors="replace")):
                problems.append(f"{css.relative_to(html_root)}: url({u})")
    assert not problems, "\n".join(problems[:50])


@pytest.mark.slow
def test_mathjax_is_vendored_in_the_site(site):
    html_root = site["html"]
    intro = html_root / "book" / "intro.html"
    scripts = [u for tag, u in _parse(intro).loaded if tag == "script" and "mathjax" in u.lower()]
    assert scripts, "intro page does not load MathJax"
    for u in scripts:
        target = (intro.parent / urlparse(u).path).resolve()
        assert target.is_file(), u
        fonts = target.parent / "output" / "chtml" / "fonts" / "woff-v2"
        assert any(fonts.glob("*.woff")), "MathJax CHTML fonts missing"


@pytest.mark.slow
@pytest.mark.parametrize("stem", STEMS)
def test_chapter_page_holds_its_figures(site, stem):
    page = site["html"] / "book" / "_executed" / f"{stem}.html"
    assert page.is_file(), f"{page} not built"
    res = _parse(page)
    assert res.imgs, f"{stem}: no <img> on the page"
    for src in res.imgs:
        if src.startswith("data:"):
            continue
        target = (page.parent / urlparse(src).path).resolve()
        assert target.is_file(), f"{stem}: image {src} missing"
    text = page.read_text(encoding="utf-8")
    assert "injected-parameters" not in text, f"{stem}: papermill's parameter cell is shown"


@pytest.mark.slow
def test_a_third_model_runs_through_chapters_02_to_05_with_no_code_edit(smoke_book, tmp_path):
    """Acceptance of issue 11: adding ``pca`` to the profile's models runs it through chapters
    02-05 (every chapter loops over the models; the PCA adapter is registered by its module)."""
    import subprocess

    if smoke_book.errors:
        pytest.skip("the smoke book failed; see test_notebook_executes_with_smoke_profile")
    out = tmp_path / "executed"
    cmd = [sys.executable, "-m", "scconcepts.book", "execute", "--profile", PROFILE,
           "--only", "02,03,04,05", "--out", str(out), "--notebooks", str(NOTEBOOKS),
           "--params-dir", str(PARAMS), "--root", str(ROOT),
           "--set", f"artifacts_dir={smoke_book.artifacts}",     # scVI/scGPT artefacts reused
           "--set", "models.pca.c=200", "--set", "models.pca.k=4"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    for stem in ("02_topk_saes", "03_concepts_and_metadata", "04_gene_attribution",
                 "05_pathway_enrichment"):
        nb = nbformat.read(out / f"{stem}.ipynb", as_version=4)
        names = {o.get("metadata", {}).get("scrapbook", {}).get("name")
                 for c in nb.cells for o in c.get("outputs", [])}
        assert any(k and "_pca_" in k for k in names), f"{stem}: no PCA result glued"


@pytest.mark.slow
def test_serial_run_glues_what_the_parallel_run_glued(smoke_book, tmp_path):
    """Issue 12: the smoke book ran two chapters at a time; chapters 02 and 03 executed again
    one at a time (on the same artefacts) glue exactly the same values and verdicts."""
    if smoke_book.errors:
        pytest.skip("the smoke book failed; see test_notebook_executes_with_smoke_profile")
    out = tmp_path / "serial"
    cmd = [sys.executable, "-m", "scconcepts.book", "execute", "--profile", PROFILE,
           "--only", "02,03", "--out", str(out), "--notebooks", str(NOTEBOOKS),
           "--params-dir", str(PARAMS), "--root", str(ROOT), "--jobs", "1",
           "--set", f"artifacts_dir={smoke_book.artifacts}"]
    import subprocess

    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    for stem in ("02_topk_saes", "03_concepts_and_metadata"):
        serial, parallel = glued(out / f"{stem}.ipynb"), glued(smoke_book.out / f"{stem}.ipynb")
        assert serial and serial == parallel, stem
