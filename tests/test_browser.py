"""The expert-interpretation viewer of the BUILT smoke book, driven in headless Chromium.

Uses Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them with apt-get) through
selenium, from ``file://`` with no server. The tests run in file order on one browser session:
open the chapter, click an item, hover a gene, save an annotation, export it, reload, switch to
the blinded mode and check it leaks no identity, check the console, and feed the exported JSON
back to chapter 06 as its ``annotations`` parameter. Screenshots go to ``test-artifacts/``
(git-ignored).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import time
from pathlib import Path

import pytest
from browser_util import wait_for

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHAPTER = "06_expert_interpretation"
RATER = "test rater"
#: The only console error allowed: pydata-sphinx-theme logs it on a first visit, when no theme
#: mode is stored yet (it then picks "auto"); it is not the viewer's.
THEME_NOTICE = "Got invalid theme mode"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory):
    driver = chromium(1400, 1000, downloads=tmp_path_factory.mktemp("downloads"))
    driver.console = []
    yield driver
    driver.quit()


def _logs(driver):
    driver.console.extend(driver.get_log("browser"))
    return driver.console


def _shot(driver, name):
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"viewer_{name}.png"))


_wait = wait_for


@pytest.fixture(scope="module")
def page(smoke_site):
    proc = smoke_site["proc"]
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    path = smoke_site["html"] / "book" / "_executed" / f"{CHAPTER}.html"
    assert path.is_file(), f"{path} not built"
    return path


def _open_frame(driver, page, name="open"):
    from selenium.webdriver.common.by import By

    driver.switch_to.default_content()
    if not driver.current_url.endswith(page.name):
        driver.get(page.as_uri())
    if name == "blinded":
        _click(driver, driver.find_element(By.ID, "uv-tab-blinded"))
    frame = driver.find_element(By.ID, f"uv-frame-{name}")
    driver.execute_script("arguments[0].scrollIntoView()", frame)
    driver.switch_to.frame(frame)
    _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#item-list button"), what="item list")


def _click(driver, element):
    """Click a control of the chapter page after centring it (the theme's header is sticky)."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def _payload(driver):
    blob = driver.execute_script("return document.getElementById('payload').textContent")
    return json.loads(base64.b64decode(blob.strip()).decode("utf-8"))


def test_open_viewer_and_click_an_item(browser, page):
    from selenium.webdriver.common.by import By

    _open_frame(browser, page)
    data = _payload(browser)
    assert data["mode"] == "open"
    buttons = browser.find_elements(By.CSS_SELECTOR, "#item-list button")
    assert len(buttons) == len(data["items"]) >= 2
    _click(browser, buttons[1])
    item = data["items"][1]
    assert browser.find_element(By.ID, "item-title").text.endswith(f"{item['kind']} {item['unit']}")
    labels = browser.find_elements(By.CSS_SELECTOR, "#panel-attribution .gene-label")
    assert [e.text for e in labels] == item["genes"]
    for panel in ("panel-metadata", "panel-histogram", "panel-umap", "panel-pathways",
                  "panel-form"):
        assert browser.find_element(By.ID, panel).is_displayed()
    # the UMAP canvas has coloured (activating) pixels when the unit activates in drawn cells
    painted = browser.execute_script("""
        const c = document.getElementById('umap-canvas'), d = c.getContext('2d')
          .getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > d[i + 2] + 40) n++;
        return n;""")
    assert painted > 0 or base64.b64decode(item["cells"]).count(0) == len(
        base64.b64decode(item["cells"]))
    # search filters the list
    box = browser.find_element(By.ID, "search")
    box.send_keys(item["genes"][0])
    shown = browser.find_elements(By.CSS_SELECTOR, "#item-list button")
    assert item["id"] in [b.get_attribute("data-id") for b in shown]
    box.clear()
    box.send_keys("zzzz-no-such-thing")
    assert not browser.find_elements(By.CSS_SELECTOR, "#item-list button")
    box.clear()
    browser.execute_script("document.getElementById('search').dispatchEvent(new Event('input'))")
    _shot(browser, "open_item")


def test_hover_a_gene_shows_its_description(browser, page):
    from selenium.webdriver.common.by import By

    from scconcepts.data import load_gene_info

    info = load_gene_info()
    labels = browser.find_elements(By.CSS_SELECTOR, "#panel-attribution .gene-label")
    known = [e for e in labels if e.text in info.index]
    assert known, "no top gene is in the bundled gene table"
    gene = known[0]
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", gene)
    # The frame grows to its content (no inner scroll), and chromedriver maps pointer
    # coordinates into such a frame several rows off; a real pointer's mousemove lands on the
    # label itself, so dispatch that event at the label's centre.
    browser.execute_script(
        "const e = arguments[0], r = e.getBoundingClientRect();"
        "e.dispatchEvent(new MouseEvent('mousemove', {bubbles: true, clientX: r.x + r.width / 2,"
        " clientY: r.y + r.height / 2}));", gene)
    tip = browser.find_element(By.ID, "tooltip")
    _wait(tip.is_displayed, what="tooltip")
    text = tip.text
    assert text.startswith(gene.text)
    assert info.loc[gene.text, "name"] in text
    assert info.loc[gene.text, "gene_type"] in text
    assert "per prototype:" in text
    _shot(browser, "hover")


def _fill_form(browser, which="B cell", explanation="antigen presentation"):
    from selenium.webdriver.common.by import By

    form = browser.find_element(By.ID, "ann-form")
    rater = browser.find_element(By.ID, "rater")
    if not rater.get_attribute("value"):  # without a rater id, saving is refused
        form.find_element(By.ID, "save-btn").click()
        assert "Enter your rater id" in browser.find_element(By.ID, "form-error").text
        rater.send_keys(RATER)
    # saving an incomplete form is refused, with the reason
    form.find_element(By.CSS_SELECTOR, "input[name=cell_type][value=yes]").click()
    form.find_element(By.ID, "save-btn").click()
    assert "Please answer every question" in browser.find_element(By.ID, "form-error").text
    # the tissue question is asked only when the data hold several tissues
    asked = [q["id"] for q in _payload(browser)["questions"]]
    tissues = form.find_elements(By.CSS_SELECTOR, "input[name=tissue][value=no]")
    assert bool(tissues) == ("tissue" in asked)
    for t in tissues:
        t.click()
    form.find_element(By.CSS_SELECTOR, "input[name=process][value=yes]").click()
    form.find_element(By.ID, "save-btn").click()
    assert "Which cell type" in browser.find_element(By.ID, "form-error").text
    form.find_element(By.NAME, "cell_type_which").send_keys(which)
    form.find_element(By.NAME, "process_explanation").send_keys(explanation)
    form.find_element(By.NAME, "notes").send_keys("free text note")
    form.find_element(By.ID, "save-btn").click()
    _wait(lambda: browser.find_element(By.ID, "save-status").text.startswith("Saved"),
          what="saved status")


def test_fill_in_and_save_an_annotation(browser, page):
    from selenium.webdriver.common.by import By

    _fill_form(browser)
    n = len(_payload(browser)["items"])
    assert browser.find_element(By.ID, "progress").text == f"1 of {n} annotated"
    active = browser.find_element(By.CSS_SELECTOR, "#item-list button.active")
    assert active.text.startswith("\u2713")


def _download(browser, pattern, click):
    before = set(browser.downloads.glob(pattern))
    click()
    path = _wait(lambda: [p for p in browser.downloads.glob(pattern) if p not in before
                          and not p.name.endswith(".crdownload")], what=f"download {pattern}")[0]
    time.sleep(0.2)
    return path


def test_export_json(browser, page):
    from selenium.webdriver.common.by import By

    data = _payload(browser)
    assert browser.find_element(By.ID, "rater").get_attribute("value") == RATER
    path = _download(browser, "annotations_*.json",
                     lambda: _click(browser, browser.find_element(By.ID, "export-btn")))
    doc = json.loads(path.read_text())
    assert doc["schema"] == "expert-annotations/1"
    assert doc["study"] == data["study"] and doc["mode"] == "open" and doc["rater"] == RATER
    assert doc["questions"] == [q["id"] for q in data["questions"]]
    item = data["items"][1]
    assert list(doc["annotations"]) == [item["id"]]
    ann = doc["annotations"][item["id"]]
    expected = {"cell_type": "yes", "cell_type_which": "B cell", "tissue": "no",
                "tissue_which": "", "process": "yes",
                "process_explanation": "antigen presentation", "notes": "free text note"}
    if "tissue" not in doc["questions"]:
        expected = {k: v for k, v in expected.items() if not k.startswith("tissue")}
    assert {k: v for k, v in ann.items() if k != "saved_at"} == expected
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(path, ARTIFACTS / "annotations_open.json")
    browser.exported_open = path


def test_reload_keeps_the_annotation(browser, page):
    from selenium.webdriver.common.by import By

    browser.switch_to.default_content()
    browser.refresh()
    _open_frame(browser, page)
    data = _payload(browser)
    n = len(data["items"])
    assert browser.find_element(By.ID, "progress").text == f"1 of {n} annotated"
    assert browser.find_element(By.ID, "rater").get_attribute("value") == RATER
    _click(browser, browser.find_elements(By.CSS_SELECTOR, "#item-list button")[1])
    form = browser.find_element(By.ID, "ann-form")
    assert form.find_element(By.CSS_SELECTOR, "input[name=cell_type][value=yes]").is_selected()
    assert form.find_element(By.NAME, "cell_type_which").get_attribute("value") == "B cell"
    assert form.find_element(By.CSS_SELECTOR, "input[name=process][value=yes]").is_selected()
    assert browser.find_element(By.ID, "save-status").text.startswith("Already annotated on")


IDENTITY = re.compile(r"concept|neuron", re.I)


def _assert_blind(browser, open_items):
    from selenium.webdriver.common.by import By

    from scconcepts.viewer import BLIND_FIELDS, BLIND_ITEM_FIELDS

    data = _payload(browser)
    assert data["mode"] == "blinded"
    assert set(data) == set(BLIND_FIELDS)  # no model names, no per-model UMAPs
    for it in data["items"]:
        assert re.fullmatch(r"item-\d+", it["id"])
        assert tuple(it) == BLIND_ITEM_FIELDS  # no category, counts, metadata or pathways
    assert not IDENTITY.search(json.dumps(data))
    # visit every item so that everything the page can show is in the DOM
    for i in range(len(data["items"])):
        _click(browser, browser.find_elements(By.CSS_SELECTOR, "#item-list button")[i])
        dom = browser.execute_script("return document.documentElement.outerHTML")
        assert not IDENTITY.search(dom), IDENTITY.search(dom).group(0)
        for it in open_items:
            assert it["id"] not in dom
            assert not any(p["term"] in dom for p in it["pathways"])
        for panel in ("panel-metadata", "panel-histogram", "panel-pathways"):
            assert not browser.find_elements(By.ID, panel)
    assert not IDENTITY.search(browser.execute_script("return document.title"))
    data_attrs = browser.execute_script(
        "return Array.from(document.querySelectorAll('[data-id]')).map(e => e.dataset.id)")
    assert data_attrs and all(re.fullmatch(r"item-\d+", a) for a in data_attrs)
    return data


def test_blinded_mode_leaks_no_identity(browser, page):
    from selenium.webdriver.common.by import By

    _open_frame(browser, page)
    open_items = _payload(browser)["items"]
    _open_frame(browser, page, "blinded")
    data = _assert_blind(browser, open_items)
    assert [i["genes"] for i in data["items"]] != [i["genes"] for i in open_items], \
        "blinded items are not shuffled"
    assert not browser.find_elements(By.ID, "filter-kind")  # no unit-type filter when blinded
    # rate one blinded item and export it (used by the chapter test below)
    _click(browser, browser.find_elements(By.CSS_SELECTOR, "#item-list button")[0])
    _fill_form(browser, which="NK cell", explanation="cytotoxicity")
    path = _download(browser, "annotations_*.json",
                     lambda: _click(browser, browser.find_element(By.ID, "export-btn")))
    doc = json.loads(path.read_text())
    assert doc["mode"] == "blinded" and doc["study"] == data["study"]
    assert list(doc["annotations"]) == [data["items"][0]["id"]]
    browser.exported_blinded = path
    _shot(browser, "blinded")


def test_saved_blinded_file_works_standalone(browser, page):
    """The 'save the blinded viewer' button gives a file that raters can open alone."""
    from selenium.webdriver.common.by import By

    browser.switch_to.default_content()
    path = _download(browser, "viewer_blinded*.html",
                     lambda: _click(browser, browser.find_element(By.ID, "uv-save-blinded")))
    text = path.read_text(encoding="utf-8")
    assert not IDENTITY.search(text)
    _open_frame(browser, page)
    open_items = _payload(browser)["items"]
    browser.switch_to.default_content()
    browser.get(path.as_uri())
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#item-list button"), what="items")
    _assert_blind(browser, open_items)
    # the same study as the embedded blinded page, so the annotation saved there is here too
    assert browser.find_element(By.ID, "progress").text.startswith("1 of ")


def test_no_console_errors(browser, page):
    errors = [e for e in _logs(browser) if e["level"] == "SEVERE"
              and THEME_NOTICE not in e["message"]]
    assert not errors, errors
    browser.get(page.as_uri())
    _shot(browser, "chapter")


def test_exported_json_gives_fig3a_in_chapter_06(browser, smoke_book, tmp_path):
    """The exported files, given back as chapter 06's ``annotations`` value the way the runner
    passes it (``--set annotations=...`` puts it in the profile values), give Fig 3A.a."""
    import jupytext
    import nbformat
    import papermill

    from scconcepts import book as runner

    files = [str(browser.exported_open), str(browser.exported_blinded)]
    src = next(p for p in smoke_book.sources if p.stem == CHAPTER)
    nb = jupytext.read(src)
    nb.metadata.setdefault("kernelspec", {"name": runner.KERNEL_NAME, "language": "python",
                                          "display_name": "Python 3"})
    src_nb = tmp_path / "in.ipynb"
    nbformat.write(nb, src_nb)
    out = tmp_path / "out.ipynb"
    with runner.kernel_environment():
        papermill.execute_notebook(
            str(src_nb), str(out), kernel_name=runner.KERNEL_NAME, cwd=str(ROOT),
            progress_bar=False,
            parameters={"profile": "smoke", "params": {**smoke_book.params.overrides,
                                                       "annotations": files}})
    done = nbformat.read(out, as_version=4)
    texts, images = [], 0
    for cell in done.cells:
        for o in cell.get("outputs", []):
            assert o.get("output_type") != "error"
            d = o.get("data", {})
            # glued outputs are stored under application/papermill.record/<mime>
            texts.append("\n".join(str(v) for k, v in d.items()
                                   if k.endswith(("text/markdown", "text/plain", "text/html"))))
            images += any(k.endswith("image/png") for k in d)
    text = "\n".join(texts)
    assert "No annotations are loaded yet" not in text
    # ratings per rater and mode (one in the open page, one in the blinded page)
    counts = next(t for t in texts if "ratings" in t and "items" in t and RATER in t)
    assert "blinded" in counts and "open" in counts, counts
    fig3a = next(t for t in texts if "signal but unclear" in t and "ratings" in t)
    assert "interpretable" in fig3a
    assert images >= 2  # the static preview and Fig 3A.a
    table7 = next(t for t in texts if "expert label" in t)
    assert "B cell" in table7 and "NK cell" in table7
