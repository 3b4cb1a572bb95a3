"""Author–year labels for the book's bibliography (a Sphinx extension).

sphinxcontrib-bibtex cites author–year in the text ("Claye et al., 2025": ``bibtex_reference_style:
author_year``) but labels the bibliography entries with pybtex's formatting style, whose built-in
label styles are numeric or alpha ("[CMO+25]"), so a reader cannot find a cited work by its name.
pybtex has no author–year label style, so this module registers one (``authoryear``), following
pybtex's plugin mechanism (``pybtex.plugin.register_plugin``) as sphinxcontrib-bibtex's
documentation shows for custom styles. Labels match the in-text citations: "Surname YEAR",
"Surname & Surname YEAR", "Surname et al. YEAR"; works of the same label get "a", "b", …; an entry
without authors uses its organisation or key. Entries are sorted by author, year and title.

Enabled in ``_config.yml`` (``extensions: scconcepts.bibstyle`` and ``bibtex_default_style:
authoryear``).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Iterator

from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting import BaseSortingStyle

__all__ = ["author_year_label", "AuthorYearLabelStyle", "AuthorYearSortingStyle",
           "AuthorYearStyle", "setup"]


def _surname(person) -> str:
    # pybtex keeps "von" parts and last names separately; LaTeX braces are markup, not text
    return " ".join(str(Text.from_latex(p)) for p in person.prelast_names + person.last_names)


def author_year_label(entry) -> str:
    """The author–year label of one pybtex entry, without a disambiguating letter.

    Parameters
    ----------
    entry : pybtex.database.Entry
        A parsed BibTeX entry; authors from ``persons["author"]`` (else ``"editor"``), the year
        from ``fields["year"]``, else ``organization`` / ``institution`` / the key.

    Returns
    -------
    str
        ``"Claye et al. 2025"``, ``"Ding & Li 2010"`` or ``"Tabula Sapiens 2022"``.
    """
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    year = entry.fields.get("year", "n.d.")
    if not people:
        who = (entry.fields.get("organization") or entry.fields.get("institution")
               or entry.fields.get("author") or entry.key)
        return f"{Text.from_latex(str(who))} {year}"
    names = [_surname(p) for p in people]
    if len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} & {names[1]}"
    else:
        who = f"{names[0]} et al."
    return f"{who} {year}"


class AuthorYearLabelStyle(BaseLabelStyle):
    """pybtex label style: author–year labels, with a/b/… for equal labels (in sorted order)."""

    def format_labels(self, sorted_entries: Iterable) -> Iterator[str]:
        entries = list(sorted_entries)
        labels = [author_year_label(e) for e in entries]
        total, seen = Counter(labels), Counter()
        for lab in labels:
            if total[lab] > 1:
                seen[lab] += 1
                yield f"{lab}{chr(ord('a') + seen[lab] - 1)}"
            else:
                yield lab


class AuthorYearSortingStyle(BaseSortingStyle):
    """pybtex sorting style: alphabetical by the label a reader sees, then by title.

    pybtex's ``author_year_title`` sorts organisations given in braces ("{10x Genomics}") after
    every person, so the list would not be alphabetical by the visible labels.
    """

    def sorting_key(self, entry):
        return (author_year_label(entry).casefold(), str(entry.fields.get("title", "")).casefold())


class AuthorYearStyle(UnsrtStyle):
    """pybtex formatting style: unsrt entries, author–year labels, sorted by label and title."""

    default_label_style = "authoryear"
    default_sorting_style = "authoryear"


register_plugin("pybtex.style.labels", "authoryear", AuthorYearLabelStyle)
register_plugin("pybtex.style.sorting", "authoryear", AuthorYearSortingStyle)
register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)


def setup(app):
    """Sphinx entry point: the plugins are registered on import; nothing else to set up."""
    return {"parallel_read_safe": True, "parallel_write_safe": True}
