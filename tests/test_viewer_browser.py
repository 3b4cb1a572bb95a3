"""The expert viewer's pages driven in headless Chromium, built from constructed outputs (no
smoke book): the blinded page leaks no category, cell count, pathway or model identity into its
DOM, each page has one scroll with the form beside the evidence, previous / next stay within the
filtered list, a rater id is required, the UMAP is coloured by cell type, genes are flagged, the
form asks only meaningful questions, and the book's frames grow to their content.

Uses Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) through selenium,
from ``file://``; screenshots go to ``test-artifacts/`` (git-ignored).
"""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path

import pytest
from browser_util import wait_for
from test_viewer_blind import NAMES, PATHWAY, _obs, _outputs

from scconcepts import viewer
from scconcepts.concepts import CATEGORY_ORDER

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
WIDTH, HEIGHT = 1400, 1000

pytestmark = pytest.mark.slow

#: Elements other than the page that scroll their own content (overflow auto/scroll with more
#: content than room), and the page's own overflow.
NESTED_SCROLLERS = """
const out = [];
for (const e of document.querySelectorAll('*')) {
  if (e === document.scrollingElement || e === document.body) continue;
  const s = getComputedStyle(e);
  const y = /(auto|scroll)/.test(s.overflowY) && e.scrollHeight > e.clientHeight + 1;
  const x = /(auto|scroll)/.test(s.overflowX) && e.scrollWidth > e.clientWidth + 1;
  if (x || y) out.push(e.tagName + '#' + e.id + '.' + e.className);
}
return out;"""


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    folder = tmp_path_factory.mktemp("viewer")
    payload = viewer.build_payload(
        {"alpha": _outputs(1, n_proto=3, missing=True), "beta": _outputs(2, n_proto=4)},
        _obs(), model_names=NAMES, title="test viewer", metadata_keys=["cell_type", "donor_id"],
        min_cells=10, seed=0, n_genes=8, umap_cells=40)
    ex = viewer.export_viewer(payload, folder, seed=1)
    embed = folder / "embedded.html"
    embed.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'><title>chapter</title>"
                     "</head><body style='margin:8px'><h1>Chapter</h1><p>Prose.</p>"
                     + viewer.embed_html(ex) + "<p style='height:400px'>More prose.</p>"
                     "</body></html>", encoding="utf-8")
    return {"payload": payload, "export": ex, "open": ex.open_path,
            "blinded": ex.blinded_path, "embed": embed}


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory):
    driver = chromium(WIDTH, HEIGHT, downloads=tmp_path_factory.mktemp("downloads"))
    yield driver
    driver.quit()


_wait = wait_for


def _load(driver, path):
    from selenium.webdriver.common.by import By

    driver.switch_to.default_content()
    driver.get(path.as_uri())
    driver.execute_script("window.localStorage.clear()")
    driver.get(path.as_uri())
    _wait(lambda: driver.find_elements(By.ID, "ann-form"), what="form of the first item")


def _shot(driver, name):
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"viewer_unit_{name}.png"))


def _rect(driver, css):
    return driver.execute_script(
        "const r = document.querySelector(arguments[0]).getBoundingClientRect();"
        "return {top: r.top, bottom: r.bottom, left: r.left, right: r.right};", css)


@pytest.mark.parametrize("mode", ["open", "blinded"])
def test_one_scroll_and_the_form_beside_the_evidence(browser, pages, mode):
    _load(browser, pages[mode])
    assert browser.execute_script("return window.innerWidth") >= 1200
    assert browser.execute_script(NESTED_SCROLLERS) == []
    form, detail = _rect(browser, "#form-col"), _rect(browser, "#detail")
    assert 0 <= form["top"] < browser.execute_script("return window.innerHeight")
    assert form["left"] >= detail["right"] - 1  # beside the evidence, not below it
    if mode == "open":  # taller than the window: the form stays in view when it scrolls
        assert browser.execute_script(
            "return document.scrollingElement.scrollHeight > window.innerHeight + 300")
        browser.execute_script("window.scrollTo(0, 300)")
        form = _rect(browser, "#panel-form")
        assert 0 <= form["top"] < 50, form
    _shot(browser, f"layout_{mode}")


def _payload(driver):
    blob = driver.execute_script("return document.getElementById('payload').textContent")
    return json.loads(base64.b64decode(blob.strip()).decode("utf-8"))


def test_blinded_dom_holds_no_category_count_pathway_or_model(browser, pages):
    """Acceptance of issue 14 item 7: nothing in the blinded page's DOM, embedded payload
    included, tells the category, the cell count, the pathways or the model / kind."""
    from selenium.webdriver.common.by import By

    _load(browser, pages["blinded"])
    data = _payload(browser)
    assert set(data) == set(viewer.BLIND_FIELDS)
    assert all(tuple(it) == viewer.BLIND_ITEM_FIELDS for it in data["items"])
    opened = pages["payload"]["items"]
    counts = {f"{it['n_cells']} of {it['n_total']}" for it in opened}
    words = ["concept", "neuron", PATHWAY, *NAMES.values(), *NAMES,
             *[c for c in CATEGORY_ORDER if c != "other"], *[it["id"] for it in opened]]
    n_items = len(browser.find_elements(By.CSS_SELECTOR, "#item-list button"))
    assert n_items == len(data["items"]) == len(opened)
    for i in range(n_items):
        browser.find_elements(By.CSS_SELECTOR, "#item-list button")[i].click()
        for panel in ("panel-metadata", "panel-histogram", "panel-pathways"):
            assert not browser.find_elements(By.ID, panel)
        assert not browser.find_elements(By.CSS_SELECTOR, "#detail .meta")
        text = browser.execute_script("return document.body.innerText")
        dom = browser.execute_script(
            "const c = document.documentElement.cloneNode(true);"
            "c.querySelector('#payload').remove(); return c.outerHTML")
        for word in words:
            assert not re.search(rf"\b{re.escape(word)}\b", dom, re.I), word
        assert not any(c in text for c in counts)
        assert not re.search(r"\d+ activating cells|cells activate", text)
        assert not re.search(r"\b(null|undefined|NaN)\b", text)
        # every item shows the same number of prototype dots per gene
        dots = browser.execute_script(
            "return Array.from(document.querySelectorAll('#panel-attribution .gene-row'))"
            ".map(g => g.querySelectorAll('.proto-dot').length)")
        assert set(dots) == {data["shown"]["prototypes"]}
    assert not browser.find_elements(By.ID, "filter-kind")
    assert not browser.find_elements(By.ID, "filter-model")
    assert not browser.find_elements(By.ID, "filter-category")
    assert not browser.find_elements(By.ID, "filter-pathway")
    _shot(browser, "blinded_item")


def _title(driver):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "item-title").text


def test_previous_next_stay_in_the_filtered_list(browser, pages):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _load(browser, pages["open"])
    Select(browser.find_element(By.ID, "filter-kind")).select_by_value("neuron")
    listed = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#item-list button")]
    assert len(listed) == 4 and all("neuron" in t for t in listed)
    seen = []
    for _ in range(len(listed)):
        browser.find_element(By.ID, "next-btn").click()
        seen.append(_title(browser))
    assert sorted(seen) == sorted(t.splitlines()[0] for t in listed)
    assert browser.find_element(By.ID, "nav-pos").text.endswith(f"of {len(listed)} shown")
    browser.find_element(By.ID, "prev-btn").click()
    assert _title(browser) == seen[-2]
    # search narrows the list further; next stays in it
    box = browser.find_element(By.ID, "search")
    box.send_keys("beta")
    browser.find_element(By.ID, "next-btn").click()
    assert _title(browser).startswith("Beta net neuron")
    browser.find_element(By.ID, "next-btn").click()
    assert _title(browser).startswith("Beta net neuron")


def test_a_rater_id_is_required(browser, pages):
    from selenium.webdriver.common.by import By

    _load(browser, pages["blinded"])
    form = browser.find_element(By.ID, "ann-form")
    form.find_element(By.CSS_SELECTOR, "input[name=cell_type][value=no]").click()
    form.find_element(By.CSS_SELECTOR, "input[name=process][value=unclear]").click()
    form.find_element(By.ID, "save-btn").click()
    assert "Enter your rater id" in browser.find_element(By.ID, "form-error").text
    assert browser.find_element(By.ID, "progress").text.startswith("0 of")
    before = set(browser.downloads.glob("annotations_*.json"))
    browser.find_element(By.ID, "export-btn").click()
    msg = browser.find_element(By.ID, "msg")
    assert "Enter your rater id" in msg.text and "error" in msg.get_attribute("class")
    time.sleep(0.5)
    assert set(browser.downloads.glob("annotations_*.json")) == before
    browser.find_element(By.ID, "rater").send_keys("dana")
    browser.find_element(By.ID, "save-btn").click()
    _wait(lambda: browser.find_element(By.ID, "save-status").text.startswith("Saved"),
          what="saved")
    browser.find_element(By.ID, "export-btn").click()
    path = _wait(lambda: [p for p in browser.downloads.glob("annotations_*dana.json")],
                 what="export")[0]
    time.sleep(0.2)
    doc = json.loads(path.read_text())
    assert doc["rater"] == "dana" and doc["questions"] == ["cell_type", "process"]
    ann = viewer.load_annotations(path, pages["export"].studies)
    assert ann["level"].tolist() == ["signal but unclear"] and ann["tissue"].tolist() == [""]


def test_form_asks_only_meaningful_questions(browser, pages):
    from selenium.webdriver.common.by import By

    _load(browser, pages["open"])
    asked = [f.get_attribute("data-question")
             for f in browser.find_elements(By.CSS_SELECTOR, "#ann-form fieldset")]
    assert asked == ["cell_type", "process"]  # one tissue in the data: no tissue question
    assert "tissue" not in browser.find_element(By.ID, "ann-form").text.lower()


def test_umap_is_coloured_by_cell_type(browser, pages):
    from selenium.webdriver.common.by import By

    _load(browser, pages["open"])
    lab = pages["payload"]["cell_labels"]
    legend = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#umap-legend > span")]
    assert legend == lab["labels"]
    colours = browser.execute_script("""
        const c = document.getElementById('umap-types'), d = c.getContext('2d')
          .getImageData(0, 0, c.width, c.height).data, seen = new Set();
        for (let i = 0; i < d.length; i += 4) if (d[i + 3] === 255)
          seen.add('#' + [d[i], d[i + 1], d[i + 2]]
            .map(v => v.toString(16).padStart(2, '0')).join(''));
        return Array.from(seen);""")
    assert set(lab["colors"]) <= set(colours)


def test_flagged_genes_carry_a_badge(browser, pages):
    from selenium.webdriver.common.by import By

    _load(browser, pages["open"])
    flags = pages["payload"]["gene_flags"]
    assert flags  # the case has flagged genes
    first = next(it for it in pages["payload"]["items"] if it["id"] == browser.find_element(
        By.CSS_SELECTOR, "#item-list button.active").get_attribute("data-id"))
    shown = {g: flags[g] for g in first["genes"] if g in flags}
    assert shown
    got = browser.execute_script(
        "const o = {}; for (const g of document.querySelectorAll('#panel-attribution .gene-row'))"
        " { const b = g.querySelector('.flag-badge'); if (b) o[g.dataset.gene] = b.dataset.flag; }"
        " return o;")
    assert got == shown
    rows = browser.execute_script(
        "const o = {}; for (const r of document.querySelectorAll('.pp-table tr[data-gene]'))"
        " { const b = r.querySelector('.flag-badge'); if (b) o[r.dataset.gene] = b.dataset.flag; }"
        " return o;")
    assert rows == shown
    legend = browser.find_element(By.ID, "flag-legend").get_attribute("textContent")
    assert all(w in legend for w in ("ribosomal", "mitochondrial", "housekeeping"))
    note = browser.find_element(By.ID, "flag-note").text
    assert note.startswith(f"{sum(1 for g in first['genes'][:10] if g in flags)} of the top")


def test_book_frames_grow_to_their_content(browser, pages):
    """Embedded in the chapter, each frame is as tall as its page: only the chapter scrolls,
    and the form follows the window."""
    from selenium.webdriver.common.by import By

    browser.switch_to.default_content()
    browser.get(pages["embed"].as_uri())
    for name in ("open", "blinded"):
        if name == "blinded":
            browser.find_element(By.ID, "uv-tab-blinded").click()
        frame = browser.find_element(By.ID, f"uv-frame-{name}")
        inner = "return arguments[0].contentDocument.getElementById('app').offsetHeight"
        _wait(lambda: browser.execute_script(inner, frame) > 0
              and abs(frame.size["height"] - browser.execute_script(inner, frame) - 2) <= 2,
              what=f"{name} frame sized to its content")
        assert browser.execute_script(NESTED_SCROLLERS) == []
        assert browser.execute_script(
            "const d = arguments[0].contentDocument.scrollingElement;"
            "return d.scrollHeight <= d.clientHeight + 1", frame)
        # scroll the chapter into the frame (as far as the form can follow): it stays on screen
        room = browser.execute_script(
            "const d = arguments[0].contentDocument;"
            "return d.getElementById('layout').getBoundingClientRect().bottom"
            " - d.getElementById('panel-form').getBoundingClientRect().bottom - 20", frame)
        assert room > 100, room
        browser.execute_script("window.scrollTo(0, arguments[0].getBoundingClientRect().top"
                               " + window.scrollY + arguments[1])", frame, min(600, room))
        top = _wait(lambda: browser.execute_script(
            "const f = arguments[0], r = f.getBoundingClientRect(),"
            " p = f.contentDocument.getElementById('panel-form').getBoundingClientRect();"
            "return (r.top + p.top >= -1 && r.top + p.top < 60) ? r.top + p.top + 1 : 0;",
            frame), what=f"{name} form kept in view")
        assert top > 0
        _shot(browser, f"embedded_{name}")


def test_narrow_book_column_keeps_the_form_beside_the_evidence(browser, pages):
    """In a book's content column (about 900 px) the items go above and the form stays beside
    the evidence, still with one scroll."""
    from selenium.webdriver.common.by import By

    browser.switch_to.default_content()
    browser.set_window_size(900, HEIGHT)
    try:
        browser.get(pages["embed"].as_uri())
        frame = browser.find_element(By.ID, "uv-frame-open")
        _wait(lambda: frame.size["height"] > 900, what="frame sized")
        assert browser.execute_script(NESTED_SCROLLERS) == []
        rects = browser.execute_script(
            "const d = arguments[0].contentDocument, r = (id) => d.getElementById(id)"
            ".getBoundingClientRect(); return [r('sidebar'), r('detail'), r('form-col')]"
            ".map(b => ({top: b.top, bottom: b.bottom, left: b.left, right: b.right}));", frame)
        side, detail, form = rects
        assert side["bottom"] <= detail["top"] + 1 and form["left"] >= detail["right"] - 1
        _shot(browser, "embedded_900px")
    finally:
        browser.set_window_size(WIDTH, HEIGHT)


def test_no_console_errors(browser):
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
