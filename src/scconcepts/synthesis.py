"""The closing chapter's tally of the reproduction verdicts (a Sphinx extension).

The reproduction page (``book/reproduction.md``) has one row per claim; its "agrees?" cell glues
the claim's verdict (``{glue:text}`_executed/<chapter>.ipynb::<key>_agree:s```), written by the
chapter's :class:`scconcepts.claims.Claim`. The directive ``{verdict-tally}`` reads those rows and
the values the executed chapters glued (myst-nb's glue outputs, the same store the page's roles
resolve against), and renders, at every build:

* a table of verdicts per section of the page (agrees / disagrees / inconclusive, and the total);
* the rows whose verdict is ``"disagrees"``, each with its evidence (n, value, 95 % interval,
  test), glued from its claim, and a link to the chapter that measured it.

Nothing in the tally is typed: it follows the chapters the book was built with. A row whose glue
value is missing is an error (the build fails, naming the key), as it is on the reproduction page.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

__all__ = ["Row", "reproduction_rows", "glued_values", "tally", "tally_markdown", "setup"]

VERDICTS = ("agrees", "disagrees", "inconclusive")
_AGREE = re.compile(r"\{glue:text\}`(?P<nb>[^`:]+\.ipynb)::(?P<key>[A-Za-z0-9_]+)_agree:s`")


@dataclass(frozen=True)
class Row:
    """One claim row of the reproduction page."""

    section: str  #: the page's ``## `` heading above the row
    claim: str  #: first cell ("NN: claim")
    notebook: str  #: executed notebook, relative to the page's folder
    key: str  #: the claim's glue key (``<key>_agree`` is its verdict)

    @property
    def chapter(self) -> str:
        """Two-digit chapter number, from the notebook's file name (``05_...`` → ``"05"``)."""
        return Path(self.notebook).name[:2]


def reproduction_rows(page: Path) -> list[Row]:
    """Every claim row of a reproduction page, in page order.

    Parameters
    ----------
    page : Path
        ``book/reproduction.md``: Markdown tables whose last cell is a ``{glue:text}`` role of a
        ``<key>_agree`` value.

    Raises
    ------
    ValueError
        When the page has no such row (a tally of nothing would read as "all agree").
    """
    rows, section = [], ""
    for line in Path(page).read_text().splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
            continue
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        m = _AGREE.fullmatch(cells[-1]) if cells else None
        if m:
            rows.append(Row(section, cells[0], m["nb"], m["key"]))
    if not rows:
        raise ValueError(f"{page}: no row ends with a {{glue:text}}`...::<key>_agree:s` verdict")
    return rows


def glued_values(notebook: Path) -> dict[str, object]:
    """``{name: value}`` of everything a myst-nb / papermill ``glue`` recorded in a notebook.

    Values are the ``text/plain`` representations the notebook holds, read back with
    :func:`ast.literal_eval` (strings, numbers); other representations stay strings.
    """
    out: dict[str, object] = {}
    for cell in nbformat.read(Path(notebook), as_version=4).cells:
        for output in cell.get("outputs", []):
            meta = output.get("metadata", {}).get("scrapbook", {})
            if "name" not in meta:
                continue
            text = output.get("data", {}).get(meta.get("mime_prefix", "") + "text/plain")
            try:
                out[meta["name"]] = ast.literal_eval(text) if text is not None else None
            except (ValueError, SyntaxError):
                out[meta["name"]] = text
    return out


def tally(rows: list[Row], root: Path) -> list[dict]:
    """Each row with its verdict and evidence, read from the executed notebooks under ``root``.

    Returns
    -------
    list of dict
        ``section``, ``claim``, ``chapter``, ``notebook``, ``key``, ``verdict``, ``evidence``.

    Raises
    ------
    KeyError
        When a chapter did not glue a row's verdict or evidence (or is not executed).
    ValueError
        When a glued verdict is not agrees / disagrees / inconclusive.
    """
    cache: dict[str, dict] = {}
    out = []
    for r in rows:
        path = Path(root) / r.notebook
        if r.notebook not in cache:
            if not path.is_file():
                raise KeyError(f"{path} is not executed: run `python -m scconcepts.book execute`")
            cache[r.notebook] = glued_values(path)
        values = cache[r.notebook]
        for suffix in ("_agree", "_evidence"):
            if r.key + suffix not in values:
                raise KeyError(f"{r.notebook} glued no {r.key}{suffix} (reproduction row "
                               f"{r.claim!r})")
        verdict = values[r.key + "_agree"]
        if verdict not in VERDICTS:
            raise ValueError(f"{r.key}_agree = {verdict!r}, not one of {VERDICTS}")
        out.append({"section": r.section, "claim": r.claim, "chapter": r.chapter,
                    "notebook": r.notebook, "key": r.key, "verdict": verdict,
                    "evidence": values[r.key + "_evidence"]})
    return out


def tally_markdown(rows: list[dict]) -> str:
    """MyST Markdown of the tally: counts per section and the disagreements with evidence.

    The evidence and verdicts are written as ``{glue:text}`` roles (so the page shows the
    chapter's own glued text); only the counts are computed here.
    """
    sections = list(dict.fromkeys(r["section"] for r in rows))
    lines = ["| section of the reproduction page | agrees | disagrees | inconclusive | rows |",
             "|---|---|---|---|---|"]
    for s in sections + ["all"]:
        sub = [r for r in rows if s == "all" or r["section"] == s]
        counts = [sum(r["verdict"] == v for r in sub) for v in VERDICTS]
        name = "**all rows**" if s == "all" else s
        lines.append(f"| {name} | " + " | ".join(str(c) for c in counts) + f" | {len(sub)} |")
    lines += ["", "The rows that **disagree** with the paper, with the evidence their chapter "
              "measured (n; value, 95 % interval; test):", ""]
    dis = [r for r in rows if r["verdict"] == "disagrees"]
    for r in dis:
        lines.append(f"* {r['claim']} ({{numref}}`chapter %s <ch{r['chapter']}>`): "
                     f"{{glue:text}}`{r['notebook']}::{r['key']}_evidence:s`")
    if not dis:
        lines.append("* none in this build.")
    return "\n".join(lines) + "\n"


def _directive():
    from docutils import nodes
    from docutils.statemachine import StringList
    from sphinx.util.docutils import SphinxDirective

    class VerdictTally(SphinxDirective):
        """``{verdict-tally} reproduction.md``: the tally of that page's verdicts."""

        required_arguments = 1

        def run(self):
            src_dir = Path(self.env.doc2path(self.env.docname)).parent
            page = src_dir / self.arguments[0]
            self.env.note_dependency(str(page))
            rows = tally(reproduction_rows(page), src_dir)
            for r in rows:
                self.env.note_dependency(str(src_dir / r["notebook"]))
            node = nodes.container(classes=["verdict-tally"])
            text = tally_markdown(rows).splitlines()
            self.state.nested_parse(StringList(text, source=str(page)), self.content_offset, node)
            return [node]

    return VerdictTally


def setup(app):
    """Sphinx entry point: registers the ``verdict-tally`` directive."""
    app.add_directive("verdict-tally", _directive())
    return {"parallel_read_safe": True, "parallel_write_safe": True}
