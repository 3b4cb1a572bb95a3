"""The closing chapter's tally (scconcepts.synthesis): rows read from a reproduction page, verdicts
read from the glue outputs of executed notebooks, on constructed pages and notebooks with known
counts, and on the book's own reproduction page."""

import re
from pathlib import Path

import nbformat
import pytest

from scconcepts import synthesis

ROOT = Path(__file__).resolve().parents[1]

PAGE = """# Reproduction
## Scale
| chapter: claim | paper | this book | evidence | agrees? |
|---|---|---|---|---|
| 02: a holds | p | x | {glue:text}`_executed/02_x.ipynb::ch02_a_evidence:s` | {glue:text}`_executed/02_x.ipynb::ch02_a_agree:s` |
| 02: b fails | p | x | {glue:text}`_executed/02_x.ipynb::ch02_b_evidence:s` | {glue:text}`_executed/02_x.ipynb::ch02_b_agree:s` |
## Beyond
| chapter: claim | paper | this book | evidence | agrees? |
|---|---|---|---|---|
| 05: c open | p | x | {glue:text}`_executed/05_y.ipynb::ch05_c_evidence:s` | {glue:text}`_executed/05_y.ipynb::ch05_c_agree:s` |
"""


def _glue_nb(path: Path, values: dict) -> None:
    """A notebook holding papermill/myst-nb glue outputs, as an executed chapter does."""
    outputs = [nbformat.v4.new_output(
        "display_data", data={"application/papermill.record/text/plain": repr(v)},
        metadata={"scrapbook": {"name": k, "mime_prefix": "application/papermill.record/"}})
        for k, v in values.items()]
    cell = nbformat.v4.new_code_cell("glue(...)")
    cell.outputs = outputs
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)


@pytest.fixture
def book(tmp_path):
    (tmp_path / "reproduction.md").write_text(PAGE)
    _glue_nb(tmp_path / "_executed/02_x.ipynb",
             {"ch02_a_agree": "agrees", "ch02_a_evidence": "n = 10; 0.9 (0.8 to 1.0)",
              "ch02_b_agree": "disagrees", "ch02_b_evidence": "n = 5; 0.1 (0.0 to 0.2)"})
    _glue_nb(tmp_path / "_executed/05_y.ipynb",
             {"ch05_c_agree": "inconclusive", "ch05_c_evidence": "n = 3", "ch05_c": 0.5})
    return tmp_path


def test_rows_sections_and_counts(book):
    rows = synthesis.reproduction_rows(book / "reproduction.md")
    assert [(r.section, r.chapter, r.key) for r in rows] == [
        ("Scale", "02", "ch02_a"), ("Scale", "02", "ch02_b"), ("Beyond", "05", "ch05_c")]
    t = synthesis.tally(rows, book)
    assert [r["verdict"] for r in t] == ["agrees", "disagrees", "inconclusive"]
    md = synthesis.tally_markdown(t)
    assert "| Scale | 1 | 1 | 0 | 2 |" in md and "| Beyond | 0 | 0 | 1 | 1 |" in md
    assert "| **all rows** | 1 | 1 | 1 | 3 |" in md
    # only the disagreement is listed, with its glued evidence and a link to its chapter
    assert "02: b fails ({numref}`chapter %s <ch02>`)" in md and "a holds" not in md
    assert "{glue:text}`_executed/02_x.ipynb::ch02_b_evidence:s`" in md


def test_glued_values_reads_back_python_values(book):
    v = synthesis.glued_values(book / "_executed/05_y.ipynb")
    assert v["ch05_c"] == 0.5 and v["ch05_c_agree"] == "inconclusive"


def test_missing_or_invalid_verdicts_fail_loudly(book):
    rows = synthesis.reproduction_rows(book / "reproduction.md")
    _glue_nb(book / "_executed/05_y.ipynb", {"ch05_c_agree": "yes", "ch05_c_evidence": "n = 3"})
    with pytest.raises(ValueError, match="not one of"):
        synthesis.tally(rows, book)
    _glue_nb(book / "_executed/05_y.ipynb", {"ch05_c_agree": "agrees"})
    with pytest.raises(KeyError, match="ch05_c_evidence"):
        synthesis.tally(rows, book)
    (book / "_executed/05_y.ipynb").unlink()
    with pytest.raises(KeyError, match="not executed"):
        synthesis.tally(rows, book)
    (book / "empty.md").write_text("# nothing\n")
    with pytest.raises(ValueError, match="no row"):
        synthesis.reproduction_rows(book / "empty.md")


def test_book_page_rows_are_self_contained():
    """Every row of the book's page names its claim in full (the tally lists rows out of their
    context), once: no "same, scGPT" row and no claim key measured twice."""
    rows = synthesis.reproduction_rows(ROOT / "book" / "reproduction.md")
    assert len(rows) > 40
    assert not [r.claim for r in rows if r.claim.split(": ", 1)[1].lower().startswith("same")]
    keys = [r.key for r in rows]
    assert len(keys) == len(set(keys))
    # each row links to the figure or chapter that shows its measurement
    assert all(re.match(r"\{ref\}`\d\d <(fig-)?ch\d\d[a-z0-9-]*>`: ", r.claim) for r in rows)
