"""scconcepts.tables.show on constructed tables: human names, no index column, rounding,
p-values at their permutation bound, no truncation, the CSS hooks (issue 14, item 4)."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from scconcepts.tables import MAX_HTML_ROWS, human_name, permutation_p_bound, show

ROOT = Path(__file__).resolve().parents[1]


def _headers(html: str) -> list[str]:
    return re.findall(r"<th\b[^>]*>(.*?)</th>", html, flags=re.S)


def _cells(html: str, column: int) -> list[str]:
    return re.findall(rf'<td class="data row\d+ col{column} [^"]*" >(.*?)</td>', html)


@pytest.fixture
def gsea_like():
    return pd.DataFrame({
        "unit": [3, 1234, 12],
        "best_term": ["antigen processing", "response to virus", None],
        "NES": [1.8765, 2.1, np.nan],
        "pval": [0.0, 0.0021, np.nan],
        "r2": [0.912345, 0.5, 0.999],
        "n_cells": [12000, 5, 1234567],
    })


def test_human_names_and_no_index_column(gsea_like):
    html = show(gsea_like, n_permutations=500).to_html()
    assert _headers(html) == ["unit", "best pathway", "NES", "p", "R²", "cells"]
    assert "r2" not in _headers(html) and "pval" not in _headers(html)
    assert "row_heading" not in html and "blank" not in html     # no index column
    assert ">0<" not in html and ">1<" not in html


def test_meaningful_index_becomes_leading_columns(gsea_like):
    both = pd.concat({"scVI": gsea_like.set_index("unit"), "scGPT": gsea_like.set_index("unit")},
                     names=["model"])
    t = show(both, n_permutations=500)
    html = t.to_html()
    assert _headers(html)[:2] == ["model", "unit"]
    # the model is named once per group, as pandas' sparse index
    assert _cells(html, 0) == ["scVI", "", "", "scGPT", "", ""]
    assert _cells(html, 1) == ["3", "1234", "12"] * 2          # identifiers: no separator
    assert list(t.data["model"]) == ["scVI"] * 3 + ["scGPT"] * 3   # the data keeps them all


def test_rounding_and_thousands_separators(gsea_like):
    html = show(gsea_like, n_permutations=500).to_html()
    assert _cells(html, 2) == ["1.88", "2.10", "–"]               # NES: 3 significant digits
    assert _cells(html, 4) == ["0.912", "0.500", "0.999"]
    assert _cells(html, 5) == ["12,000", "5", "1,234,567"]
    assert "0.000000" not in html and "0.912345" not in html


def test_integral_float_column_shows_integers_and_small_values_powers_of_ten():
    df = pd.DataFrame({"n_genes": [1200.0, np.nan, 3.0], "sparsity": [2e-5, 3.1e-6, 4.44e-5]})
    html = show(df).to_html()
    assert _cells(html, 0) == ["1,200", "–", "3"]
    assert _cells(html, 1) == ["2.00 × 10⁻⁵", "3.10 × 10⁻⁶", "4.44 × 10⁻⁵"]


def test_zero_p_is_shown_as_the_bound():
    df = pd.DataFrame({"pval": [0.0, 0.0123, 1.0]})
    assert _cells(show(df, p_bound=1 / 500).to_html(), 0) == ["&lt; 0.002", "0.012", "1"]
    # GSEApy divides by the same-sign null scores (about P/2): from P the bound is 2/P
    assert permutation_p_bound(500) == pytest.approx(0.004)
    assert _cells(show(df, n_permutations=500).to_html(), 0)[0] == "&lt; 0.004"
    assert repr(show(df, p_bound=1 / 500)).splitlines()[1].strip() == "< 0.002"


def test_bounds_per_column_and_tiny_p():
    df = pd.DataFrame({"pval": [0.0, 0.004], "pval_strong": [0.0, 3.2e-7]})
    html = show(df, n_permutations={"pval": 500}, p_bound={"pval_strong": 1e-4}).to_html()
    assert _headers(html) == ["p", "p (strong re-test)"]
    assert _cells(html, 0) == ["&lt; 0.004", "0.004"]
    assert _cells(html, 1) == ["&lt; 1 × 10⁻⁴", "3.2 × 10⁻⁷"]


def test_zero_p_without_a_bound_raises():
    with pytest.raises(ValueError, match="n_permutations"):
        show(pd.DataFrame({"pval": [0.0, 0.5]}))
    show(pd.DataFrame({"pval": [0.01, 0.5]}))                      # no zero: no bound needed


def test_long_table_is_complete_in_a_scroll_box_with_a_csv_link():
    df = pd.DataFrame({"concept": range(200), "r2": np.linspace(0, 1, 200)})
    html = show(df).to_html()
    assert len(_cells(html, 0)) == 200 and _cells(html, 0)[-1] == "199"
    assert '<div class="sc-table-scroll">' in html
    uri = re.search(r'href="data:text/csv;charset=utf-8;base64,([^"]+)"', html).group(1)
    back = pd.read_csv(io.StringIO(base64.b64decode(uri).decode()))
    assert list(back.columns) == ["concept", "R²"] and len(back) == 200
    short = show(df.head(10)).to_html()
    assert "sc-table-scroll" not in short and "data:text/csv" not in short
    assert 'download="c.csv"' in show(df.head(10), download="c.csv").to_html()


def test_very_long_table_draws_its_first_rows_and_links_all():
    df = pd.DataFrame({"x": np.arange(MAX_HTML_ROWS + 5)})
    html = show(df, max_rows=50).to_html()
    assert len(_cells(html, 0)) == 50 and "of 2,005 rows" in html
    uri = re.search(r'base64,([^"]+)"', html).group(1)
    assert len(pd.read_csv(io.StringIO(base64.b64decode(uri).decode()))) == MAX_HTML_ROWS + 5


def test_css_classes_for_the_stylesheet():
    df = pd.DataFrame({"n_cells": [1, 2], "annotation": ["weak", "strong"],
                       "top-10 genes": [", ".join(["CD3E", "CD3D", "LCK", "IL7R"] * 3)] * 2})
    html = show(df).to_html()
    assert 'class="dataframe sc-table"' in html
    assert "col0 sc-num" in html and "col1 sc-text" in html and "col2 sc-long" in html


def test_percent_formats_and_overrides():
    df = pd.DataFrame({"share": [0.8123, 0.05], "score": [1.0, 2.5], "converged": [True, False]})
    html = show(df, percent=["share"], columns={"score": "score (a.u.)"},
                formats={"score": "{:.1f}!".format}).to_html()
    assert _headers(html) == ["share", "score (a.u.)", "converged"]
    assert _cells(html, 0) == ["81.2 %", "5.0 %"]
    assert _cells(html, 1) == ["1.0!", "2.5!"]
    assert _cells(html, 2) == ["yes", "no"]


def test_names_collisions_and_patterns():
    assert human_name("cell_type_label") == "top cell type"
    assert human_name("cell_type_ratio") == "cell type ratio"
    assert human_name("n_widgets") == "widgets" and human_name("fit_time_s") == "fit time (s)"
    assert human_name("c/d") == "c/d" and human_name("paper R²") == "paper R²"
    # a default name that collides with another column falls back to spaces for underscores
    html = show(pd.DataFrame({"widgets": [1], "n_widgets": [2]})).to_html()
    assert _headers(html) == ["widgets", "n widgets"]
    with pytest.raises(ValueError, match="same name"):
        show(pd.DataFrame({"a": [1], "b": [2]}), columns={"a": "x", "b": "x"})


def test_text_is_escaped_and_series_and_caption():
    s = pd.Series({"<b>IFN</b>": 3}, name="n_cells").rename_axis("condition")
    t = show(s, caption="Cells & conditions")
    html = t.to_html()
    assert _headers(html) == ["condition", "cells"]
    assert "&lt;b&gt;IFN&lt;/b&gt;" in html and "<b>" not in html
    assert "Cells &amp; conditions" in html
    assert repr(t).splitlines()[0] == "Cells & conditions"


def test_html_is_deterministic(gsea_like):
    assert show(gsea_like, p_bound=0.002).to_html() == show(gsea_like, p_bound=0.002).to_html()


def test_the_book_loads_the_stylesheet():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    assert "tables.css" in cfg["html_css_files"]
    css = next(ROOT / d / "tables.css" for d in cfg["html_static_path"]
               if (ROOT / d / "tables.css").exists()).read_text()
    for selector in ("table.sc-table", "td.sc-num", "td.sc-long", "div.sc-table-scroll"):
        assert selector in css



def test_row_positions_left_by_concat_and_sorting_are_dropped():
    per_model = pd.DataFrame({"c": [200, 500], "lr": [1e-3, 1e-3], "l0": [3.0, 7.97]})
    both = pd.concat({"scVI": per_model, "scGPT": per_model.iloc[::-1]}, names=["model"])
    html = show(both).to_html()                   # index (model, 0/1): the 0/1 level goes
    assert _headers(html) == ["model", "c", "learning rate", "L0 (codes per cell)"]
    assert _cells(html, 2) == ["0.001"] * 4       # not 0.00100: no zeros every value shares
    assert _cells(html, 3) == ["3.00", "7.97", "7.97", "3.00"]
    assert _headers(show(per_model.iloc[::-1]).to_html())[0] == "c"   # index 1, 0: dropped
    kept = show(per_model.rename_axis("sae")).to_html()                # a named index stays
    assert _headers(kept)[0] == "sae" and _cells(kept, 0) == ["0", "1"]


def test_gene_lists_keep_each_gene_on_one_line():
    genes = "HLA-DRA, CD74, HLA-DPB1, FTH1, GZMB, CCR7, ANXA1, LYZ, S100A8, MALAT1"
    html = show(pd.DataFrame({"top-10 genes": [genes], "note": ["a, b"]})).to_html()
    assert '<span class="sc-item">HLA-DRA</span>, <span class="sc-item">CD74</span>' in html
    assert html.count('class="sc-item"') == 10    # short text ("a, b") is left alone


# ------------------------------------------------------------------------------ in a browser

#: Width of the book's text column in a 1400 px window (sphinx-book-theme, measured).
COLUMN_PX = 772
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def _wide_examples() -> pd.DataFrame:
    """A chapter-05-like table: ten columns, pathway names and top-10 gene lists."""
    genes = ["HLA-DRA", "CD74", "HLA-DPB1", "HLA-DRB1", "FTH1", "HLA-DPA1", "ACTB", "GZMB",
             "CCR7", "SH3BGRL3"]
    rows = [{"model": m, "concept": 100 + i, "category": "cell_type-specific",
             "top cell type": "CD4-positive, alpha-beta T cell (97%)",
             "pathway": "Positive Regulation Of T Cell Activation (GO:0050870)",
             "NES": 1.9 - i / 10, "pval": 0.0 if i % 2 else 0.0025, "pval_strong": 3.1e-6,
             "annotation": "strong", "top-10 genes": ", ".join(np.roll(genes, i))}
            for m in ("scVI", "scGPT") for i in range(4)]
    return pd.DataFrame(rows).set_index(["model", "concept"])


def _page(tmp_path, css: bool) -> Path:
    tables = [show(_wide_examples(), n_permutations=500, p_bound={"pval_strong": 1e-4}),
              show(pd.DataFrame({"concept": range(200), "pval": np.linspace(1e-3, 1, 200),
                                 "n_cells": np.arange(200) * 1000}))]
    link = f'<link rel="stylesheet" href="{ROOT / "book/_static/tables.css"}">' if css else ""
    body = "".join(f'<div class="output" style="width:{COLUMN_PX}px;overflow-x:auto">'
                   f"{t.to_html()}</div>" for t in tables)
    page = tmp_path / f"tables_{css}.html"
    page.write_text(f'<!doctype html><html lang="en"><head><meta charset="utf-8">{link}</head>'
                    f'<body style="font-family:sans-serif">{body}</body></html>')
    return page


@pytest.mark.slow
def test_tables_fit_the_book_column_in_chromium(tmp_path):
    """At 1400 px the tables fit the text column, no number wraps, no gene name is split at its
    hyphen, gene lists keep a minimum width, and the long table scrolls inside its box; without
    the stylesheet numbers wrap and genes split (the checks can fail)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("Chromium and its driver are needed: apt-get install chromium "
                    "chromium-driver (.ci/run does it).")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    measure = """return Array.from(document.querySelectorAll('div.output')).map(o => {
        const t = o.querySelector('table.sc-table');
        const lines = el => { const r = document.createRange(); r.selectNodeContents(el);
                              return new Set(Array.from(r.getClientRects()).map(x => x.top)).size; };
        const multi = sel => Array.from(t.querySelectorAll(sel)).filter(e => lines(e) > 1).length;
        return {table: t.getBoundingClientRect().width, box: o.clientWidth, scroll: o.scrollWidth,
                split: multi('span.sc-item'), wrapped: multi('td.sc-num'),
                long: Math.min(...Array.from(t.querySelectorAll('td.sc-long'))
                               .map(td => td.getBoundingClientRect().width), 1e9),
                em: parseFloat(getComputedStyle(t).fontSize), rows: t.tBodies[0].rows.length,
                boxHeight: (o.querySelector('.sc-table-scroll') || t).getBoundingClientRect().height};
    });"""
    try:
        driver.get(_page(tmp_path, css=True).as_uri())
        wide, long = driver.execute_script(measure)
        driver.get(_page(tmp_path, css=False).as_uri())
        bare, _ = driver.execute_script(measure)
    finally:
        driver.quit()
    for t in (wide, long):
        assert t["table"] <= t["box"] + 1 and t["scroll"] <= t["box"] + 1, t
    assert wide["split"] == 0 and wide["wrapped"] == 0, wide
    assert wide["long"] >= 7 * wide["em"] - 1, wide
    assert long["rows"] == 200 and long["boxHeight"] < 40 * long["em"] * 1.6, long
    assert bare["split"] > 0 and bare["wrapped"] > 0, bare
