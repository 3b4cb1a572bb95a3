"""The book's author–year bibliography labels (scconcepts.bibstyle), on constructed entries and on
the book's own references.bib."""

import re
from pathlib import Path

from pybtex.database import parse_string
from pybtex.plugin import find_plugin

from scconcepts import bibstyle

BIB = r"""
@misc{one, author = {Wilson, Edwin B.}, title = {Probable inference}, year = {1927}}
@misc{two, author = {Zeiler, Matthew D. and Fergus, Rob}, title = {Visualizing}, year = {2014}}
@misc{many, author = {Claye, C. and Marschall, P. and Ouerdane, W.}, title = {B}, year = {2025}}
@misc{many2, author = {Claye, C. and Doe, J. and Roe, R.}, title = {A}, year = {2025}}
@misc{org, author = {{10x Genomics}}, title = {PBMC 4k}, year = {2017}}
@misc{von, author = {Dupr{\'e} la Tour, Tom}, title = {T}, year = {2024}}
"""


def _labels(bib: str) -> dict[str, str]:
    data = parse_string(bib, "bibtex")
    style = find_plugin("pybtex.style.formatting", "authoryear")()
    formatted = style.format_bibliography(data)
    return {e.key: e.label for e in formatted}


def test_author_year_labels_and_disambiguation():
    labels = _labels(BIB)
    assert labels["one"] == "Wilson 1927"
    assert labels["two"] == "Zeiler & Fergus 2014"
    assert labels["org"] == "10x Genomics 2017"
    # same label twice: a/b in sorted order (title "A" before "B")
    assert labels["many2"] == "Claye et al. 2025a" and labels["many"] == "Claye et al. 2025b"
    assert labels["von"] == "Dupré la Tour 2024"


def test_bibliography_is_alphabetical_by_label():
    data = parse_string(BIB, "bibtex")
    style = find_plugin("pybtex.style.formatting", "authoryear")()
    order = [e.label for e in style.format_bibliography(data)]
    assert order == sorted(order, key=str.casefold)


def test_book_bibliography_has_no_alpha_labels():
    bib = (Path(__file__).resolve().parents[1] / "book" / "references.bib").read_text()
    labels = _labels(bib)
    assert labels["claye2025"] == "Claye et al. 2025"
    # every label ends with a year (and maybe a letter): no "[CMO+25]"-style alpha label
    assert all(re.search(r"(\d{4}|n\.d\.)[a-z]?$", lab) for lab in labels.values()), labels
    assert bibstyle.author_year_label(parse_string(BIB, "bibtex").entries["one"]) == "Wilson 1927"
