"""Expert annotations exported by the viewer, read back (:func:`load_annotations`) and summarised
as Fig 3A.a (:func:`interpretability_table`, :func:`plot_interpretability`), Table 7
(:func:`table7_rows`) and rater agreement (:func:`rater_agreement`). See
:mod:`scconcepts.viewer`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "ANNOTATION_SCHEMA",
    "IMPORT_LIMITS",
    "LEVELS",
    "QUESTIONS",
    "form_questions",
    "load_annotations",
    "interpretability_level",
    "interpretability_table",
    "plot_interpretability",
    "table7_rows",
    "rater_agreement",
]

#: Schema name of the exported annotations (a neutral word, as ``VIEWER_SCHEMA``).
ANNOTATION_SCHEMA = "expert-annotations/1"
#: Fig 3A.a levels, in plotting order.
LEVELS = ["interpretable", "signal but unclear", "not interpretable"]
#: The questions of the annotation form (Fig 9), in order: ``id`` (answer field), ``legend``,
#: ``text``, ``choices`` ([value, label]), ``which`` (the text field asked for when the answer is
#: "yes"), ``hint`` (the grey text of its empty answer box), and ``columns``: the obs columns
#: that make the question meaningful
#: (the form asks it only when the dataset has one of them with more than one value; an empty
#: tuple means always asked). The viewer builds its form from this list.
QUESTIONS = (
    {"id": "cell_type", "legend": "Cell type specificity",
     "text": "Do these genes suggest a specific cell type?",
     "choices": (("no", "No"), ("yes", "Yes")), "which": "cell_type_which",
     "hint": "Which cell type?", "columns": ("cell_type", "author_cell_type")},
    {"id": "tissue", "legend": "Tissue specificity",
     "text": "Do these genes suggest a specific tissue?",
     "choices": (("no", "No"), ("yes", "Yes")), "which": "tissue_which",
     "hint": "Which tissue? e.g., liver, brain, immune system...",
     "columns": ("tissue", "tissue_general")},
    {"id": "process", "legend": "Biological process specificity",
     "text": "Do these genes suggest a specific biological process?",
     "choices": (("no", "No"), ("unclear", "Signal but unclear"), ("yes", "Yes")),
     "which": "process_explanation",
     "hint": "Please explain the biological process or signal", "columns": ()},
)
_FORM_FIELDS = {q["id"]: tuple(v for v, _ in q["choices"]) for q in QUESTIONS}
_TEXT_FIELDS = ("cell_type_which", "tissue_which", "process_explanation", "notes")
#: Limits on an imported export (an export of a few hundred items is tens of kB): file size,
#: a free-text answer, and a short field (rater id, save time). :func:`load_annotations` and the
#: viewer's import check (it reads them from the payload) apply the same; the text is kept as
#: text, and tables escape it when shown.
IMPORT_LIMITS = {"file_bytes": 5 * 1024 * 1024, "text": 5000, "short": 200}
MAX_FILE_BYTES, MAX_TEXT, MAX_SHORT = (IMPORT_LIMITS[k] for k in ("file_bytes", "text", "short"))


def form_questions(obs: pd.DataFrame) -> list[str]:
    """Ids of the :data:`QUESTIONS` worth asking for a dataset with cell metadata ``obs``.

    A question tied to obs columns is asked only when one of them has more than one distinct
    (non-missing) value: an all-blood dataset gets no tissue question, a dataset without cell
    types no cell-type question. The biological-process question is always asked.

    Parameters
    ----------
    obs
        Cell metadata, one row per cell.

    Returns
    -------
    list of str
        Question ids, in :data:`QUESTIONS` order.
    """
    def varies(col: str) -> bool:
        return col in obs.columns and obs[col].nunique(dropna=True) > 1

    return [q["id"] for q in QUESTIONS if not q["columns"] or any(map(varies, q["columns"]))]


# --------------------------------------------------------------------------------------------
# annotations → Fig 3A.a and Table 7
# --------------------------------------------------------------------------------------------


def _validate_annotation(item_id: str, ann: Any, source: str,
                         asked: Sequence[str] = tuple(_FORM_FIELDS)) -> dict[str, str]:
    """One exported form, checked; a question the form did not ask is stored as ``""``."""
    if not isinstance(ann, dict):
        raise ValueError(f"{source}: annotation of {item_id!r} is a {type(ann).__name__}, not an "
                         "object; export the file again from the viewer.")
    out = {}
    for name, allowed in _FORM_FIELDS.items():
        v = ann.get(name)
        if name not in asked and v in (None, ""):
            out[name] = ""
            continue
        if v not in allowed:
            raise ValueError(f"{source}: annotation of {item_id!r} has {name}={v!r}; expected one "
                             f"of {list(allowed)} (schema {ANNOTATION_SCHEMA}). Fix or re-save "
                             "this item in the viewer and export again.")
        out[name] = v
    for name in _TEXT_FIELDS + ("saved_at",):
        v = ann.get(name, "")
        v = "" if v is None else v
        limit = MAX_SHORT if name == "saved_at" else MAX_TEXT
        if not isinstance(v, str) or len(v) > limit:
            raise ValueError(f"{source}: field {name!r} of {item_id!r} must be text of at most "
                             f"{limit} characters (got {type(v).__name__} of length "
                             f"{len(str(v))}). Export the file again from the viewer.")
        out[name] = v
    return out


def load_annotations(paths: str | os.PathLike | Sequence[str | os.PathLike],
                     studies: dict[str, dict[str, dict]]) -> pd.DataFrame:
    """Read annotation JSON files exported by the viewer and map them back to units.

    Parameters
    ----------
    paths
        One file or several (one per rater); a folder means every ``*.json`` in it.
    studies
        :attr:`~scconcepts.viewer.ViewerExport.studies` of the viewer the raters used (open
        and/or blinded).

    Returns
    -------
    DataFrame
        One row per (file, item): ``rater``, ``file``, ``mode``, ``item``, ``id`` (open id),
        ``model``, ``kind``, ``unit``, the form fields (``""`` for a question the form did
        not ask, see :func:`form_questions`) and ``level`` (Fig 3A.a, see
        :func:`interpretability_level`).

    Raises
    ------
    FileNotFoundError
        If a file does not exist.
    ValueError
        If a file is not JSON, has another schema, comes from another viewer build (study id),
        names no rater, names unknown items or questions, or holds an invalid answer; each
        message says what to do.
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
        if f.stat().st_size > MAX_FILE_BYTES:
            raise ValueError(f"{f} is {f.stat().st_size:,} bytes, more than the "
                             f"{MAX_FILE_BYTES:,} an annotation export can be: pass the file "
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
        rater = doc.get("rater") or ""
        rater = rater.strip() if isinstance(rater, str) and len(rater) <= MAX_SHORT else None
        if not rater:
            raise ValueError(f"{f} names no rater (a text of at most {MAX_SHORT} characters): "
                             "enter a rater id in the viewer and export again (ratings must be "
                             "attributable to compare raters).")
        asked = doc.get("questions", list(_FORM_FIELDS))
        valid = isinstance(asked, list) and all(isinstance(q, str) for q in asked)
        unknown_q = sorted(set(asked) - set(_FORM_FIELDS)) if valid else repr(asked)[:80]
        if unknown_q:
            raise ValueError(f"{f}: unknown question id(s) {unknown_q}; expected a list of "
                             f"{list(_FORM_FIELDS)}. Export the file again from the viewer.")
        for item, ann in anns.items():
            ans = _validate_annotation(item, ann, str(f), asked)
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
    from ..plotting import stacked_fraction_bars

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
        :attr:`~scconcepts.viewer.ViewerExport.items`.

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
