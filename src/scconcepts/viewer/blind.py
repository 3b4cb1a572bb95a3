"""The blinded copy of a viewer payload and the key to undo it (:func:`blind_payload`).

A rater of the blinded page must not be able to tell a concept from a neuron, nor one model
from another, nor see the evidence that Fig 3A.b judges separately (the pathways). Each
blinded item therefore carries only an opaque id, its top genes with their attribution, and its
activating cells on one UMAP shared by every item; what would tell the items apart is removed
or equalised (see :func:`blind_payload`). See :mod:`scconcepts.viewer`.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from .payload import VIEWER_SCHEMA, _b64, _study_id

__all__ = ["blind_payload", "BLIND_ITEM_FIELDS", "BLIND_FIELDS"]

#: The only fields of a blinded item.
BLIND_ITEM_FIELDS = ("id", "umap", "genes", "attribution", "per_prototype", "cells")
#: The only top-level fields of a blinded payload.
BLIND_FIELDS = ("schema", "mode", "title", "study", "umaps", "cell_labels", "questions", "limits",
                "shown", "items", "gene_info", "gene_flags")
#: Name of the one UMAP of the blinded page (a neutral word: not a model's name).
SHARED_UMAP = "cells"


def _present_columns(per_prototype: list[list]) -> list[int]:
    """Prototype columns with at least one value (a missing prototype is a column of None)."""
    if not per_prototype:
        return []
    n = len(per_prototype[0])
    return [j for j in range(n) if any(r[j] is not None for r in per_prototype)]


def _cells(b64: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype=np.uint8)


def _top_cells(q: np.ndarray, m: int) -> np.ndarray:
    """The ``m`` most activating drawn cells, coded by rank (255 = most, down to 1); 0 else.

    Coding by rank, not value, gives every item the same colour distribution, so that the
    shape of an activation distribution does not tell a dense neuron from a sparse concept.
    """
    out = np.zeros_like(q)
    m = min(int(m), int((q > 0).sum()))
    if m <= 0:
        return out
    top = np.argsort(-q.astype(np.int32), kind="stable")[:m]
    out[top] = 1 + np.round(254 * (m - 1 - np.arange(m)) / max(m - 1, 1)).astype(np.uint8)
    return out


def blind_payload(payload: dict[str, Any], seed: int = 0) -> tuple[dict[str, Any], dict]:
    """Anonymised, seeded-shuffled copy of an open payload, and the key to undo it.

    What the blinded page keeps, per item: an opaque id (``item-01``, ... in shuffled order),
    the top genes, the attribution relative to the prototypes' mean activation (bars), and:

    * **the same number of prototype dots for every item**: the first ``n`` prototypes present,
      ``n`` = the fewest any item has (N_p differs between models, and a unit with too few
      activating cells has fewer prototypes, so the count would tell the model or the kind);
    * **the same number of activating cells on the UMAP for every item**: its ``m`` most
      activating drawn cells, ``m`` = the fewest activating drawn cells of any item that has
      one, coloured by rank; a neuron (centred at its median) activates about half the cells,
      a Top-K concept few, so their number would tell the kind;
    * **one UMAP shared by every item** (the first model's; every model draws the same cells),
      coloured by cell type; a per-model UMAP would tell the model.

    What it drops: the kind, unit index and open id, the model and model names, the Sec 3.1
    category ("not enough data" occurs only for concepts), activating-cell counts, the metadata
    ratios, the activation histogram (its counts and shape give the share of activating
    cells), the GSEA pathways and annotation level (so that Fig 3A.a stays independent of
    Fig 3A.b), and absolute attribution values. What remains that a rater might use: the genes
    themselves (each model has its own gene panel) and the scale of the relative attribution.

    Parameters
    ----------
    payload
        From :func:`~scconcepts.viewer.build_payload` (``mode == "open"``).
    seed
        Seed of the shuffle (NumPy ``default_rng``): the same seed gives the same order.

    Returns
    -------
    (blinded, key)
        ``blinded``: the payload for the blinded page (``mode="blinded"``; top-level fields
        :data:`BLIND_FIELDS`, item fields :data:`BLIND_ITEM_FIELDS`, ``shown`` = the equalised
        ``{"prototypes": n, "cells": m}``); ``key``: ``{"study", "open_study", "seed", "shown",
        "items": {opaque id: {"id", "model", "kind", "unit"}}}``, to keep out of the page.

    Raises
    ------
    ValueError
        If ``payload`` is not an open payload, or its models' UMAPs draw different cells.
    """
    if payload.get("mode") != "open" or payload.get("schema") != VIEWER_SCHEMA:
        raise ValueError("blind_payload needs the open payload of build_payload() "
                         f"(schema {VIEWER_SCHEMA!r}, mode 'open').")
    umaps = list(payload["umaps"].values())
    drawn = {(u["n"], u.get("cells")) for u in umaps}
    if len(drawn) > 1:
        raise ValueError("The models' UMAPs draw different cells "
                         f"({sorted(map(str, drawn))}); build the payload with one seed and "
                         "umap_cells for every model, so that the blinded page can share a UMAP.")
    src = payload["items"]
    present = [_present_columns(it["per_prototype_relative"]) for it in src]
    n_proto = min((len(p) for p in present), default=0)
    n_on = [int((_cells(it["cells"]) > 0).sum()) for it in src]
    n_cells = min((n for n in n_on if n > 0), default=0)

    order = np.random.default_rng(int(seed)).permutation(len(src))
    width = max(2, len(str(len(order))))
    items, key_items = [], {}
    for pos, i in enumerate(order, 1):
        it, cols = src[int(i)], present[int(i)][:n_proto]
        oid = f"item-{pos:0{width}d}"
        items.append({
            "id": oid,
            "umap": SHARED_UMAP,
            "genes": list(it["genes"]),
            "attribution": it["relative"],
            "per_prototype": [[r[j] for j in cols] for r in it["per_prototype_relative"]],
            "cells": _b64(_top_cells(_cells(it["cells"]), n_cells)),
        })
        key_items[oid] = {"id": it["id"], "model": it["model"], "kind": it["kind"],
                          "unit": it["unit"]}
    genes = {g for it in items for g in it["genes"]}
    shown = {"prototypes": int(n_proto), "cells": int(n_cells)}
    blinded = {
        "schema": VIEWER_SCHEMA,
        "mode": "blinded",
        "title": "Expert rating (blinded)",
        "umaps": {SHARED_UMAP: umaps[0]} if umaps else {},
        "cell_labels": payload.get("cell_labels"),
        "questions": payload.get("questions"),
        "limits": payload.get("limits"),
        "shown": shown,
        "items": items,
        "gene_info": {g: v for g, v in payload["gene_info"].items() if g in genes},
        "gene_flags": {g: v for g, v in payload.get("gene_flags", {}).items() if g in genes},
    }
    blinded["study"] = _study_id(items, "blinded")
    key = {"study": blinded["study"], "open_study": payload["study"], "seed": int(seed),
           "shown": shown, "items": key_items}
    return blinded, key
