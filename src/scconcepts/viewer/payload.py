"""Viewer data: the items of each model (:func:`collect_items`), the open payload
(:func:`build_payload`) and a static preview (:func:`preview_panels`); the blinded copy is made
by :mod:`~scconcepts.viewer.blind`. See :mod:`scconcepts.viewer`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["VIEWER_SCHEMA", "collect_items", "build_payload", "drawn_cells", "preview_panels"]

#: Schema name of the embedded data. It is deliberately a neutral word: the blinded page must
#: not contain "concept" or "neuron" anywhere.
VIEWER_SCHEMA = "unit-viewer/1"


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


def _quantise_xy(xy: np.ndarray, cells: np.ndarray | None = None) -> dict[str, Any]:
    """UMAP coordinates (n, 2) → little-endian uint16 in [0, 65535] per axis, base64.

    ``cells`` (n,): the indices of the drawn cells in the dataset; their hash (``cells``) tells
    whether two models' UMAPs draw the same cells (the blinded page shares one UMAP).
    """
    xy = np.asarray(xy, dtype=np.float64)
    lo, hi = xy.min(0), xy.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    q = np.round((xy - lo) / span * 65535).astype("<u2")
    out = {"n": int(len(xy)), "x": _b64(q[:, 0]), "y": _b64(q[:, 1])}
    if cells is not None:
        out["cells"] = hashlib.sha1(np.asarray(cells, dtype="<i8").tobytes()).hexdigest()[:12]
    return out


def drawn_cells(n_total: int, umap_cells: int = 4000, seed: int = 0) -> np.ndarray:
    """Indices of the cells drawn on the viewer's UMAPs: a seeded subsample of at most
    ``umap_cells`` of ``n_total`` cells, sorted; the same for every model of a dataset."""
    rng = np.random.default_rng(int(seed))
    return np.sort(rng.choice(int(n_total), min(int(n_total), int(umap_cells)), replace=False))


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
        ``n_prototypes`` (prototypes present),
        ``metadata`` (key → [[label, ratio], ...]), ``hist`` (counts, maximum), ``cells``
        (base64 uint8 activation of the UMAP cells: 0 = not activating, 1–255 = share of the
        maximum), ``pathways`` and ``gsea_annotation``. ``umap``: quantised coordinates of the
        subsampled cells.

    Raises
    ------
    ValueError
        If the arrays disagree on the number of cells, or a unit to show was not attributed.
    """
    from ..attribution import NeuronReadout
    from ..concepts import categorize_concepts, metadata_ratios

    A = np.asarray(embeddings, dtype=np.float32)
    xy = np.asarray(umap)
    n_total = A.shape[0]
    if xy.shape[0] != n_total or codes.shape[0] != n_total or len(obs) != n_total:
        raise ValueError(f"{model}: embeddings ({n_total} cells), umap ({xy.shape[0]}), codes "
                         f"({codes.shape[0]}) and obs ({len(obs)}) must describe the same cells.")
    shown = drawn_cells(n_total, umap_cells, seed)
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
                "n_prototypes": int(has.sum()),
                "metadata": {k: [[str(lab), _round(r)] for lab, r in
                                 ratios[k].iloc[j].loc[lambda r: r > 0].sort_values(ascending=False)
                                 .head(int(n_labels)).items()] for k in used},
                "hist": {"counts": counts.astype(int).tolist(), "max": _round(vmax)},
                "cells": _b64(q),
                "pathways": _gsea_terms(grow),
                "gsea_annotation": None if grow is None else str(grow.get("annotation")),
            })
    return items, _quantise_xy(xy[shown], shown)


def _gene_info(genes: Iterable[str]) -> dict[str, list[str]]:
    """Symbol → [full name, gene type] from the bundled NCBI gene table ("" when unknown)."""
    from ..data import load_gene_info

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


#: Colours of the cell-type legend: seaborn's colour-blind-safe "colorblind" palette without its
#: grey, which marks the labels beyond the ninth ("other").
_OTHER_COLOUR = "#949494"


def _cell_labels(obs: pd.DataFrame, key: str | None, cells: np.ndarray,
                 max_colours: int = 9) -> dict[str, Any] | None:
    """Label of each drawn cell for the UMAP colours: ``{"key", "labels", "colors", "codes"}``.

    ``codes`` is base64 uint8, one per drawn cell (index into ``labels``); the ``max_colours``
    most frequent labels get a colour each, the rest are merged into "other". None when
    ``key`` is not a column of ``obs``.
    """
    import seaborn as sns  # its "colorblind" palette (Okabe-Ito-like), rather than hand-picked

    if key is None or key not in obs.columns:
        return None
    lab = obs[key].astype(str).to_numpy()[cells]
    order = pd.Series(lab).value_counts(sort=True)
    palette = [c for c in sns.color_palette("colorblind").as_hex() if c != _OTHER_COLOUR]
    keep = list(order.index[:min(int(max_colours), len(palette))])
    labels = keep + (["other"] if len(order) > len(keep) else [])
    colours = palette[:len(keep)] + ([_OTHER_COLOUR] if len(order) > len(keep) else [])
    index = {lb: i for i, lb in enumerate(keep)}
    codes = np.array([index.get(v, len(keep)) for v in lab], dtype=np.uint8)
    return {"key": key, "labels": labels, "colors": colours, "codes": _b64(codes)}


def build_payload(outputs: Mapping[str, Mapping[str, Any]], obs: pd.DataFrame, *,
                  model_names: Mapping[str, str] | None = None,
                  title: str = "Expert interpretation viewer", color_key: str | None = "cell_type",
                  seed: int = 0, umap_cells: int = 4000, **kwargs) -> dict[str, Any]:
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
    color_key
        Column of ``obs`` that colours the UMAP (cell type; None or a missing column: no
        colours).
    seed, umap_cells
        The seeded subsample of cells drawn on the UMAPs (:func:`drawn_cells`), the same for
        every model.
    **kwargs
        Passed to :func:`collect_items` for every model (``metadata_keys``, ``threshold``,
        ``min_cells``, ``n_genes``, ...).

    Returns
    -------
    dict
        ``schema``, ``mode="open"``, ``study`` (hash of the items), ``title``, ``models``,
        ``model_names``, ``umaps`` (model → quantised UMAP), ``cell_labels`` (colours of the
        drawn cells, see :func:`_cell_labels`, or None), ``questions`` (the form's questions,
        :func:`~scconcepts.viewer.form_questions` of ``obs``), ``limits`` (the import check's
        :data:`~scconcepts.viewer.annotations.IMPORT_LIMITS`), ``items`` (ordered by model,
        kind, unit), ``gene_info`` (symbol → [full name, type], genes of the items only) and
        ``gene_flags`` (symbol → :func:`scconcepts.genes.gene_flag`, flagged genes only).

    Raises
    ------
    ValueError
        If ``outputs`` is empty.
    """
    from ..genes import gene_flag
    from .annotations import IMPORT_LIMITS, QUESTIONS, form_questions

    models = list(outputs)
    if not models:
        raise ValueError("No models given: pass {model: {embeddings, umap, codes, attribution, "
                         "gsea}} for at least one model.")
    names = dict(model_names or {})
    items, umaps = [], {}
    for m in models:
        its, umaps[m] = collect_items(m, **dict(outputs[m]), obs=obs, seed=seed,
                                      umap_cells=umap_cells, **kwargs)
        items.extend(its)
    asked = form_questions(obs)
    genes = sorted({g for it in items for g in it["genes"]})
    payload = {
        "schema": VIEWER_SCHEMA,
        "mode": "open",
        "title": title,
        "models": models,
        "model_names": {m: str(names.get(m, m)) for m in models},
        "umaps": umaps,
        "cell_labels": _cell_labels(obs, color_key, drawn_cells(len(obs), umap_cells, seed)),
        "questions": [{**{k: v for k, v in q.items() if k != "columns"},
                       "choices": [list(c) for c in q["choices"]]}
                      for q in QUESTIONS if q["id"] in asked],
        "limits": dict(IMPORT_LIMITS),
        "items": items,
        "gene_info": _gene_info(genes),
        "gene_flags": {g: f for g in genes if (f := gene_flag(g))},
    }
    payload["study"] = _study_id(items, "open")
    return payload


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
