"""Tables a reader can read (issue 14, item 4): human column names, rounding, no index column,
no truncation, p-values at their permutation bound shown as "< bound".

:func:`show` turns a DataFrame (or Series) into a :class:`Table`, which displays as HTML in a
notebook and in the book (myst-nb renders its ``text/html``) and as aligned text in a terminal;
it renders through :class:`pandas.io.formats.style.Styler`:

- raw names become human names: ``columns=`` (per call), :data:`COLUMN_NAMES` (``r2`` → "R²",
  ``pval_strong`` → "p (strong re-test)", ...), patterns (``n_cells`` → "cells",
  ``cell_type_label`` → "top cell type", ``fit_s`` → "fit (s)"), then ``_`` → space;
- unnamed integer index levels (row positions 0, 1, 2) are dropped; a meaningful index (model,
  concept) becomes the leading columns, its outer levels named once per group;
- integers get thousands separators (identifiers such as ``concept`` do not); floats ``digits``
  significant digits with one number of decimals per column; ``percent=`` columns "81.2 %";
  booleans "yes" / "no"; missing values "–";
- p-value columns (:data:`P_COLUMNS` or ``pvalues=``) get two significant digits, and a p of 0
  is shown as "< bound". GSEApy's nominal p from P gene-set permutations is the share of the
  *same-sign* null scores (about P/2) that reach the observed score (:mod:`scconcepts.enrichment`),
  so 0 means "below about 2/P": pass the bound (``p_bound=``) or P (``n_permutations=``). A zero
  p without a bound raises rather than print a misleading "0";
- nothing is truncated: a table longer than ``max_rows`` is drawn whole in a scroll box, with a
  link that downloads it as CSV (a ``data:`` URI: works offline in the static book); beyond
  :data:`MAX_HTML_ROWS` rows only the first ``max_rows`` are drawn and the link holds them all;
- the table has the classes ``dataframe sc-table``, each cell ``sc-num``, ``sc-text`` or
  ``sc-long`` (gene lists, pathway names); ``book/_static/tables.css`` (``_config.yml``,
  ``html_css_files``) fits the table to the page: numbers never wrap, text wraps between words,
  long text keeps a minimum width and list items (genes) are never split.

Usage in a chapter (the last expression of a cell, or in ``display``)::

    from scconcepts.tables import show

    show(table3, caption="Table 3 analogue")                 # names, rounding, no index
    show(examples, n_permutations=cfg.gsea.permutations,     # zero p: "< 0.004" (P = 500)
         p_bound={"pval_strong": 2 / 20_000})                # and "< 1 × 10⁻⁴"
    show(per_label, percent=["share"], columns={"f1_test": "F1 (test cells)"},
         download="label_f1.csv")
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
import numbers
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

__all__ = ["show", "Table", "human_name", "permutation_p_bound", "COLUMN_NAMES", "P_COLUMNS",
           "ID_COLUMNS", "MAX_HTML_ROWS"]

#: Raw column names of the package's tables → the names a reader sees.
COLUMN_NAMES: dict[str, str] = {
    # SAE metrics (sae.sae_row, sae.split_metrics)
    "r2": "R²", "r2_val": "R² (held-out)", "r2_all": "R² (all cells)", "n_val": "held-out cells",
    "active_concepts": "active concepts", "dead_concepts": "dead concepts",
    "l0": "L0 (codes per cell)", "lr": "learning rate", "max_epochs": "max. epochs",
    "epochs_run": "epochs", "init_cosine": "cosine to init. (mean)",
    "init_cosine_median": "cosine to init. (median)", "init_cosine_min": "cosine to init. (min)",
    # enrichment.prerank / annotate_units, dgea
    "pval": "p", "pvals": "p", "pval_strong": "p (strong re-test)", "pval_adj": "p (BH)",
    "pvals_adj": "p (BH)", "fdr": "FDR", "nes": "NES", "es": "ES", "best_term": "best pathway",
    "Term": "pathway", "lead_genes": "leading-edge genes", "n_sets_tested": "GO sets tested",
    "strong_method": "strong re-test", "min_size": "min. set size", "top_terms": "top pathways",
    "logfoldchanges": "log2 fold change",
    # attribution reports
    "hits": "markers in top genes", "n_hits": "markers found", "top_genes": "top genes",
    "top_dgea_genes": "top DGEA genes", "auroc": "AUROC",
    "n_top": "top-activating cells", "n_cf": "counterfactual cells", "n_dgea_genes": "DGEA genes",
    # data (n_cells → "cells", cell_type → "cell type" by the patterns)
    "n_reference": "reference genes", "n_found": "reference genes found", "donor_id": "donor",
    # stability (atoms.seed_pairs)
    "seed_a": "seed A", "seed_b": "seed B", "n_active_a": "active atoms (A)",
    "n_active_b": "active atoms (B)", "mean_best_cosine": "matching score",
    "share_above": "share matched", "mean_best_cosine_ab": "matching score (A → B)",
    "mean_best_cosine_ba": "matching score (B → A)", "share_above_ab": "share matched (A → B)",
    "share_above_ba": "share matched (B → A)", "null_mean_best_cosine": "null matching score",
    "null_share_above": "null share matched", "held_out": "held-out",
    # alignment.method_f1
    "n_aligned": "labels aligned", "f1_min": "F1 threshold",
    "f1_test": "F1 (test)", "f1_val": "F1 (validation)", "mean_f1_test": "mean F1 (test)",
    "median_f1_test": "median F1 (test)",
    # perturbation.concept_auroc, marker coverage
    "freq_pos": "firing rate (positive)", "freq_neg": "firing rate (negative)",
    "freq_diff": "firing-rate difference", "mean_pos": "mean code (positive)",
    "mean_neg": "mean code (negative)", "n_active": "active cells", "n_seen": "markers seen",
    "seconds": "time (s)", "wall_s": "time (s)",
}

#: Raw names of p-value columns, formatted as p-values unless ``pvalues=`` says otherwise.
P_COLUMNS = frozenset({"pval", "pvals", "pval_strong", "pval_adj", "pvals_adj", "fdr",
                       "NOM p-val", "FDR q-val"})

#: Raw names of identifier columns: integers shown without thousands separators (concept 1234).
ID_COLUMNS = frozenset({"unit", "concept", "neuron", "atom", "seed", "seed_a", "seed_b", "id",
                        "concept (main)", "concept (second)", "year"})

#: Rows above which only the first ``max_rows`` are drawn (the download link holds them all):
#: a Styler table of tens of thousands of rows is megabytes of HTML and slow to render.
MAX_HTML_ROWS = 2000

_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"^(.+)_label$", "top {}"),      # concepts.categorize_concepts: <key>_label, <key>_ratio
    (r"^(.+)_ratio$", "{} ratio"),
    (r"^n_(.+)$", "{}"),              # counts
    (r"^(.+)_s$", "{} (s)"),          # durations in seconds
    (r"^(.+)_pct$", "{} (%)"),
)
_SNAKE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)+$")
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
NA = "–"


def permutation_p_bound(n_permutations: int) -> float:
    """The value below which a GSEApy nominal p of 0 lies: 2 / ``n_permutations``.

    GSEApy divides the count of null scores reaching the observed one by the number of null
    scores of the same sign, about half of the permutations (:mod:`scconcepts.enrichment`).
    """
    if int(n_permutations) <= 0:
        raise ValueError(f"n_permutations must be positive, got {n_permutations}")
    return 2.0 / int(n_permutations)


def human_name(name, overrides: Mapping | None = None) -> str:
    """The name a reader sees for a raw column name: ``overrides``, :data:`COLUMN_NAMES`, the
    patterns (``n_cells`` → "cells", ``cell_type_label`` → "top cell type"), then snake case
    with spaces. Names that are not identifiers ("c/d", "paper R²", "scVI") are kept."""
    if overrides and name in overrides:
        return str(overrides[name])
    if not isinstance(name, str):
        return "" if name is None else str(name)
    if name in COLUMN_NAMES:
        return COLUMN_NAMES[name]
    if not _SNAKE.match(name):
        return name
    for pattern, template in _PATTERNS:
        m = re.match(pattern, name)
        if m:
            return template.format(human_name(m.group(1)))
    return name.replace("_", " ")


# ------------------------------------------------------------------------------ formatting


def _significant(v: float, digits: int, strip: bool = False) -> str:
    """``digits`` significant digits; powers of ten as "1.2 × 10⁻⁶" outside [1e-3, 1e6);
    ``strip`` drops trailing zeros (bounds and p-values: "0.004", not "0.0040")."""
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    exp = math.floor(math.log10(abs(v)))
    if -3 <= exp < 6:
        text = f"{v:,.{max(digits - 1 - exp, 0)}f}"
        return text.rstrip("0").rstrip(".") if strip and "." in text else text
    mant, e = f"{v:.{digits - 1}e}".split("e")
    if strip and "." in mant:
        mant = mant.rstrip("0").rstrip(".")
    return f"{mant} × 10{str(int(e)).translate(_SUPERSCRIPT)}"


def _decimals(values: np.ndarray, digits: int) -> int | None:
    """Decimals that give a column's typical value ``digits`` significant digits, or None when
    its magnitudes need powers of ten (then each cell gets its own significant digits)."""
    nz = np.abs(values[np.isfinite(values) & (values != 0)])
    if nz.size == 0:
        return 0
    m = float(np.median(nz))
    if m < 1e-3 or m >= 1e6:
        return None
    d = int(np.clip(digits - 1 - math.floor(math.log10(m)), 0, digits + 2))
    while d > 0 and np.allclose(np.round(nz, d - 1), np.round(nz, d), rtol=0, atol=1e-12):
        d -= 1                            # no zeros every value shares: 0.001, not 0.00100
    return d


def _is_missing(v) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v))


def _or_na(f: Callable[[object], str]) -> Callable[[object], str]:
    """``f``, with missing values shown as "–"."""
    return lambda v: NA if _is_missing(v) else f(v)


def _cell(v, digits: int) -> str:
    """One value of a column of mixed types."""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, numbers.Integral):
        return f"{int(v):,}"
    if isinstance(v, numbers.Real):
        f = float(v)
        return f"{int(f):,}" if f.is_integer() and abs(f) < 1e15 else _significant(f, digits)
    return str(v)


def _p_formatter(bound: float | None, column: str) -> Callable[[object], str]:
    def fmt(v) -> str:
        if float(v) == 0 and bound is None:
            raise ValueError(
                f"p-value column {column!r} holds 0, which only means 'below the permutation "
                "resolution': pass n_permutations= or p_bound= to show it as '< bound'.")
        if float(v) == 0:
            return f"< {_significant(bound, 2, strip=True)}"
        return _significant(float(v), 2, strip=True)
    return fmt


def _column_formatter(s: pd.Series, digits: int) -> Callable[[object], str]:
    """Formatter of a column by its dtype: integers with separators, floats with fixed decimals
    (integral float columns as integers), booleans yes / no, anything else cell by cell."""
    if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
        return lambda v: _cell(v, digits)
    x = s.to_numpy(dtype=float, na_value=np.nan)
    fin = x[np.isfinite(x)]
    if pd.api.types.is_integer_dtype(s) or (fin.size and np.all(fin == np.round(fin))
                                            and np.all(np.abs(fin) < 1e15)):
        return lambda v: f"{int(v):,}"
    d = _decimals(x, digits)
    if d is None:
        return lambda v: _significant(float(v), digits)
    return lambda v: f"{float(v):,.{d}f}"


def _identifier(v) -> str:
    """An identifier as is (an integral float, from a column with gaps, as an integer)."""
    real = isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral)
    return str(int(v)) if real and float(v).is_integer() else str(v)


def _kind(s: pd.Series, long_chars: int) -> str:
    """``sc-num`` (numbers, booleans), ``sc-long`` (text longer than ``long_chars``) or
    ``sc-text``."""
    if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        return "sc-num"
    vals = s.dropna()
    if len(vals) and all(isinstance(v, (numbers.Number, np.bool_)) for v in vals):
        return "sc-num"
    return "sc-long" if vals.astype(str).str.len().max() > long_chars else "sc-text"


# ------------------------------------------------------------------------------ the table


def _flatten_index(df: pd.DataFrame, index: bool | None) -> tuple[pd.DataFrame, int]:
    """The frame with its index as leading columns (or dropped), and how many columns that is.

    ``index=None`` drops the unnamed integer levels (row positions: 0, 1, 2 or what is left of
    them after sorting, concatenating) and keeps the others; True keeps all, False drops all."""
    if index is None:
        positional = [i for i, n in enumerate(df.index.names) if n is None and
                      pd.api.types.is_integer_dtype(df.index.get_level_values(i))]
        if len(positional) == df.index.nlevels:
            index = False
        elif positional:
            df = df.droplevel(positional)
    if index is False:
        return df.reset_index(drop=True), 0
    ix = df.index
    taken = {str(c) for c in df.columns}
    names = []
    for i, n in enumerate(ix.names):
        n = "" if n is None else n
        while n in taken or n in names:   # unnamed levels: unique blank headers
            n = f"{n} " if n else " " * (i + 1)
        names.append(n)
    return df.set_axis(ix.set_names(names), axis=0).reset_index(), ix.nlevels


@dataclass(frozen=True)
class Table:
    """A DataFrame ready to display (made by :func:`show`).

    Attributes
    ----------
    data
        The shown columns with human names and full-precision values (also the CSV download).
    formatters
        Shown column → function from a value to its text.
    classes
        Shown column → ``sc-num``, ``sc-text`` or ``sc-long``.
    n_index
        Leading columns that came from the index (repeated values blanked within a group).
    caption, max_rows, download
        As passed to :func:`show` (``download`` resolved to a file name or None).
    """

    data: pd.DataFrame
    formatters: dict
    classes: dict
    n_index: int
    caption: str | None
    max_rows: int
    download: str | None

    @property
    def scroll(self) -> bool:
        """Whether the table is drawn in a scroll box (more than ``max_rows`` rows)."""
        return len(self.data) > self.max_rows

    def _shown(self) -> pd.DataFrame:
        out = self.data if len(self.data) <= MAX_HTML_ROWS else self.data.head(self.max_rows)
        if self.n_index > 1:   # outer index levels once per group, as pandas' sparse index
            outer = out.iloc[:, : self.n_index - 1]
            repeated = [(outer.iloc[:, : j + 1] == outer.iloc[:, : j + 1].shift()).all(axis=1)
                        for j in range(self.n_index - 1)]
            out = out.astype({c: object for c in outer.columns})
            for j, same in enumerate(repeated):
                out.iloc[same.to_numpy(), j] = ""
        return out

    def styler(self) -> Styler:
        """The :class:`~pandas.io.formats.style.Styler` of the drawn rows (HTML-escaped text)."""
        shown = self._shown()
        fmt = {c: (lambda v, c=c, f=f: self._html(c, v, f)) for c, f in self.formatters.items()}
        # a stable id (Styler's default is random): re-executed chapters give the same HTML
        uuid = hashlib.sha1(pd.util.hash_pandas_object(shown.astype(str), index=False)
                            .to_numpy().tobytes()).hexdigest()[:10]
        classes = pd.DataFrame({c: [self.classes[c]] * len(shown) for c in shown.columns},
                               index=shown.index)
        st = (Styler(shown, uuid=uuid, cell_ids=False).hide(axis="index").format(fmt)
              .format_index(escape="html", axis=1).set_td_classes(classes)
              .set_table_attributes('class="dataframe sc-table"'))
        return st.set_caption(html.escape(self.caption)) if self.caption else st

    def _html(self, column, v, f) -> str:
        """One cell's HTML: escaped; the items of a long list (genes) each kept on one line."""
        if isinstance(v, str) and v == "":        # a blanked repeated index value (_shown)
            return v
        text = html.escape(f(v))
        items = text.split(", ")
        if self.classes[column] == "sc-long" and len(items) > 1 and max(map(len, items)) <= 24:
            text = ", ".join(f'<span class="sc-item">{i}</span>' for i in items)
        return text

    def csv_link(self) -> str:
        """An ``<a download>`` whose ``data:`` URI holds every row as CSV (works offline)."""
        data = base64.b64encode(self.data.to_csv(index=False).encode()).decode()
        return (f'<a class="sc-table-download" download="{html.escape(self.download or "")}" '
                f'href="data:text/csv;charset=utf-8;base64,{data}">Download all '
                f'{len(self.data):,} rows as CSV</a>')

    def to_html(self) -> str:
        """The table's HTML: the Styler's table, in a scroll box when long, and the link."""
        st = self.styler()
        with pd.option_context("styler.render.max_elements", max(self.data.size, 1) + 1):
            body = st.to_html()
        if self.scroll:
            body = f'<div class="sc-table-scroll">{body}</div>'
        note = ""
        if len(self.data) > MAX_HTML_ROWS:
            note = (f'<p class="sc-table-note">The first {self.max_rows:,} of '
                    f'{len(self.data):,} rows; the link below holds them all.</p>')
        link = f"<p>{self.csv_link()}</p>" if self.download else ""
        return f'<div class="sc-table-box">{note}{body}{link}</div>'

    _repr_html_ = to_html

    def text(self) -> pd.DataFrame:
        """The drawn rows as the strings a reader sees (plain text, not HTML-escaped)."""
        shown = self._shown()
        return pd.DataFrame({c: [v if isinstance(v, str) and v == "" else f(v)
                                 for v in shown[c]] for c, f in self.formatters.items()},
                            index=shown.index, columns=shown.columns)

    def __repr__(self) -> str:
        text = self.text().to_string(index=False)
        return (f"{self.caption}\n" if self.caption else "") + text


def show(df: pd.DataFrame | pd.Series, *, columns: Mapping | None = None, digits: int = 3,
         pvalues: Iterable[str] | None = None, p_bound: float | Mapping[str, float] | None = None,
         n_permutations: int | Mapping[str, int] | None = None, percent: Iterable[str] = (),
         formats: Mapping[str, Callable[[object], str]] | None = None,
         index: bool | None = None, caption: str | None = None, max_rows: int = 60,
         download: bool | str | None = None, long_text: int = 40) -> Table:
    """A table a reader can read (see the module docstring).

    Parameters
    ----------
    df
        The table (a Series is shown as one column).
    columns
        Raw name → shown name, over :data:`COLUMN_NAMES` (column and index-level names).
    digits
        Significant digits of floats (each column gets the decimals its median needs).
    pvalues
        Raw names of the p-value columns (default: those in :data:`P_COLUMNS`).
    p_bound
        The resolution below which a p of 0 lies, shown as "< bound": one value for every
        p-value column or raw name → value.
    n_permutations
        Instead of ``p_bound``: the gene-set permutations P of a GSEApy nominal p, giving the
        bound :func:`permutation_p_bound` (2/P); one value or raw name → value.
    percent
        Raw names of rate columns shown as percentages ("81.2 %").
    formats
        Raw (or shown) name → function from a value to its text, over all the rules.
    index
        None: drop unnamed integer levels (row positions), keep the others as leading
        columns; True / False: keep / drop every level.
    caption
        Shown above the table.
    max_rows
        Longer tables are drawn whole in a scroll box (first ``max_rows`` rows beyond
        :data:`MAX_HTML_ROWS`).
    download
        A "Download as CSV" link: None adds one to scroll-box tables, True always, False never;
        a string is the file name (default ``table.csv``).
    long_text
        Text columns with a value longer than this many characters get the class ``sc-long``.

    Returns
    -------
    Table
        Displays as HTML (``_repr_html_``) and as text (``repr``).

    Raises
    ------
    ValueError
        If a p-value column holds 0 and no bound was given, or if two shown names collide
        because of ``columns``.
    """
    frame = df.to_frame(df.name if df.name is not None else "value") \
        if isinstance(df, pd.Series) else df
    frame, n_index = _flatten_index(frame, index)
    raw = list(frame.columns)
    overrides = dict(columns or {})
    shown = _shown_names(raw, overrides)
    data = frame.set_axis(pd.Index(shown, tupleize_cols=False), axis=1)
    if isinstance(frame.columns, pd.MultiIndex):
        data.columns = pd.MultiIndex.from_tuples(shown)

    p_cols = set(P_COLUMNS if pvalues is None else pvalues)
    bounds = _per_column(p_bound, raw)
    for c, n in _per_column(n_permutations, raw).items():
        bounds.setdefault(c, permutation_p_bound(n))
    formats = dict(formats or {})
    formatters, classes, percent = {}, {}, set(percent)
    for r, s in zip(raw, shown):
        col, key = data[s], r[-1] if isinstance(r, tuple) else r   # MultiIndex: the last level
        if r in formats or s in formats:
            f = formats.get(r, formats.get(s))
        elif key in p_cols or r in p_cols:
            f = _p_formatter(bounds.get(r, bounds.get(key)), str(r))
            col.map(_or_na(f))                # raises now, not when displayed
        elif key in ID_COLUMNS:
            f = _identifier
        elif key in percent or r in percent:      # e.g. 0.8123 → "81.2 %"
            f = (lambda v: f"{float(v) * 100:.{max(digits - 2, 0)}f} %")
        else:
            f = _column_formatter(col, digits)
        formatters[s], classes[s] = _or_na(f), _kind(col, long_text)
    name = None
    if download is not False and (download or len(data) > max_rows):
        name = download if isinstance(download, str) else "table.csv"
    return Table(data=data, formatters=formatters, classes=classes, n_index=n_index,
                 caption=caption, max_rows=int(max_rows), download=name)


def _per_column(value, raw: list) -> dict:
    """``value`` for every column, or the mapping itself."""
    if value is None:
        return {}
    return dict(value) if isinstance(value, Mapping) else dict.fromkeys(raw, value)


def _shown_names(raw: list, overrides: dict) -> list:
    """Human names of the columns; a default name that would collide with another column keeps
    its snake-case-with-spaces form; a collision caused by ``overrides`` raises."""
    def one(r, use_default: bool):
        if isinstance(r, tuple):          # MultiIndex columns: every level
            return tuple(human_name(x, overrides) if use_default else _plain(x) for x in r)
        return human_name(r, overrides) if use_default else _plain(r)

    def _plain(x):
        return str(overrides.get(x, x if not isinstance(x, str) else x.replace("_", " ")))

    names = [one(r, True) for r in raw]
    dup = {n for n in names if names.count(n) > 1}
    names = [one(r, False) if n in dup else n for r, n in zip(raw, names)]
    dup = sorted({str(n) for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"Columns would be shown with the same name {dup}: pass columns= "
                         "with distinct names.")
    return names
