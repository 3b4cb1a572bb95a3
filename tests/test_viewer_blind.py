"""The blinded viewer payload (scconcepts.viewer.blind), the form's questions, the UMAP's cell
labels and the gene flags of the payload, on constructed workflow outputs in which concepts and
neurons differ the way real ones do (neurons activate in about half the cells, concepts in few;
the models have different N_p; one unit lacks a prototype)."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest

from scconcepts import viewer
from scconcepts.concepts import CATEGORY_ORDER

GENES = ("RPL13A", "MT-CO1", "GAPDH", "CD74", "LYZ", "NKG7", "GNLY", "MS4A1")
PATHWAY = "Antigen Processing And Presentation (GO:0019882)"
NAMES = {"alpha": "Alpha net", "beta": "Beta net"}
N_CELLS = 60


def _outputs(seed: int, n_proto: int, missing: bool = False):
    """One model's outputs: 3 sparse concepts (one active in 4 cells only) and 2 neurons."""
    from scconcepts.attribution import AttributionResult

    rng = np.random.default_rng(seed)
    A = rng.normal(size=(N_CELLS, 4)).astype(np.float32)
    codes = np.zeros((N_CELLS, 6))
    for u, n_on in ((1, 12), (3, 4), (4, 20)):
        on = rng.choice(N_CELLS, n_on, replace=False)
        codes[on, u] = rng.random(n_on) + 0.1
    m = len(GENES)

    def att(units, kind):
        n = len(units)
        protos = np.tile(np.arange(n_proto), (n, 1))
        if missing and kind == "concept":
            protos[0, -1] = -1  # the first concept lacks a prototype
        pp = rng.random((n, n_proto, m))
        pp[protos < 0] = np.nan
        return AttributionResult(
            units=np.asarray(units), genes=np.array(GENES), scores=rng.random((n, m)),
            per_prototype=pp, prototypes=protos,
            counterfactuals=np.full((n, n_proto, 1), 2),
            prototype_activation=np.ones((n, n_proto)), kind=kind)

    def table(units, kind):
        return pd.DataFrame({"unit": units, "kind": kind, "best_term": PATHWAY, "NES": 1.5,
                             "pval": 0.001, "fdr": 0.1, "annotation": "strong"})

    return {"embeddings": A, "umap": rng.normal(size=(N_CELLS, 2)), "codes": codes,
            "attribution": {"concept": att([1, 3, 4], "concept"), "neuron": att([0, 2], "neuron")},
            "gsea": {"concept": table([1, 3, 4], "concept"), "neuron": table([0, 2], "neuron")}}


def _obs(tissues=("blood",)):
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "cell_type": rng.choice(["B cell", "NK cell", "monocyte"], N_CELLS),
        "tissue": rng.choice(list(tissues), N_CELLS),
        "donor_id": rng.choice(["d1", "d2"], N_CELLS)})


@pytest.fixture(scope="module")
def payload():
    return viewer.build_payload(
        {"alpha": _outputs(1, n_proto=3, missing=True), "beta": _outputs(2, n_proto=4)},
        _obs(), model_names=NAMES, title="t", metadata_keys=["cell_type", "donor_id"],
        min_cells=10, seed=0, n_genes=6, umap_cells=40)


def _strings(obj, skip=("cells", "x", "y", "codes")):
    """Every key and string value of a JSON object, except base64 blobs."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield str(k)
            if k not in skip:
                yield from _strings(v, skip)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v, skip)
    elif isinstance(obj, str):
        yield obj


def _active(b64: str) -> int:
    return int(np.count_nonzero(np.frombuffer(base64.b64decode(b64), dtype=np.uint8)))


def test_the_open_payload_differs_the_way_real_units_do(payload):
    """The case is a fair test of blinding: without it, counts and prototypes would tell."""
    by_kind = {k: [it for it in payload["items"] if it["kind"] == k] for k in ("concept", "neuron")}
    assert max(it["n_cells"] for it in by_kind["concept"]) < min(
        it["n_cells"] for it in by_kind["neuron"])
    assert {it["n_prototypes"] for it in payload["items"]} == {2, 3, 4}
    assert "not enough data" in {it["category"] for it in payload["items"]}
    assert all(it["pathways"][0]["term"] == PATHWAY for it in payload["items"])


def test_blinded_payload_holds_no_identity_count_category_or_pathway(payload):
    blinded, key = viewer.blind_payload(payload, seed=1)
    assert set(blinded) == set(viewer.BLIND_FIELDS)
    for it in blinded["items"]:
        assert tuple(it) == viewer.BLIND_ITEM_FIELDS
    text = "\n".join(_strings(blinded))
    forbidden = ["concept", "neuron", PATHWAY, "GO:", "alpha", "beta", *NAMES.values(),
                 *[c for c in CATEGORY_ORDER if c != "other"], "n_cells", "n_total",
                 "category", "pathway", "metadata", "hist", "model", "donor"]
    for word in forbidden:
        assert word.lower() not in text.lower(), word
    assert list(blinded["umaps"]) == ["cells"]
    # the key maps every opaque id back
    assert {v["id"] for v in key["items"].values()} == {it["id"] for it in payload["items"]}
    assert key["shown"] == blinded["shown"]


def test_blinded_items_show_equal_prototypes_and_cells(payload):
    blinded, key = viewer.blind_payload(payload, seed=1)
    n_proto, n_cells = blinded["shown"]["prototypes"], blinded["shown"]["cells"]
    assert n_proto == 2  # the fewest present (alpha's first concept: 2 of 3)
    open_on = [_active(it["cells"]) for it in payload["items"]]
    assert n_cells == min(n for n in open_on if n > 0) and max(open_on) > n_cells
    by_open = {it["id"]: it for it in payload["items"]}
    for it in blinded["items"]:
        assert {len(r) for r in it["per_prototype"]} == {n_proto}
        assert all(v is not None for r in it["per_prototype"] for v in r)
        assert _active(it["cells"]) == n_cells
        src = by_open[key["items"][it["id"]]["id"]]
        # the kept cells are the source's most active ones, coded by rank
        q = np.frombuffer(base64.b64decode(src["cells"]), dtype=np.uint8)
        b = np.frombuffer(base64.b64decode(it["cells"]), dtype=np.uint8)
        assert q[b > 0].min() >= np.sort(q)[-n_cells]
        assert sorted(b[b > 0].tolist()) == sorted(
            (1 + np.round(254 * np.arange(n_cells) / max(n_cells - 1, 1))).astype(int).tolist())


def test_blinding_needs_one_set_of_drawn_cells(payload):
    other = json.loads(json.dumps(payload))
    other["umaps"]["beta"]["cells"] = "0" * 12
    with pytest.raises(ValueError, match="draw different cells"):
        viewer.blind_payload(other)


def test_questions_follow_the_metadata(payload):
    assert [q["id"] for q in payload["questions"]] == ["cell_type", "process"]  # all blood
    assert viewer.form_questions(_obs(("blood", "lung"))) == ["cell_type", "tissue", "process"]
    assert viewer.form_questions(pd.DataFrame({"x": [1, 2]})) == ["process"]
    assert viewer.form_questions(pd.DataFrame({"tissue_general": ["a", "b"]})) == [
        "tissue", "process"]
    q = payload["questions"][0]
    assert q["choices"] == [["no", "No"], ["yes", "Yes"]] and q["which"] == "cell_type_which"


def test_cell_labels_colour_the_drawn_cells(payload):
    lab = payload["cell_labels"]
    cells = viewer.drawn_cells(N_CELLS, 40, 0)
    codes = np.frombuffer(base64.b64decode(lab["codes"]), dtype=np.uint8)
    assert [lab["labels"][c] for c in codes] == _obs()["cell_type"].to_numpy()[cells].tolist()
    assert len(set(lab["colors"])) == len(lab["colors"]) == 3
    many = pd.DataFrame({"cell_type": [f"t{i % 12}" for i in range(120)]})
    big = viewer.payload._cell_labels(many, "cell_type", np.arange(120))
    assert len(big["labels"]) == 10 and big["labels"][-1] == "other"
    assert big["colors"][-1] == "#949494" and "#949494" not in big["colors"][:-1]
    assert viewer.payload._cell_labels(many, "missing", np.arange(3)) is None


def test_payload_flags_genes(payload):
    assert payload["gene_flags"] == {g: f for g, f in {
        "RPL13A": "ribosomal", "MT-CO1": "mitochondrial", "GAPDH": "housekeeping"}.items()
        if g in {g2 for it in payload["items"] for g2 in it["genes"]}}


def _answer(**kw):
    a = {"cell_type": "no", "cell_type_which": "", "process": "no",
         "process_explanation": "", "notes": "", "saved_at": "2025-01-01"}
    a.update(kw)
    return a


def test_annotations_without_a_tissue_question_or_a_rater(payload, tmp_path):
    ex = viewer.export_viewer(payload, seed=1)
    ids = list(ex.key["items"])
    doc = {"schema": viewer.ANNOTATION_SCHEMA, "study": ex.key["study"], "mode": "blinded",
           "rater": "carol", "questions": ["cell_type", "process"],
           "annotations": {ids[0]: _answer(cell_type="yes", cell_type_which="B cell"),
                           ids[1]: _answer(process="unclear")}}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    ann = viewer.load_annotations(tmp_path / "a.json", ex.studies)
    assert ann["tissue"].tolist() == ["", ""] and ann["tissue_which"].tolist() == ["", ""]
    assert ann["level"].tolist() == ["interpretable", "signal but unclear"]
    # a file with an asked question left out, or without a rater, is refused
    (tmp_path / "b.json").write_text(json.dumps({**doc, "questions": ["cell_type", "tissue",
                                                                      "process"]}))
    with pytest.raises(ValueError, match="tissue=None"):
        viewer.load_annotations(tmp_path / "b.json", ex.studies)
    (tmp_path / "c.json").write_text(json.dumps({**doc, "rater": " "}))
    with pytest.raises(ValueError, match="names no rater"):
        viewer.load_annotations(tmp_path / "c.json", ex.studies)
    (tmp_path / "d.json").write_text(json.dumps({**doc, "questions": ["organ"]}))
    with pytest.raises(ValueError, match="unknown question"):
        viewer.load_annotations(tmp_path / "d.json", ex.studies)


def test_blinded_page_embeds_only_the_blinded_payload(payload):
    ex = viewer.export_viewer(payload, seed=1)
    blob = re.search(r'id="payload">([^<]+)</script>', ex.blinded_html).group(1)
    data = json.loads(base64.b64decode(blob).decode("utf-8"))
    assert data == viewer.blind_payload(payload, seed=1)[0]
    for word in (PATHWAY, *NAMES.values(), "not enough data"):
        assert word not in ex.blinded_html
