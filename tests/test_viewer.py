"""Unit tests of scconcepts.viewer: blinding, HTML export, annotation loading, Fig 3A.a/Table 7.

The payloads here are small synthetic ones with the structure of :func:`build_payload` (the
real one is built from the pipeline by chapter 06, executed in tests/test_book.py and driven in
a browser by tests/test_browser.py).
"""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest

from scconcepts import viewer


def _item(model: str, kind: str, unit: int, genes=("CD74", "LYZ", "NKG7"), n_proto: int = 3):
    rng = np.random.default_rng(unit + (0 if kind == "concept" else 1000))
    att = sorted(rng.random(len(genes)).round(3).tolist(), reverse=True)
    pp = rng.random((len(genes), n_proto)).round(3).tolist()
    return {
        "id": f"{model}/{'C' if kind == 'concept' else 'N'}{unit}",
        "model": model, "kind": kind, "unit": unit, "category": "other",
        "n_cells": 10 + unit, "n_total": 100, "genes": list(genes),
        "attribution": att, "relative": [a / 2 for a in att],
        "per_prototype": pp, "per_prototype_relative": [[v / 2 for v in r] for r in pp],
        "prototype_mean_activation": 2.0,
        "metadata": {"cell_type": [["B cell", 0.8], ["NK cell", 0.2]]},
        "hist": {"counts": [3, 2, 1], "max": 4.5},
        "cells": base64.b64encode(bytes([0, 10, 255, 0])).decode(),
        "pathways": [{"term": "Antigen Processing (GO:0019882)", "nes": 1.9, "p": 0.001,
                      "fdr": 0.01}] if unit % 2 == 0 else [],
        "gsea_annotation": "weak" if unit % 2 == 0 else "none",
    }


@pytest.fixture
def payload():
    items = [_item(m, k, u) for m in ("scvi", "scgpt") for k in ("concept", "neuron")
             for u in (2, 5, 7)]
    xy = viewer._quantise_xy(np.array([[0, 0], [1, 1], [2, 0.5], [3, 3]], dtype=float))
    p = {"schema": viewer.VIEWER_SCHEMA, "mode": "open", "title": "test viewer",
         "models": ["scvi", "scgpt"], "model_names": {"scvi": "scVI", "scgpt": "scGPT"},
         "umaps": {"scvi": xy, "scgpt": xy}, "items": items,
         "gene_info": viewer._gene_info(["CD74", "LYZ", "NKG7"])}
    p["study"] = viewer._study_id(items, "open")
    return p


def _decoded_payload(page: str) -> dict:
    blob = re.search(r'<script type="application/octet-stream" id="payload">([^<]+)</script>',
                     page).group(1)
    return json.loads(base64.b64decode(blob).decode("utf-8"))


def test_gene_info_comes_from_the_bundled_table(payload):
    assert payload["gene_info"]["CD74"] == ["CD74 molecule", "protein-coding"]
    assert viewer._gene_info(["NOT_A_GENE"]) == {"NOT_A_GENE": ["", ""]}


def test_blinding_is_seeded_anonymous_and_reversible(payload):
    b1, key1 = viewer.blind_payload(payload, seed=3)
    b2, key2 = viewer.blind_payload(payload, seed=3)
    b3, _ = viewer.blind_payload(payload, seed=4)
    assert b1 == b2 and key1 == key2  # deterministic
    assert [i["attribution"] for i in b1["items"]] != [i["attribution"] for i in b3["items"]]
    by_open = {it["id"]: it for it in payload["items"]}
    for it in b1["items"]:
        assert re.fullmatch(r"item-\d{2}", it["id"])
        assert set(it) == set(viewer.BLIND_ITEM_FIELDS)  # no kind, unit, model, counts, ...
        src = by_open[key1["items"][it["id"]]["id"]]
        assert it["attribution"] == src["relative"]  # relative values only
        k = key1["items"][it["id"]]
        assert (k["model"], k["kind"], k["unit"]) == (src["model"], src["kind"], src["unit"])
    assert sorted(k["id"] for k in key1["items"].values()) == sorted(by_open)
    assert [i["id"] for i in b1["items"]] == sorted(i["id"] for i in b1["items"])
    # the shuffle mixes kinds: ids in order are not grouped by kind
    kinds = [key1["items"][i["id"]]["kind"] for i in b1["items"]]
    assert kinds != sorted(kinds) and kinds != sorted(kinds, reverse=True)
    with pytest.raises(ValueError, match="open payload"):
        viewer.blind_payload(b1)


def test_blinded_page_reveals_no_identity(payload):
    ex = viewer.export_viewer(payload, seed=0)
    page = ex.blinded_html
    assert not re.search(r"concept|neuron", page, re.I)
    data = _decoded_payload(page)
    text = json.dumps(data)
    assert not re.search(r"concept|neuron", text, re.I)
    for it in payload["items"]:
        assert it["id"] not in page and it["id"] not in text
    assert data["mode"] == "blinded" and data["study"] == ex.key["study"]
    assert ex.key["study"] not in (payload["study"],)
    # the open page does carry the identities
    assert "scvi/C2" in json.dumps(_decoded_payload(ex.open_html))


def test_pages_load_nothing(payload, tmp_path):
    ex = viewer.export_viewer(payload, tmp_path / "v", seed=0)
    for path in (ex.open_path, ex.blinded_path):
        page = path.read_text()
        assert not re.search(r"""(src|href)\s*=""", page), "the viewer must not load files"
        urls = re.findall(r"(?:https?:)?//[\w.-]+", page)
        assert set(urls) <= {"http://www.w3.org"}, urls
    key = json.loads(ex.key_path.read_text())
    assert key == ex.key and ex.key_path.name == f"blinded_key_{ex.key['study']}.json"
    assert ex.items.set_index("id").loc["scvi/C2", "best_pathway"].startswith("Antigen")
    with pytest.raises(ValueError, match="schema"):
        viewer.render_html({"schema": "other"})


def test_embed_html_holds_both_documents(payload):
    ex = viewer.export_viewer(payload, seed=0)
    out = viewer.embed_html(ex)
    assert out.count("<iframe") == 2 and 'id="uv-frame-blinded"' in out
    assert "srcdoc=" in out and "&lt;!DOCTYPE html&gt;" in out


def _write(path, doc):
    path.write_text(json.dumps(doc))
    return path


def _answer(**kw):
    a = {"cell_type": "no", "cell_type_which": "", "tissue": "no", "tissue_which": "",
         "process": "no", "process_explanation": "", "notes": "", "saved_at": "2025-01-01"}
    a.update(kw)
    return a


def test_load_annotations_maps_blinded_ids_back(payload, tmp_path):
    ex = viewer.export_viewer(payload, seed=0)
    ids = list(ex.key["items"])
    doc = {"schema": viewer.ANNOTATION_SCHEMA, "study": ex.key["study"], "mode": "blinded",
           "rater": "alice", "annotations": {
               ids[0]: _answer(cell_type="yes", cell_type_which="B cell"),
               ids[1]: _answer(process="unclear"),
               ids[2]: _answer()}}
    ann = viewer.load_annotations(_write(tmp_path / "a.json", doc), ex.studies)
    assert list(ann["item"]) == ids[:3]
    for r in ann.to_dict("records"):
        k = ex.key["items"][r["item"]]
        assert (r["id"], r["model"], r["kind"], r["unit"]) == (k["id"], k["model"], k["kind"],
                                                                  k["unit"])
    assert list(ann["level"]) == ["interpretable", "signal but unclear", "not interpretable"]
    assert set(ann["rater"]) == {"alice"}


def test_load_annotations_errors(payload, tmp_path):
    ex = viewer.export_viewer(payload, seed=0)
    good = {"schema": viewer.ANNOTATION_SCHEMA, "study": payload["study"], "mode": "open",
            "rater": "bob", "annotations": {"scvi/C2": _answer()}}
    with pytest.raises(ValueError, match="schema"):
        viewer.load_annotations(_write(tmp_path / "s.json", {**good, "schema": "x"}), ex.studies)
    with pytest.raises(ValueError, match="study id"):
        viewer.load_annotations(_write(tmp_path / "t.json", {**good, "study": "abc"}), ex.studies)
    with pytest.raises(ValueError, match="unknown item id"):
        viewer.load_annotations(_write(tmp_path / "u.json", {
            **good, "annotations": {"scvi/C999": _answer()}}), ex.studies)
    with pytest.raises(ValueError, match="process='maybe'"):
        viewer.load_annotations(_write(tmp_path / "v.json", {
            **good, "annotations": {"scvi/C2": _answer(process="maybe")}}), ex.studies)
    (tmp_path / "w.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        viewer.load_annotations(tmp_path / "w.json", ex.studies)
    with pytest.raises(FileNotFoundError):
        viewer.load_annotations(tmp_path / "missing.json", ex.studies)


def test_fig3a_table7_and_agreement(payload, tmp_path):
    ex = viewer.export_viewer(payload, seed=0)
    folder = tmp_path / "ratings"
    folder.mkdir()
    for rater, c2 in (("alice", _answer(cell_type="yes", cell_type_which="B cell",
                                        process="yes", process_explanation="MHC II")),
                      ("bob", _answer(process="unclear"))):
        _write(folder / f"{rater}.json", {
            "schema": viewer.ANNOTATION_SCHEMA, "study": payload["study"], "mode": "open",
            "rater": rater, "annotations": {"scvi/C2": c2, "scvi/C5": _answer(),
                                            "scvi/N2": _answer()}})
    ann = viewer.load_annotations(folder, ex.studies)
    tab = viewer.interpretability_table(ann)
    assert tab.loc[("scvi", "concept"), "interpretable"] == pytest.approx(0.25)
    assert tab.loc[("scvi", "concept"), "signal but unclear"] == pytest.approx(0.25)
    assert tab.loc[("scvi", "concept"), "not interpretable"] == pytest.approx(0.5)
    assert tab.loc[("scvi", "neuron"), "not interpretable"] == pytest.approx(1.0)
    assert tab.loc[("scvi", "concept"), ["n_ratings", "n_items", "n_raters"]].tolist() == [4, 2, 2]
    fig = viewer.plot_interpretability(tab)
    assert len(fig.axes[0].patches) == len(tab) * len(viewer.LEVELS)
    widths = [p.get_width() for p in fig.axes[0].patches]  # stacked in LEVELS order
    for j, lev in enumerate(viewer.LEVELS):
        assert widths[j * len(tab):(j + 1) * len(tab)] == pytest.approx(tab[lev].tolist())
    assert fig.axes[0].get_xlabel() == "fraction of ratings"
    rows = viewer.table7_rows(ann, ex.items)
    assert rows.to_dict("records") == [{
        "ID": "scvi/C2", "rater": "alice", "expert label": "B cell",
        "expert description": "MHC II",
        "pathway enrichment label": "Antigen Processing (GO:0019882) (NES 1.90, p 0.001)",
        "top-10 genes": ", ".join(payload["items"][0]["genes"])}]
    agree = viewer.rater_agreement(ann)
    assert agree.loc[("scvi", "neuron"), "share unanimous"] == 1.0
    assert agree.loc[("scvi", "concept"), "share unanimous"] == 0.5
    with pytest.raises(ValueError, match="No annotations"):
        viewer.interpretability_table(ann.iloc[:0])


def test_interpretability_level_rule():
    lv = viewer.interpretability_level
    assert lv({"cell_type": "no", "tissue": "yes", "process": "no"}) == "interpretable"
    assert lv({"cell_type": "no", "tissue": "no", "process": "yes"}) == "interpretable"
    assert lv({"cell_type": "yes", "tissue": "no", "process": "unclear"}) == "interpretable"
    assert lv({"cell_type": "no", "tissue": "no", "process": "unclear"}) == "signal but unclear"
    assert lv({"cell_type": "no", "tissue": "no", "process": "no"}) == "not interpretable"


def test_preview_panels(payload):
    panels, dots = viewer.preview_panels(payload, n_genes=2)
    assert list(panels) == ["scVI concept 2", "scVI neuron 2", "scGPT concept 2",
                            "scGPT neuron 2"]
    assert panels["scVI concept 2"].index.tolist() == ["CD74", "LYZ"]
    assert dots["scVI concept 2"].shape == (3, 2)


def test_gsea_summary_keeps_top_terms():
    """enrichment.annotate_units stores the top positively enriched sets for the viewer."""
    from scconcepts.attribution import AttributionResult
    from scconcepts.enrichment import annotate_units

    genes = [f"G{i}" for i in range(60)]
    scores = np.linspace(1, -1, 60)[None]
    sets = {"TOP": genes[:15], "MID": genes[20:35], "LOW": genes[45:]}
    att = AttributionResult(units=np.array([0]), genes=np.array(genes), scores=scores,
                            per_prototype=scores[:, None], prototypes=np.zeros((1, 1), int),
                            counterfactuals=np.zeros((1, 1, 1), int),
                            prototype_activation=np.ones((1, 1)), kind="concept")
    summary, _ = annotate_units(att, sets, permutations=50, strong_permutations=50,
                                min_size=5, progress=False, n_top_terms=2)
    top = json.loads(summary.loc[0, "top_terms"])
    assert [t["term"] for t in top][0] == "TOP" == summary.loc[0, "best_term"]
    assert len(top) <= 2 and all(t["NES"] > 0 for t in top)
    items = viewer._gsea_terms(summary.iloc[0])
    assert items[0]["term"] == "TOP" and items[0]["nes"] == pytest.approx(top[0]["NES"], rel=1e-3)
    # an older cached summary without top_terms falls back to the best term
    legacy = summary.drop(columns="top_terms").iloc[0]
    assert [t["term"] for t in viewer._gsea_terms(legacy)] == ["TOP"]


def _outputs(n_cells=40, d=4, c=6, genes=("CD74", "LYZ", "NKG7", "GNLY"), seed=0):
    """Synthetic workflow outputs of one model (what chapter 06 fetches from ``wf``)."""
    from scconcepts.attribution import AttributionResult

    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n_cells, d)).astype(np.float32)
    codes = np.where(rng.random((n_cells, c)) < 0.4, rng.random((n_cells, c)), 0.0)
    m = len(genes)

    def att(units, kind):
        n = len(units)
        return AttributionResult(
            units=np.asarray(units), genes=np.array(genes), scores=rng.random((n, m)),
            per_prototype=rng.random((n, 2, m)), prototypes=np.tile([0, 1], (n, 1)),
            counterfactuals=np.full((n, 2, 1), 2), prototype_activation=np.ones((n, 2)),
            kind=kind)

    def table(units, kind):
        return pd.DataFrame({"unit": units, "kind": kind, "best_term": "T (GO:1)", "NES": 1.5,
                             "pval": 0.001, "fdr": 0.1, "annotation": "weak"})

    return {"embeddings": A, "umap": rng.normal(size=(n_cells, 2)), "codes": codes,
            "attribution": {"concept": att([1, 3, 4], "concept"), "neuron": att([0, 2], "neuron")},
            "gsea": {"concept": table([4, 1], "concept"), "neuron": table([2], "neuron")}}


def test_build_payload_from_workflow_outputs():
    """build_payload takes each model's outputs (no workflow object) and keeps the GSEA units."""
    import scipy.sparse as sp

    obs = pd.DataFrame({"cell_type": np.repeat(["B cell", "NK cell"], 20)})
    a, b = _outputs(seed=1), _outputs(seed=2)
    b["codes"] = sp.csr_matrix(b["codes"])
    p = viewer.build_payload({"pca": a, "other": b}, obs, model_names={"pca": "PCA"},
                             title="t", metadata_keys=["cell_type"], min_cells=1, seed=0,
                             n_genes=3, umap_cells=10)
    assert p["models"] == ["pca", "other"] and p["model_names"] == {"pca": "PCA", "other": "other"}
    assert [it["id"] for it in p["items"]] == ["pca/C1", "pca/C4", "pca/N2", "other/C1",
                                               "other/C4", "other/N2"]
    it = p["items"][0]
    assert len(it["genes"]) == 3 and it["n_total"] == 40
    assert it["n_cells"] == int((a["codes"][:, 1] > 0).sum())
    assert it["pathways"][0]["term"] == "T (GO:1)" and it["gsea_annotation"] == "weak"
    assert p["umaps"]["pca"]["n"] == 10
    assert viewer.preview_panels(p, n_genes=2)[0].keys() >= {"PCA concept 1", "other neuron 2"}
    # explicit units; a unit without attribution is an error
    items, _ = viewer.collect_items("pca", **a, obs=obs, metadata_keys=["cell_type"],
                                    units={"concept": [3]}, n_genes=2)
    assert [i["id"] for i in items] == ["pca/C3", "pca/N2"]
    with pytest.raises(ValueError, match="no attribution"):
        viewer.collect_items("pca", **a, obs=obs, units={"concept": [5]})
    with pytest.raises(ValueError, match="same cells"):
        viewer.collect_items("pca", **{**a, "umap": a["umap"][:5]}, obs=obs)
    with pytest.raises(ValueError, match="No models"):
        viewer.build_payload({}, obs)
