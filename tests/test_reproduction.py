"""The reproduction page (``book/reproduction.md``): every value on it is glued from a chapter.

* every ``{glue:text}`path::key:fmt``` role names an executed chapter and a key that chapter
  glued (read from the smoke-executed notebooks);
* the strictly built page shows, for every table row of the source, a number in the "this
  book" column and a computed verdict ("agrees", "disagrees" or "inconclusive", from
  :mod:`scconcepts.claims`) in the "agrees?" column, with no glue role left
  unresolved.

Both use the session smoke book of ``tests/conftest.py`` (executed and built once per session).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "reproduction.md"
ROLE = re.compile(r"\{glue:text\}`([^`]+)`")


def _roles(text: str) -> list[tuple[str, str, str]]:
    """(notebook path relative to book/, key, format) of every glue role of the page."""
    out = []
    for body in ROLE.findall(text):
        ref, fmt = body.rsplit(":", 1)
        doc, key = ref.split("::", 1)
        out.append((doc, key, fmt))
    return out


def _source_rows(text: str) -> list[str]:
    """Data rows of the page's tables (not headers or separators)."""
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    return [r for r in rows if not r.startswith("| chapter: claim")]


def _glued_keys(nb_path: Path) -> set[str]:
    nb = nbformat.read(nb_path, as_version=4)
    keys = set()
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                keys.add(name)
    return keys


def test_page_source_is_in_the_toc_and_uses_glue_only():
    text = PAGE.read_text(encoding="utf-8")
    assert "book/reproduction" in (ROOT / "_toc.yml").read_text()
    roles = _roles(text)
    assert len(roles) >= 40
    rows = _source_rows(text)
    assert len(rows) >= 30
    for row in rows:
        cells = [c.strip() for c in row.strip().strip("|").split(" | ")]
        assert len(cells) == 5, row
        # "this book", the evidence and "agrees?" hold glued values only, never typed numbers
        # or verdicts; the evidence is the verdict's own claim (same key)
        assert "{glue:text}" in cells[2], row
        agree = re.fullmatch(r"\{glue:text\}`([^`]+)_agree:s`", cells[4])
        assert agree, row
        assert cells[3] == f"{{glue:text}}`{agree.group(1)}_evidence:s`", row
        assert not re.search(r"\d", ROLE.sub("", cells[2])), row


@pytest.mark.slow
def test_every_glue_key_exists_in_its_chapter(smoke_book):
    if smoke_book.errors:
        pytest.fail(f"notebooks failed: {', '.join(smoke_book.errors)}")
    glued: dict[str, set[str]] = {}
    missing = []
    for doc, key, _ in _roles(PAGE.read_text(encoding="utf-8")):
        assert doc.startswith("_executed/") and doc.endswith(".ipynb"), doc
        nb = smoke_book.out / Path(doc).name
        assert nb.is_file(), f"{doc}: no such executed chapter"
        if nb not in glued:
            glued[nb] = _glued_keys(nb)
        if key not in glued[nb]:
            missing.append(f"{doc}::{key}")
    assert not missing, "glue keys not produced by their chapter: " + ", ".join(missing)


class _Rows(HTMLParser):
    """Text of the cells of every <tbody> row of the page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self._tbody = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tbody":
            self._tbody = True
        elif tag == "tr" and self._tbody:
            self.rows.append([])
        elif tag == "td" and self._tbody:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._tbody = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.mark.slow
def test_built_page_shows_every_row_with_a_number_and_a_verdict(smoke_site):
    proc = smoke_site["proc"]
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    page = smoke_site["html"] / "book" / "reproduction.html"
    assert page.is_file(), "reproduction page not built"
    html = page.read_text(encoding="utf-8")
    assert "glue:" not in html and "::ch" not in html, "unresolved glue role on the page"
    parser = _Rows()
    parser.feed(html)
    expected = _source_rows(PAGE.read_text(encoding="utf-8"))
    assert len(parser.rows) == len(expected)
    for row in parser.rows:
        assert len(row) == 5, row
        claim, _, ours, evidence, agrees = row
        assert re.search(r"\d", ours), f"no number for: {claim} ({ours!r})"
        # every row states n and the value with its interval (or why there is none)
        assert re.match(r"n = [\d,]+", evidence), f"no n for: {claim} ({evidence!r})"
        assert "95 % interval" in evidence or agrees == "inconclusive", \
            f"a verdict without an interval: {claim} ({evidence!r})"
        assert agrees in {"agrees", "disagrees", "inconclusive"}, \
            f"no verdict for: {claim} ({agrees!r})"
