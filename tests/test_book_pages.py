"""Every page of the BUILT book read in headless Chromium at 1400 px, as a reader sees it.

By default the smoke book of this test session (``smoke_site``); set ``SCCONCEPTS_BOOK_SITE`` to
the ``_build/html`` folder of a built default book (``make book``) to check that one:

    SCCONCEPTS_BOOK_SITE=_build/html .venv/bin/pytest tests/test_book_pages.py

Each page fails on: a figure without a numbered caption or with a file path as its alt text, a
table wider than its container, a stale phrase, a profile parameter name in the prose, a chapter
named in the prose without a link, a link to a page or anchor that does not exist, or a console
error. Screenshots of every page go to ``test-artifacts/pages/`` (git-ignored).
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "pages"
WIDTH = 1400
#: pydata-sphinx-theme logs this on a first visit, when no theme mode is stored yet.
THEME_NOTICE = "Got invalid theme mode"
#: Phrases from earlier editions of the book that must not come back.
STALE = ("later edition", "not in this edition", "appears in this chapter only",
         "scgpt: later")
#: Pages that are about the parameters themselves (how to run; the API chapter).
PARAMETER_PAGES = ("intro", "12_your_own_data")

pytestmark = pytest.mark.slow


def _toc_pages() -> list[str]:
    from scconcepts.book_build import _toc_files

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return _toc_files(toc)


@functools.lru_cache(maxsize=1)
def _profile_keys() -> frozenset[str]:
    """Dotted keys of the default profile, with ``models.<model>.x`` generalised, and the flat
    names of earlier editions (``gsea_n_units``, ``scgpt_n_prototypes``)."""
    from scconcepts.config import load_config

    keys: set[str] = set()

    def walk(node, prefix=""):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        else:
            keys.add(prefix)

    walk(load_config("default", {}).model_dump())
    out = set(keys)
    for k in keys:
        parts = k.split(".")
        if parts[0] == "models" and len(parts) > 2:
            out |= {f"models.<{w}>.{'.'.join(parts[2:])}" for w in ("model", "name", "m")}
            out.add(f"{parts[1]}_{'_'.join(parts[2:])}")
        if len(parts) > 1:
            out.add("_".join(parts))
    return frozenset(k for k in out if "." in k or "_" in k)


@pytest.fixture(scope="module")
def site(request):
    env = os.environ.get("SCCONCEPTS_BOOK_SITE")
    if env:
        html = Path(env).resolve()
        assert (html / "index.html").is_file(), f"no built book at {html}"
        return html
    smoke_site = request.getfixturevalue("smoke_site")
    proc = smoke_site["proc"]
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return smoke_site["html"]


@pytest.fixture(scope="module")
def browser(chromium):
    driver = chromium(WIDTH, 1000)
    yield driver
    driver.quit()


# JavaScript run in the page: what a reader sees, measured by the browser's layout.
_AUDIT = r"""
const art = document.querySelector('article.bd-article') || document.body;
const out = {figures: [], tables: [], code: [], chapters: [], text: art.innerText,
             links: [], articleWidth: art.clientWidth};
const inViewer = el => el.closest('iframe, .uv-embed, .sc-viewer');
for (const img of art.querySelectorAll('img')) {
  if (inViewer(img) || img.closest('.navbar-brand, .logo')) continue;
  const fig = img.closest('figure');
  const cap = fig && fig.querySelector('figcaption');
  out.figures.push({src: img.getAttribute('src') || '', alt: img.getAttribute('alt') || '',
                    caption: cap ? cap.innerText.trim() : '',
                    number: !!(cap && cap.querySelector('.caption-number'))});
}
for (const t of art.querySelectorAll('table')) {
  if (inViewer(t)) continue;
  const box = t.parentElement;
  out.tables.push({width: Math.round(t.getBoundingClientRect().width),
                   container: Math.round(art.getBoundingClientRect().width),
                   head: (t.querySelector('tr') || t).innerText.slice(0, 80)});
}
// prose: paragraphs and list items outside code cells' outputs and inputs
const prose = [...art.querySelectorAll('p, li, td, dd')].filter(
  el => !el.closest('.cell_output, .cell_input, .output, pre, .highlight, figure, table.sc-table'));
for (const el of prose) {
  for (const c of el.querySelectorAll('code')) out.code.push(c.innerText.trim());
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  let n;
  while ((n = walker.nextNode())) {
    if (n.parentElement.closest('a, code')) continue;
    const m = n.textContent.match(/\b[Cc]hapters? \d{1,2}\b/g);
    if (m) out.chapters.push(...m.map(s => s + ' … ' + el.innerText.slice(0, 60)));
  }
}
for (const a of document.querySelectorAll('a[href]')) {
  const href = a.getAttribute('href');
  if (href && !href.startsWith('http') && !href.startsWith('mailto:') && !href.startsWith('data:')
      && !href.startsWith('javascript:')) out.links.push(href);
}
return out;
"""


def _check_links(page: Path, links: list[str], html_root: Path) -> list[str]:
    broken = []
    ids_cache: dict[Path, set[str]] = {}
    for href in links:
        parsed = urlparse(href)
        target = page if not parsed.path else (page.parent / unquote(parsed.path)).resolve()
        if not target.exists():
            broken.append(href)
            continue
        if parsed.fragment and target.suffix == ".html":
            if target not in ids_cache:
                ids_cache[target] = set(re.findall(r'id="([^"]+)"', target.read_text()))
            if unquote(parsed.fragment) not in ids_cache[target]:
                broken.append(href)
    return broken


@pytest.mark.parametrize("entry", _toc_pages())
def test_page_reads_cleanly(browser, site, entry):
    page = site / f"{entry}.html"
    assert page.is_file(), f"{entry} not built"
    name = Path(entry).name
    browser.get_log("browser")  # drain the previous page's entries
    browser.get(page.as_uri())
    audit = browser.execute_script(_AUDIT)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    problems = []
    for f in audit["figures"]:
        if not f["caption"] or not f["number"]:
            problems.append(f"figure without a numbered caption: {f['src'][-60:]}")
        if not f["alt"] or re.search(r"\.(png|svg|jpe?g)$", f["alt"]) or "/" in f["alt"]:
            problems.append(f"figure whose alt text is empty or a file path: {f['alt'][:60]!r}")
    for t in audit["tables"]:
        if t["width"] > t["container"] + 1:
            problems.append(f"table {t['width']} px wide in a {t['container']} px column: "
                            f"{t['head']!r}")
    text = audit["text"].lower()
    problems += [f"stale phrase {s!r}" for s in STALE if s in text]
    if name not in PARAMETER_PAGES:
        keys = _profile_keys()
        problems += [f"parameter name in prose: `{c}`" for c in audit["code"]
                     if c.split("=")[0].strip() in keys]
    problems += [f"chapter named without a link: {c!r}" for c in audit["chapters"]]
    problems += [f"broken link {h}" for h in _check_links(page, audit["links"], site)]
    errors = [e["message"] for e in browser.get_log("browser")
              if e["level"] == "SEVERE" and THEME_NOTICE not in e["message"]]
    problems += [f"console error: {e[:200]}" for e in errors]
    assert not problems, f"{entry}:\n  " + "\n  ".join(problems)


def test_one_search_box(browser, site):
    """One visible search control per page (the theme's header button), not two."""
    browser.get((site / "book" / "intro.html").as_uri())
    visible = browser.execute_script(
        "return [...document.querySelectorAll('.search-button-field, .search-button, "
        "input[type=search]')].filter(e => e.offsetParent !== null && "
        "!e.closest('dialog')).length")
    assert visible == 1, f"{visible} visible search controls"


def test_pipeline_figure_is_current():
    """The intro's figure names no stale edition and its chapter numbers match the toc."""
    svg = (ROOT / "book" / "figures" / "pipeline.svg").read_text().lower()
    assert not [s for s in STALE + ("dashed box", "later chapter") if s in svg]
    order = [Path(p).name for p in _toc_pages() if "_executed" in p]
    boxes = {"(a) metadata": "03_concepts_and_metadata", "(b) gene attribution":
             "04_gene_attribution", "(c) expert reading": "06_expert_interpretation",
             "(d) attribution gsea": "05_pathway_enrichment", "top-k sae": "02_topk_saes"}
    texts = re.findall(r">([^<]+)</text>", svg)
    for box, stem in boxes.items():
        i = texts.index(box) if box in texts else next(
            j for j, t in enumerate(texts) if t.startswith(box))
        chapter = next(t for t in texts[i:] if t.startswith("chapter "))
        assert chapter == f"chapter {order.index(stem) + 1}", (box, chapter)
