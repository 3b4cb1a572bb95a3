"""Untrusted text in the expert viewer (issue 15, item 6): a rater's ratings file, cell labels
from a dataset and gene descriptions from a data table are shown as text and never run.

The open page is built from constructed outputs whose cell-type labels and one gene's
description carry markup; a ratings file whose fields hold ``<script>``, ``<img onerror=...>``
and ``javascript:`` text is imported through the page's file input in headless Chromium. Each
payload would set ``window.__pwned`` if it ran; the test asserts that it never is, that the
text shows literally, that malformed files are rejected with a message and import nothing,
and that the page's Content-Security-Policy blocks an inline handler even when markup reaches
the DOM. The Python reader (:func:`scconcepts.viewer.load_annotations`) applies the same limits
and the book's tables (:func:`scconcepts.tables.show`) escape the text.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from browser_util import wait_for
from test_viewer_blind import NAMES, _obs, _outputs

from scconcepts import tables, viewer

EVIL_IMG = '<img src=x onerror="window.top.__pwned=\'img\'">'
EVIL_SCRIPT = "<script>window.top.__pwned='script'</script>"
EVIL_URL = "javascript:window.top.__pwned='url'"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    folder = tmp_path_factory.mktemp("viewer_injection")
    obs = _obs()
    obs["cell_type"] = obs["cell_type"].replace({"B cell": EVIL_IMG, "NK cell": EVIL_SCRIPT})
    payload = viewer.build_payload({"alpha": _outputs(1, n_proto=3), "beta": _outputs(2, n_proto=4)},
                                   obs, model_names=NAMES, title="injection test",
                                   metadata_keys=["cell_type", "donor_id"], min_cells=10,
                                   seed=0, n_genes=8, umap_cells=40)
    gene = payload["items"][0]["genes"][0]
    payload["gene_info"][gene] = [EVIL_IMG + " " + EVIL_URL, EVIL_SCRIPT]
    ex = viewer.export_viewer(payload, folder, seed=1)
    return {"payload": payload, "path": ex.open_path, "folder": folder, "gene": gene}


@pytest.fixture(scope="module")
def browser(chromium):
    driver = chromium(1400, 1000)
    yield driver
    driver.quit()


def _answers(payload, **text):
    ann = {q["id"]: q["choices"][0][0] for q in payload["questions"]}
    ann.update({q["which"]: "" for q in payload["questions"]}, notes="", saved_at="")
    ann.update(text)
    return ann


def _export(payload, annotations, rater="dana"):
    return {"schema": viewer.ANNOTATION_SCHEMA, "study": payload["study"], "mode": "open",
            "rater": rater, "questions": [q["id"] for q in payload["questions"]],
            "annotations": annotations}


def _open(driver, path):
    from selenium.webdriver.common.by import By

    driver.get(path.as_uri())
    driver.execute_script("window.localStorage.clear()")
    driver.get(path.as_uri())
    wait_for(lambda: driver.find_elements(By.ID, "ann-form"), what="the annotation form")


def _import(driver, file):
    from selenium.webdriver.common.by import By

    driver.execute_script("document.getElementById('msg').textContent = ''")
    driver.find_element(By.ID, "import-file").send_keys(str(file))
    return wait_for(lambda: driver.find_element(By.ID, "msg").text, what="the import message")


def _pwned(driver):
    return driver.execute_script("return window.__pwned === undefined ? null : window.__pwned")


def _foreign_nodes(driver):
    """Elements the page never creates itself: images, extra scripts, javascript: links."""
    return driver.execute_script(
        "return [document.querySelectorAll('img').length,"
        " document.querySelectorAll('script').length,"
        " document.querySelectorAll('[href^=\"javascript\" i], [src^=\"javascript\" i]').length]")


def test_a_hostile_ratings_file_shows_as_text_and_runs_nothing(browser, page, tmp_path):
    from selenium.webdriver.common.by import By

    payload = page["payload"]
    first = payload["items"][0]["id"]
    process = next(q["which"] for q in payload["questions"] if q["id"] == "process")
    ann = _answers(payload, notes=EVIL_IMG, saved_at=EVIL_SCRIPT, **{process: EVIL_URL})
    file = tmp_path / "hostile.json"
    file.write_text(json.dumps(_export(payload, {first: ann}, rater=EVIL_SCRIPT)))
    _open(browser, page["path"])
    assert _foreign_nodes(browser) == [0, 2, 0]  # the payload block and the viewer's script
    msg = _import(browser, file)
    assert msg.startswith("Imported 1 annotation"), msg
    browser.find_element(By.CSS_SELECTOR, f'button.item[data-id="{first}"]').click()
    form = browser.find_element(By.ID, "ann-form")
    assert form.find_element(By.NAME, "notes").get_attribute("value") == EVIL_IMG
    assert form.find_element(By.NAME, process).get_attribute("value") == EVIL_URL
    assert EVIL_SCRIPT in browser.find_element(By.ID, "save-status").text
    assert browser.find_element(By.ID, "rater").get_attribute("value") == EVIL_SCRIPT
    time.sleep(0.5)  # an image error handler would have fired by now
    assert _pwned(browser) is None
    assert _foreign_nodes(browser) == [0, 2, 0]


def test_labels_and_gene_descriptions_from_data_files_show_as_text(browser, page):
    from selenium.webdriver.common.by import By

    _open(browser, page["path"])
    meta = browser.find_element(By.ID, "panel-metadata").text
    assert EVIL_IMG in meta or EVIL_SCRIPT in meta, meta
    legend = browser.find_element(By.ID, "umap-legend").text
    assert EVIL_IMG in legend and EVIL_SCRIPT in legend, legend
    browser.execute_script(
        "const g = document.querySelector('#panel-attribution g.gene-row[data-gene=\"' +"
        " arguments[0] + '\"]');"
        "g.dispatchEvent(new MouseEvent('mousemove', {clientX: 50, clientY: 50, bubbles: true}));",
        page["gene"])
    tip = wait_for(lambda: browser.find_element(By.ID, "tooltip").text, what="the gene tooltip")
    assert EVIL_IMG in tip and EVIL_URL in tip and EVIL_SCRIPT in tip, tip
    time.sleep(0.5)
    assert _pwned(browser) is None
    assert _foreign_nodes(browser) == [0, 2, 0]


@pytest.mark.parametrize("case", ["bad answer", "not text", "too long", "unknown field",
                                  "rater object", "not JSON", "too large"])
def test_malformed_ratings_files_are_rejected_and_import_nothing(browser, page, tmp_path, case):
    from selenium.webdriver.common.by import By

    payload = page["payload"]
    first = payload["items"][0]["id"]
    ann = _answers(payload)
    doc = _export(payload, {first: ann})
    if case == "bad answer":
        ann[payload["questions"][0]["id"]] = "maybe"
    elif case == "not text":
        ann["notes"] = {"html": EVIL_IMG}
    elif case == "too long":
        ann["notes"] = "x" * 6000
    elif case == "unknown field":
        ann["onclick"] = EVIL_URL
    elif case == "rater object":
        doc["rater"] = ["dana"]
    file = tmp_path / "bad.json"
    if case == "not JSON":
        file.write_text("{" + EVIL_SCRIPT)
    elif case == "too large":
        file.write_text(json.dumps(doc) + " " * (5 * 1024 * 1024 + 1))
    else:
        file.write_text(json.dumps(doc))
    _open(browser, page["path"])
    msg = _import(browser, file)
    assert msg.startswith("Import failed"), msg
    assert "error" in browser.find_element(By.ID, "msg").get_attribute("class")
    assert browser.find_element(By.ID, "progress").text.startswith("0 of ")
    assert _pwned(browser) is None


def test_the_content_security_policy_blocks_inline_handlers(browser, page):
    from selenium.webdriver.common.by import By

    _open(browser, page["path"])
    csp = browser.find_element(By.CSS_SELECTOR, 'meta[http-equiv="Content-Security-Policy"]')
    policy = csp.get_attribute("content")
    assert "script-src 'sha256-" in policy and "unsafe-inline' ;" not in policy
    # markup that reached the DOM anyway (the guard this policy adds): its handlers must not run
    browser.execute_script("document.body.insertAdjacentHTML('beforeend', arguments[0])",
                           '<img id="evil" src="x" onerror="window.__pwned=\'img\'">'
                           '<svg><image href="x" onerror="window.__pwned=\'svg\'"/></svg>')
    time.sleep(0.5)
    assert _pwned(browser) is None
    browser.execute_script("const a = document.createElement('a'); a.href = arguments[0];"
                           "document.body.append(a); a.click();",
                           "javascript:void(window.__pwned='url')")
    time.sleep(0.5)
    assert _pwned(browser) is None
    assert browser.find_elements(By.ID, "ann-form")  # the viewer itself still works


def test_the_python_reader_applies_the_same_limits_and_tables_escape(page, tmp_path):
    payload = page["payload"]
    studies = {payload["study"]: {it["id"]: {"id": it["id"], "model": it["model"],
                                             "kind": it["kind"], "unit": it["unit"]}
                                  for it in payload["items"]}}
    first = payload["items"][0]["id"]
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps(_export(payload, {first: _answers(payload, notes=EVIL_IMG)},
                                     rater=EVIL_SCRIPT)))
    df = viewer.load_annotations(ok, studies)
    assert df.loc[0, "notes"] == EVIL_IMG and df.loc[0, "rater"] == EVIL_SCRIPT
    html = tables.show(df[["rater", "notes"]]).to_html()
    assert "<img" not in html and "<script>" not in html
    assert "&lt;img" in html and "&lt;script&gt;" in html
    for bad in ({"notes": 5}, {"notes": "x" * 6000}, {"saved_at": ["now"]}):
        f = tmp_path / "bad.json"
        f.write_text(json.dumps(_export(payload, {first: _answers(payload, **bad)})))
        with pytest.raises(ValueError, match="must be text"):
            viewer.load_annotations(f, studies)
    f.write_text(json.dumps(_export(payload, {first: _answers(payload)}, rater={"x": 1})))
    with pytest.raises(ValueError, match="names no rater"):
        viewer.load_annotations(f, studies)
    f.write_text(" " * (viewer.annotations.MAX_FILE_BYTES + 1))
    with pytest.raises(ValueError, match="more than"):
        viewer.load_annotations(f, studies)
    assert np.all(pd.notna(df["level"]))
