"""Interactive viewer for the expert interpretation of concepts and neurons (Sec 3.3, App D).

Section 3.3 of Claye et al. (2025) has a biologist label each concept from its gene attribution
C_i, helped by an interactive interface that shows the most important genes and their NCBI Gene
descriptions on hover; Appendix D (Fig 9) shows the interface and its annotation form, and
Fig 3A.a compares the expert's answers for 20 random concepts and 20 random neurons per model.
This module rebuilds that interface as **one self-contained HTML file** (vanilla JavaScript,
inline SVG and a canvas; no CDN, no network, works from ``file://``):

* a list of items with search and filters (model, unit type, Sec 3.1 category, best pathway);
* per item: attribution bar chart of the top genes (mean over prototypes, dots = each
  prototype's value, and a per-prototype table), gene full name and type on hover (bundled
  NCBI gene info, :func:`scconcepts.data.load_gene_info`), the Sec 3.1 metadata ratios of the
  activating cells, the activation histogram, the activating cells on the UMAP, and the best
  attribution-GSEA pathways with NES, p and FDR (Sec 3.4);
* the annotation form of Fig 9 (cell type, tissue, biological process, free text), saved in the
  browser's ``localStorage`` and exported / imported as JSON.

**Blinded mode** (in the style of InterProt, Adams et al. 2025): a second file in which concepts
and neurons are shuffled with a seed, get opaque ids (``item-01``, ...) and carry neither their
kind nor their unit index; attributions are shown relative to the prototypes' mean activation
and activations relative to their maximum, so that the scale of a code does not tell a concept
from a neuron. The key that maps opaque ids back to units is returned to the caller (and written
to a separate JSON file) and never enters the page. What blinding cannot hide: a neuron is
centred at its median (:mod:`scconcepts.attribution`), so about half the cells activate it,
whereas a Top-K concept is sparse; an expert may infer the kind from the share of activating
cells. The model stays visible (Fig 3A.a is per model).

The annotations are read back by :func:`load_annotations` and summarised as Fig 3A.a
(:func:`interpretability_table`, :func:`plot_interpretability`) and Table 7
(:func:`table7_rows`).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .utils import atomic_write

__all__ = [
    "VIEWER_SCHEMA",
    "ANNOTATION_SCHEMA",
    "LEVELS",
    "ViewerExport",
    "collect_items",
    "build_payload",
    "blind_payload",
    "render_html",
    "export_viewer",
    "embed_html",
    "load_annotations",
    "interpretability_level",
    "interpretability_table",
    "plot_interpretability",
    "table7_rows",
    "rater_agreement",
    "preview_panels",
]

#: Schema names of the embedded data and of the exported annotations. They are deliberately
#: neutral words: the blinded page must not contain "concept" or "neuron" anywhere.
VIEWER_SCHEMA = "unit-viewer/1"
ANNOTATION_SCHEMA = "expert-annotations/1"
#: Fig 3A.a levels, in plotting order.
LEVELS = ["interpretable", "signal but unclear", "not interpretable"]
_ASSETS = "viewer_assets"
_FORM_FIELDS = {
    "cell_type": ("no", "yes"),
    "tissue": ("no", "yes"),
    "process": ("no", "unclear", "yes"),
}
_TEXT_FIELDS = ("cell_type_which", "tissue_which", "process_explanation", "notes")


# --------------------------------------------------------------------------------------------
# collecting the data of each item from the workflow's outputs
# --------------------------------------------------------------------------------------------


def _round(x, digits: int = 4):
    """Floats to ``digits`` significant digits, NaN/inf to ``None`` (JSON has no NaN)."""
    if x is None:
        return None
    x = float(x)
    if not math.isfinite(x):
        return None
    return float(f"{x:.{digits}g}")


def _b64(arr: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode("ascii")


def _quantise_xy(xy: np.ndarray) -> dict[str, Any]:
    """UMAP coordinates (n, 2) → little-endian uint16 in [0, 65535] per axis, base64."""
    xy = np.asarray(xy, dtype=np.float64)
    lo, hi = xy.min(0), xy.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    q = np.round((xy - lo) / span * 65535).astype("<u2")
    return {"n": int(len(xy)), "x": _b64(q[:, 0]), "y": _b64(q[:, 1])}


def _gsea_terms(row: pd.Series | None) -> list[dict[str, Any]]:
    """Best pathways of one GSEA summary row: ``top_terms`` when present, else the best term."""
    if row is None:
        return []
    raw = row.get("top_terms") if hasattr(row, "get") else None
    if isinstance(raw, str) and raw:
        terms = json.loads(raw)
    elif row.get("best_term"):
        terms = [{"term": row["best_term"], "NES": row["NES"], "pval": row["pval"],
                  "fdr": row.get("fdr")}]
    else:
        terms = []
    return [{"term": str(t["term"]), "nes": _round(t.get("NES")), "p": _round(t.get("pval")),
             "fdr": _round(t.get("fdr"))} for t in terms]


def collect_items(
    model: str,
    *,
    embeddings: np.ndarray,
    umap: np.ndarray,
    codes,
    attribution: Mapping[str, Any],
    gsea: Mapping[str, pd.DataFrame],
    obs: pd.DataFrame,
    metadata_keys: Sequence[str] = ("cell_type",),
    threshold: float = 0.7,
    min_cells: int = 100,
    seed: int = 0,
    units: Mapping[str, Sequence[int]] | None = None,
    n_genes: int = 20,
    umap_cells: int = 4000,
    hist_bins: int = 30,
    n_labels: int = 8,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Viewer items for the concepts and neurons of ``model`` that the GSEA chapter samples.

    A pure function of the workflow's outputs for one model: the units are those of chapter 05
    (Sec 3.4), by default the ``unit`` column of each GSEA table (``wf.gsea(model, kind)``, a
    seeded sample of ``gsea.n_units`` attributed units per kind, 20 in the paper's study,
    Sec 4.3), and their pathways come from the same tables.

    Parameters
    ----------
    model
        Model name; it prefixes the item ids (``<model>/C12``).
    embeddings
        Cell embeddings of the main dataset, (n_cells, d) (``wf.embeddings("main", model)``).
    umap
        2-D UMAP of those embeddings, (n_cells, 2) (``wf.umap("main", model)``).
    codes
        Concept activations of the default SAE, (n_cells, c), sparse or dense
        (``wf.codes(model)``: the SAE the concept attribution uses).
    attribution
        ``{"concept": AttributionResult, "neuron": AttributionResult}``
        (``wf.attribution(model, kind)``).
    gsea
        ``{"concept": DataFrame, "neuron": DataFrame}``: GSEA summaries with ``unit``,
        ``annotation``, ``best_term``, ... (``wf.gsea(model, kind)``).
    obs
        Cell metadata of the main dataset, n_cells rows.
    metadata_keys, threshold, min_cells
        Sec 3.1 categorisation (``data.metadata_keys``, ``concepts.specificity_threshold``,
        ``concepts.min_cells``).
    seed
        Seed of the subsample of cells drawn on the UMAP.
    units
        Kind → units to show; None = the units of each GSEA table.
    n_genes
        Top attribution genes shown per item.
    umap_cells
        Cells drawn on the UMAP: a seeded random subsample of at most this many (the histogram
        and the metadata ratios use every cell).
    hist_bins
        Bins of the activation histogram (over the activating cells, from 0 to the maximum).
    n_labels
        Labels shown per metadata key (largest ratios first).

    Returns
    -------
    (items, umap)
        ``items``: one dict per unit with identity (``id`` like ``scvi/C12`` or ``scvi/N3``,
        ``model``, ``kind``, ``unit``), ``category`` (Sec 3.1), ``n_cells`` / ``n_total``
        (activating / all cells), ``genes``, ``attribution`` (mean, activation drop, (n_genes,)),
        ``relative`` (the same divided by the prototypes' mean activation), ``per_prototype``
        and ``per_prototype_relative`` ((n_genes, N_p), ``None`` where a prototype is absent),
        ``metadata`` (key → [[label, ratio], ...]), ``hist`` (counts, maximum), ``cells``
        (base64 uint8 activation of the UMAP cells: 0 = not activating, 1–255 = share of the
        maximum), ``pathways`` and ``gsea_annotation``. ``umap``: quantised coordinates of the
        subsampled cells.

    Raises
    ------
    ValueError
        If the arrays disagree on the number of cells, or a unit to show was not attributed.
    """
    from .attribution import NeuronReadout
    from .concepts import categorize_concepts, metadata_ratios

    A = np.asarray(embeddings, dtype=np.float32)
    xy = np.asarray(umap)
    n_total = A.shape[0]
    if xy.shape[0] != n_total or codes.shape[0] != n_total or len(obs) != n_total:
        raise ValueError(f"{model}: embeddings ({n_total} cells), umap ({xy.shape[0]}), codes "
                         f"({codes.shape[0]}) and obs ({len(obs)}) must describe the same cells.")
    rng = np.random.default_rng(int(seed))
    shown = np.sort(rng.choice(n_total, min(n_total, int(umap_cells)), replace=False))
    keys = list(metadata_keys)
    thr, min_cells = float(threshold), int(min_cells)

    # activations of every unit in every cell; neurons: value − median (scconcepts.attribution)
    acts = {
        "concept": codes.tocsc() if hasattr(codes, "tocsc") else np.asarray(codes),
        "neuron": A - NeuronReadout.from_embeddings(A).median.numpy(),
    }
    items: list[dict[str, Any]] = []
    for kind in ("concept", "neuron"):
        att = attribution[kind]
        table = gsea[kind]
        shown_units = (table["unit"] if units is None or kind not in units else units[kind])
        shown_units = np.sort(np.asarray(shown_units, dtype=int))
        missing = np.setdiff1d(shown_units, att.units)
        if len(missing):
            raise ValueError(f"{model} {kind}s {missing.tolist()} have no attribution.")
        gs = table.set_index("unit")
        act_all = acts[kind]
        sub = act_all[:, shown_units]
        sub = np.asarray(sub.toarray() if hasattr(sub, "toarray") else sub, dtype=np.float64)
        pos = np.maximum(sub, 0.0)  # "activating" means > 0 for both kinds
        cats = categorize_concepts(pos, obs, keys=keys, threshold=thr, min_cells=min_cells)
        used = [k for k in keys if k not in cats.attrs["skipped"]]
        ratios = {k: metadata_ratios(pos, obs, k) for k in used}
        for j, unit in enumerate(shown_units):
            unit = int(unit)
            row = int(np.flatnonzero(att.units == unit)[0])
            ranked = att.ranked(unit).head(int(n_genes))
            gidx = [int(np.flatnonzero(att.genes == g)[0]) for g in ranked.index]
            pp = att.per_prototype[row][:, gidx].T  # (n_genes, N_p)
            has = att.prototypes[row] >= 0
            mean_act = float(np.mean(att.prototype_activation[row][has])) if has.any() else np.nan
            a = sub[:, j]
            on = a > 0
            vmax = float(a[on].max()) if on.any() else 0.0
            counts, _ = np.histogram(a[on], bins=int(hist_bins), range=(0.0, vmax or 1.0))
            q = np.zeros(len(shown), dtype=np.uint8)
            if vmax > 0:
                v = a[shown]
                q = np.where(v > 0, 1 + np.round(254 * np.clip(v / vmax, 0, 1)), 0).astype(np.uint8)
            grow = gs.loc[unit] if unit in gs.index else None
            items.append({
                "id": f"{model}/{'C' if kind == 'concept' else 'N'}{unit}",
                "model": model,
                "kind": kind,
                "unit": unit,
                "category": str(cats["category"].iloc[j]),
                "n_cells": int(on.sum()),
                "n_total": int(n_total),
                "genes": [str(g) for g in ranked.index],
                "attribution": [_round(v) for v in ranked.to_numpy()],
                "relative": [_round(v / mean_act) if mean_act > 0 else None
                             for v in ranked.to_numpy()],
                "per_prototype": [[_round(v) for v in r] for r in pp],
                "per_prototype_relative": [[_round(v / mean_act) if mean_act > 0 else None
                                            for v in r] for r in pp],
                "prototype_mean_activation": _round(mean_act),
                "metadata": {k: [[str(lab), _round(r)] for lab, r in
                                 ratios[k].iloc[j].loc[lambda r: r > 0].sort_values(ascending=False)
                                 .head(int(n_labels)).items()] for k in used},
                "hist": {"counts": counts.astype(int).tolist(), "max": _round(vmax)},
                "cells": _b64(q),
                "pathways": _gsea_terms(grow),
                "gsea_annotation": None if grow is None else str(grow.get("annotation")),
            })
    return items, _quantise_xy(xy[shown])


def _gene_info(genes: Iterable[str]) -> dict[str, list[str]]:
    """Symbol → [full name, gene type] from the bundled NCBI gene table ("" when unknown)."""
    from .data import load_gene_info

    info = load_gene_info()
    out = {}
    for g in sorted(set(genes)):
        if g in info.index:
            r = info.loc[g]
            out[g] = [str(r["name"]) if pd.notna(r["name"]) else "",
                      str(r["gene_type"]) if pd.notna(r["gene_type"]) else ""]
        else:
            out[g] = ["", ""]
    return out


def _study_id(items: list[dict], mode: str) -> str:
    blob = json.dumps({"mode": mode, "items": items}, sort_keys=True).encode()
    return hashlib.sha1(blob).hexdigest()[:12]


def build_payload(outputs: Mapping[str, Mapping[str, Any]], obs: pd.DataFrame, *,
                  model_names: Mapping[str, str] | None = None,
                  title: str = "Expert interpretation viewer", **kwargs) -> dict[str, Any]:
    """The open (unblinded) viewer data for several models (see :func:`collect_items`).

    Parameters
    ----------
    outputs
        Model name → the workflow's outputs for that model, the keyword arguments of
        :func:`collect_items`: ``embeddings``, ``umap``, ``codes``, ``attribution`` and
        ``gsea`` (kind → value), optionally ``units``. Models appear in this order.
    obs
        Cell metadata of the main dataset (shared by every model).
    model_names
        Model name → display label (default: the name).
    title
        Page title.
    **kwargs
        Passed to :func:`collect_items` for every model (``metadata_keys``, ``threshold``,
        ``min_cells``, ``seed``, ``n_genes``, ...).

    Returns
    -------
    dict
        ``schema``, ``mode="open"``, ``study`` (hash of the items), ``title``, ``models``,
        ``model_names``, ``umaps`` (model → quantised UMAP), ``items`` (ordered by model, kind,
        unit) and ``gene_info`` (symbol → [full name, type], genes of the items only).

    Raises
    ------
    ValueError
        If ``outputs`` is empty.
    """
    models = list(outputs)
    if not models:
        raise ValueError("No models given: pass {model: {embeddings, umap, codes, attribution, "
                         "gsea}} for at least one model.")
    names = dict(model_names or {})
    items, umaps = [], {}
    for m in models:
        its, umaps[m] = collect_items(m, **dict(outputs[m]), obs=obs, **kwargs)
        items.extend(its)
    payload = {
        "schema": VIEWER_SCHEMA,
        "mode": "open",
        "title": title,
        "models": models,
        "model_names": {m: str(names.get(m, m)) for m in models},
        "umaps": umaps,
        "items": items,
        "gene_info": _gene_info(g for it in items for g in it["genes"]),
    }
    payload["study"] = _study_id(items, "open")
    return payload


_BLIND_KEEP = ("model", "category", "n_cells", "n_total", "genes", "metadata", "cells",
               "pathways")


def blind_payload(payload: dict[str, Any], seed: int = 0) -> tuple[dict[str, Any], dict]:
    """Anonymised, seeded-shuffled copy of an open payload, and the key to undo it.

    Each blinded item keeps only :data:`_BLIND_KEEP` plus relative values: ``attribution`` and
    ``per_prototype`` become shares of the prototypes' mean activation, and the histogram loses
    its absolute maximum. Items get opaque ids ``item-01``, ... in shuffled order; the kind,
    unit index, open id and GSEA annotation level are dropped.

    Parameters
    ----------
    payload
        From :func:`build_payload` (``mode == "open"``).
    seed
        Seed of the shuffle (NumPy ``default_rng``): the same seed gives the same order.

    Returns
    -------
    (blinded, key)
        ``blinded``: the payload for the blinded page (``mode="blinded"``); ``key``:
        ``{"study", "open_study", "seed", "items": {opaque id: {"id", "model", "kind",
        "unit"}}}``, to keep out of the page.

    Raises
    ------
    ValueError
        If ``payload`` is not an open payload.
    """
    if payload.get("mode") != "open" or payload.get("schema") != VIEWER_SCHEMA:
        raise ValueError("blind_payload needs the open payload of build_payload() "
                         f"(schema {VIEWER_SCHEMA!r}, mode 'open').")
    order = np.random.default_rng(int(seed)).permutation(len(payload["items"]))
    width = max(2, len(str(len(order))))
    items, key_items = [], {}
    for pos, i in enumerate(order, 1):
        it = payload["items"][int(i)]
        oid = f"item-{pos:0{width}d}"
        b = {"id": oid, **{k: it[k] for k in _BLIND_KEEP}}
        b["attribution"] = it["relative"]
        b["per_prototype"] = it["per_prototype_relative"]
        b["hist"] = {"counts": it["hist"]["counts"], "max": None}
        items.append(b)
        key_items[oid] = {"id": it["id"], "model": it["model"], "kind": it["kind"],
                          "unit": it["unit"]}
    blinded = {
        "schema": VIEWER_SCHEMA,
        "mode": "blinded",
        "title": "Expert rating (blinded)",
        "models": payload["models"],
        "model_names": payload["model_names"],
        "umaps": payload["umaps"],
        "items": items,
        "gene_info": payload["gene_info"],
    }
    blinded["study"] = _study_id(items, "blinded")
    key = {"study": blinded["study"], "open_study": payload["study"], "seed": int(seed),
           "items": key_items}
    return blinded, key


def preview_panels(payload: dict[str, Any], n_genes: int = 10
                   ) -> tuple[dict[str, pd.Series], dict[str, np.ndarray]]:
    """Inputs of :func:`scconcepts.plotting.top_genes_bars` for a static preview of the viewer.

    Takes the first item of each (model, kind) of an open payload.

    Returns
    -------
    (panels, per_prototype)
        Title → top-``n_genes`` mean attribution (Series indexed by gene), and title →
        per-prototype values, shape (N_p, n_genes), NaN where a prototype is absent.
    """
    panels, dots, seen = {}, {}, set()
    for it in payload["items"]:
        key = (it["model"], it["kind"])
        if key in seen or "kind" not in it:
            continue
        seen.add(key)
        name = payload.get("model_names", {}).get(it["model"], it["model"])
        title = f"{name} {it['kind']} {it['unit']}"
        vals = [np.nan if v is None else v for v in it["attribution"][:n_genes]]
        panels[title] = pd.Series(vals, index=it["genes"][:n_genes], dtype=float)
        pp = np.array([[np.nan if v is None else v for v in r]
                       for r in it["per_prototype"][:n_genes]], dtype=float)
        dots[title] = pp.T
    return panels, dots


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------


def _asset(name: str) -> str:
    return resources.files("scconcepts").joinpath(_ASSETS, name).read_text(encoding="utf-8")


def render_html(payload: dict[str, Any]) -> str:
    """The self-contained viewer page for ``payload`` (open or blinded), as a string.

    The page inlines its CSS and JavaScript (``scconcepts/viewer_assets``) and the payload as
    base64-encoded UTF-8 JSON; it loads nothing (no ``src``/``href`` to any file or host).

    Raises
    ------
    ValueError
        If the payload has the wrong schema.
    """
    if payload.get("schema") != VIEWER_SCHEMA:
        raise ValueError(f"payload schema {payload.get('schema')!r} is not {VIEWER_SCHEMA!r}; "
                         "build it with build_payload() / blind_payload().")
    blob = base64.b64encode(json.dumps(payload, allow_nan=False,
                                       separators=(",", ":")).encode("utf-8")).decode("ascii")
    page = _asset("viewer.html")
    for name, value in (("{{TITLE}}", html.escape(payload["title"])),
                        ("{{CSS}}", _asset("viewer.css")),
                        ("{{JS}}", _asset("viewer.js")),
                        ("{{PAYLOAD}}", blob)):
        page = page.replace(name, value)
    return page


@dataclass
class ViewerExport:
    """What :func:`export_viewer` wrote and returns.

    Attributes
    ----------
    open_html, blinded_html
        The two pages (strings).
    open_path, blinded_path, key_path
        Files written (``None`` if no folder was given). The key file must not be handed to
        raters.
    key
        Blinding key (see :func:`blind_payload`).
    items
        One row per item: ``id`` (open id), ``blinded_id``, ``model``, ``kind``, ``unit``,
        ``category``, ``best_pathway``, ``NES``, ``pval``, ``gsea_annotation``, ``top10``.
    studies
        Study id → ``{item id: {"id", "model", "kind", "unit"}}`` for both pages: what
        :func:`load_annotations` needs to map exported annotations back to units.
    """

    open_html: str
    blinded_html: str
    key: dict
    items: pd.DataFrame
    studies: dict[str, dict[str, dict]] = field(default_factory=dict)
    open_path: Path | None = None
    blinded_path: Path | None = None
    key_path: Path | None = None


def export_viewer(payload: dict[str, Any], out_dir: str | os.PathLike | None = None,
                  seed: int = 0) -> ViewerExport:
    """Render the open and the blinded viewer and write them (atomically) to ``out_dir``.

    Files: ``viewer_open.html``, ``viewer_blinded.html`` (hand this one to raters) and
    ``blinded_key_<study>.json`` (keep it: it maps opaque ids back to units).

    Parameters
    ----------
    payload
        From :func:`build_payload`.
    out_dir
        Folder for the files; ``None`` writes nothing.
    seed
        Seed of the blinded shuffle.
    """
    blinded, key = blind_payload(payload, seed)
    open_html, blinded_html = render_html(payload), render_html(blinded)
    back = {v["id"]: k for k, v in key["items"].items()}
    rows = []
    for it in payload["items"]:
        best = it["pathways"][0] if it["pathways"] else {}
        rows.append({"id": it["id"], "blinded_id": back[it["id"]], "model": it["model"],
                     "kind": it["kind"], "unit": it["unit"], "category": it["category"],
                     "best_pathway": best.get("term"), "NES": best.get("nes"),
                     "pval": best.get("p"), "gsea_annotation": it["gsea_annotation"],
                     "top10": ", ".join(it["genes"][:10])})
    studies = {
        payload["study"]: {it["id"]: {"id": it["id"], "model": it["model"], "kind": it["kind"],
                                      "unit": it["unit"]} for it in payload["items"]},
        key["study"]: key["items"],
    }
    out = ViewerExport(open_html, blinded_html, key, pd.DataFrame(rows), studies)
    if out_dir is not None:
        d = Path(out_dir)
        out.open_path = atomic_write(d / "viewer_open.html",
                                     lambda t: Path(t).write_text(open_html, encoding="utf-8"))
        out.blinded_path = atomic_write(d / "viewer_blinded.html",
                                        lambda t: Path(t).write_text(blinded_html,
                                                                     encoding="utf-8"))
        out.key_path = atomic_write(d / f"blinded_key_{key['study']}.json",
                                    lambda t: Path(t).write_text(json.dumps(key, indent=1)))
    return out


def embed_html(export: ViewerExport, height: int = 900) -> str:
    """HTML for a notebook output: both viewers in ``srcdoc`` iframes behind two tabs.

    The chapter page then carries the viewers itself, so the built book serves them from
    ``file://`` without extra files. Each iframe is its own document: the blinded one contains
    only the blinded page. A button saves the blinded page as a standalone file for raters.
    """
    def frame(name: str, doc: str, hidden: bool) -> str:
        return (f'<iframe class="uv-frame" id="uv-frame-{name}" title="viewer ({name})" '
                f'style="width:100%;height:{int(height)}px;border:1px solid #ccc;'
                f'{"display:none;" if hidden else ""}" srcdoc="{html.escape(doc, quote=True)}">'
                "</iframe>")

    return f"""<div class="uv-embed" id="uv-embed">
<div role="tablist" style="margin:0.5em 0">
<button type="button" id="uv-tab-open" onclick="uvShow('open')">Open viewer</button>
<button type="button" id="uv-tab-blinded" onclick="uvShow('blinded')">Blinded rating mode</button>
<button type="button" id="uv-save-blinded" onclick="uvSave('blinded')">Save the blinded viewer as a file (for raters)</button>
<button type="button" id="uv-save-open" onclick="uvSave('open')">Save the open viewer as a file</button>
</div>
{frame("open", export.open_html, False)}
{frame("blinded", export.blinded_html, True)}
<script>
function uvShow(name) {{
  for (const n of ["open", "blinded"]) {{
    document.getElementById("uv-frame-" + n).style.display = (n === name) ? "" : "none";
    document.getElementById("uv-tab-" + n).style.fontWeight = (n === name) ? "bold" : "normal";
  }}
}}
function uvSave(name) {{
  const doc = document.getElementById("uv-frame-" + name).getAttribute("srcdoc");
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([doc], {{type: "text/html"}}));
  a.download = "viewer_" + name + ".html";
  document.body.appendChild(a); a.click(); a.remove();
}}
uvShow("open");
</script>
</div>"""


# --------------------------------------------------------------------------------------------
# annotations → Fig 3A.a and Table 7
# --------------------------------------------------------------------------------------------


def _validate_annotation(item_id: str, ann: Any, source: str) -> dict[str, str]:
    if not isinstance(ann, dict):
        raise ValueError(f"{source}: annotation of {item_id!r} is a {type(ann).__name__}, not an "
                         "object; export the file again from the viewer.")
    out = {}
    for name, allowed in _FORM_FIELDS.items():
        v = ann.get(name)
        if v not in allowed:
            raise ValueError(f"{source}: annotation of {item_id!r} has {name}={v!r}; expected one "
                             f"of {list(allowed)} (schema {ANNOTATION_SCHEMA}). Fix or re-save "
                             "this item in the viewer and export again.")
        out[name] = v
    for name in _TEXT_FIELDS:
        v = ann.get(name, "")
        out[name] = "" if v is None else str(v)
    out["saved_at"] = str(ann.get("saved_at", ""))
    return out


def load_annotations(paths: str | os.PathLike | Sequence[str | os.PathLike],
                     studies: dict[str, dict[str, dict]]) -> pd.DataFrame:
    """Read annotation JSON files exported by the viewer and map them back to units.

    Parameters
    ----------
    paths
        One file or several (one per rater); a folder means every ``*.json`` in it.
    studies
        :attr:`ViewerExport.studies` of the viewer the raters used (open and/or blinded).

    Returns
    -------
    DataFrame
        One row per (file, item): ``rater``, ``file``, ``mode``, ``item``, ``id`` (open id),
        ``model``, ``kind``, ``unit``, the form fields and ``level`` (Fig 3A.a, see
        :func:`interpretability_level`).

    Raises
    ------
    FileNotFoundError
        If a file does not exist.
    ValueError
        If a file is not JSON, has another schema, comes from another viewer build (study id),
        names unknown items, or holds an invalid answer; each message says what to do.
    """
    if isinstance(paths, (str, os.PathLike)):
        p = Path(paths)
        files = sorted(p.glob("*.json")) if p.is_dir() else [p]
    else:
        files = [Path(p) for p in paths]
    if not files:
        raise FileNotFoundError(f"No annotation JSON files found in {paths}.")
    rows = []
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"Annotation file {f} does not exist; pass the JSON file "
                                    "exported with the viewer's 'Export JSON' button.")
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{f} is not valid JSON ({err}); pass the file exported with the "
                             "viewer's 'Export JSON' button.") from err
        if not isinstance(doc, dict) or doc.get("schema") != ANNOTATION_SCHEMA:
            got = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
            raise ValueError(f"{f} has schema {got!r}, expected {ANNOTATION_SCHEMA!r}: it is not "
                             "an annotation export of this viewer. Use 'Export JSON' in the "
                             "viewer.")
        study = doc.get("study")
        if study not in studies:
            raise ValueError(f"{f} was exported from a viewer with study id {study!r}, but this "
                             f"chapter's viewers are {sorted(studies)}: the items differ (other "
                             "profile, seed, model or results). Rate with the viewer built by "
                             "this chapter, or re-run the chapter with the parameters used then.")
        anns = doc.get("annotations")
        if not isinstance(anns, dict):
            raise ValueError(f"{f}: 'annotations' must be an object mapping item ids to answers.")
        known = studies[study]
        unknown = sorted(set(anns) - set(known))
        if unknown:
            raise ValueError(f"{f}: unknown item id(s) {unknown[:5]} for study {study}; known ids "
                             f"look like {sorted(known)[:3]}. The file was edited or mixes "
                             "viewers: export it again from one viewer.")
        rater = str(doc.get("rater") or f.stem)
        for item, ann in anns.items():
            ans = _validate_annotation(item, ann, str(f))
            rows.append({"rater": rater, "file": f.name, "mode": doc.get("mode"), "item": item,
                         **known[item], **ans})
    df = pd.DataFrame(rows)
    if df.empty:
        return df.assign(level=pd.Series(dtype=str))
    df["level"] = [interpretability_level(r) for r in df.to_dict("records")]
    return df


def interpretability_level(answer: dict[str, str]) -> str:
    """Fig 3A.a level of one form: the rule we apply to the Fig 9 answers.

    *interpretable* when the rater names a cell type, a tissue or a biological process
    (any "yes"); *signal but unclear* when the process answer is "signal but unclear" and
    nothing is named; *not interpretable* otherwise.
    """
    if "yes" in (answer.get("cell_type"), answer.get("tissue"), answer.get("process")):
        return "interpretable"
    if answer.get("process") == "unclear":
        return "signal but unclear"
    return "not interpretable"


def interpretability_table(ann: pd.DataFrame) -> pd.DataFrame:
    """Fig 3A.a: share of ratings per level, per (model, kind).

    Every (rater, item) rating counts once; with several raters each contributes equally.

    Returns
    -------
    DataFrame
        Index (model, kind); columns :data:`LEVELS` (fractions), ``n_ratings``, ``n_items``,
        ``n_raters``.

    Raises
    ------
    ValueError
        If ``ann`` is empty.
    """
    if ann.empty:
        raise ValueError("No annotations: rate items in the viewer and export them first.")
    tab = (ann.groupby(["model", "kind"])["level"].value_counts(normalize=True)
           .unstack(fill_value=0.0).reindex(columns=LEVELS, fill_value=0.0))
    g = ann.groupby(["model", "kind"])
    tab["n_ratings"] = g.size()
    tab["n_items"] = g["id"].nunique()
    tab["n_raters"] = g["rater"].nunique()
    return tab


def plot_interpretability(table: pd.DataFrame, title: str = "",
                          model_names: Mapping[str, str] | None = None):
    """Fig 3A.a: stacked bars of the interpretability levels, concepts vs neurons per model.

    ``model_names`` maps a model name to its bar label (default: the name; the payload's
    ``model_names``).

    Returns
    -------
    matplotlib Figure
    """
    from .plotting import stacked_fraction_bars

    colors = {"interpretable": "#2E7D32", "signal but unclear": "#F9A825",
              "not interpretable": "#DDDDDD"}
    names = dict(model_names or {})
    labels = [f"{names.get(m, m)} {k}s (n={n})"
              for (m, k), n in zip(table.index, table["n_ratings"])]
    return stacked_fraction_bars(table, {lev: colors[lev] for lev in LEVELS}, labels,
                                 xlabel="fraction of ratings", title=title)


def table7_rows(ann: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """Rows like Table 7 for the items rated interpretable.

    Parameters
    ----------
    ann
        From :func:`load_annotations`.
    items
        :attr:`ViewerExport.items`.

    Returns
    -------
    DataFrame
        ``ID`` (e.g. ``scvi/C12``), ``rater``, ``expert label`` (the named cell type / tissue,
        or "biological process"), ``expert description`` (explanation and notes),
        ``pathway enrichment label`` (best GSEA term, with NES and p), ``top-10 genes``.
    """
    cols = ["ID", "rater", "expert label", "expert description", "pathway enrichment label",
            "top-10 genes"]
    ok = ann[ann["level"] == "interpretable"] if not ann.empty else ann
    info = items.set_index("id")
    rows = []
    for r in ok.to_dict("records"):
        label = [s for s, on in ((r["cell_type_which"], r["cell_type"] == "yes"),
                                 (r["tissue_which"], r["tissue"] == "yes")) if on and s]
        if r["process"] == "yes" and not label:
            label.append("biological process")
        it = info.loc[r["id"]]
        pw = (f"{it['best_pathway']} (NES {it['NES']:.2f}, p {it['pval']:.2g})"
              if isinstance(it["best_pathway"], str) else "none")
        rows.append({"ID": r["id"], "rater": r["rater"], "expert label": "; ".join(label),
                     "expert description": " ".join(s for s in (r["process_explanation"],
                                                                 r["notes"]) if s),
                     "pathway enrichment label": pw, "top-10 genes": it["top10"]})
    return pd.DataFrame(rows, columns=cols)


def rater_agreement(ann: pd.DataFrame) -> pd.DataFrame:
    """Agreement between raters on the Fig 3A.a levels, per (model, kind).

    Uses the items rated by every rater of that (model, kind); Fleiss' kappa from statsmodels
    (``statsmodels.stats.inter_rater``), which is 1 for perfect agreement and about 0 for
    chance agreement.

    Returns
    -------
    DataFrame
        Index (model, kind); ``n_raters``, ``n_items`` (rated by all), ``share unanimous``,
        ``Fleiss kappa`` (NaN with fewer than 2 raters or no shared item).
    """
    from statsmodels.stats.inter_rater import fleiss_kappa

    rows = {}
    for (m, k), g in ann.groupby(["model", "kind"]):
        wide = g.pivot_table(index="id", columns="rater", values="level", aggfunc="first").dropna()
        n_r = g["rater"].nunique()
        if n_r < 2 or wide.empty:
            rows[(m, k)] = {"n_raters": n_r, "n_items": len(wide), "share unanimous": np.nan,
                            "Fleiss kappa": np.nan}
            continue
        counts = np.stack([(wide == lev).sum(1).to_numpy() for lev in LEVELS], axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            kappa = float(fleiss_kappa(counts))
        rows[(m, k)] = {"n_raters": n_r, "n_items": len(wide),
                        "share unanimous": float((counts.max(1) == n_r).mean()),
                        "Fleiss kappa": kappa}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index = pd.MultiIndex.from_tuples(out.index, names=["model", "kind"])
    return out
