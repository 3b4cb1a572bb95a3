"""A perturbation case: do concepts learned without labels find the IFN-β response? (issue 5.6)

The SAE of the main dataset (Kang et al. 2018 *control* PBMCs: it never saw a stimulated cell)
encodes the cells of the perturbation dataset (Kang IFN-β: 1,000 control, 1,000 stimulated,
no cell-type labels). Concepts are then

* ranked by how well their activation separates stimulated from control cells: the AUROC of the
  activation (scikit-learn ``roc_auc_score``; 0.5 = no separation) and the difference of
  activation frequencies (share of cells with code > 0). The labels are used only to *rank* the
  concepts, after the SAE was trained;
* and, with no label at all, by their activation frequency in the perturbation cells minus their
  frequency in the main dataset (a distribution shift any user can compute).

The top concepts are explained with the attribution of Sec 3.2 (Eq 1–3) computed on the
perturbation cells with the main SAE (prototypes and counterfactuals among perturbation cells),
and with attribution-based GSEA (:func:`scconcepts.enrichment.annotate_units`).
"""

from __future__ import annotations

import json
import re
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .attribution import AttributionResult

__all__ = ["separating_concepts", "frequency_shift", "attribute_on_role", "marker_hits",
           "interferon_evidence", "INTERFERON_TERMS"]

INTERFERON_TERMS = re.compile(r"interferon|virus|viral|antiviral", re.I)


def _dense(codes) -> np.ndarray:
    return np.asarray(codes.toarray() if sp.issparse(codes) else codes, dtype=np.float32)


def separating_concepts(codes, labels: Sequence, positive, min_cells: int = 1) -> pd.DataFrame:
    """Rank concepts by how well their activation separates ``positive`` cells from the others.

    Parameters
    ----------
    codes
        Concept activations U of the cells, shape (n_cells, c), dense or sparse.
    labels
        Condition of each cell, length n_cells.
    positive
        The label of the positive class (e.g. ``"IFN-beta stimulated"``).
    min_cells
        Concepts active in fewer cells are left out (their AUROC is noise).

    Returns
    -------
    DataFrame
        Index ``concept``; columns ``auroc`` (sklearn ``roc_auc_score`` of the activation;
        > 0.5 = higher in positive cells), ``freq_pos``, ``freq_neg`` (share of cells with
        code > 0), ``freq_diff``, ``mean_pos``, ``mean_neg``, ``n_active``; sorted by
        decreasing AUROC.

    Raises
    ------
    ValueError
        If the labels do not hold both classes or their length differs from the cells.
    """
    from sklearn.metrics import roc_auc_score

    U = _dense(codes)
    y = np.asarray(labels) == positive
    if len(y) != U.shape[0]:
        raise ValueError(f"{len(y)} labels for {U.shape[0]} cells.")
    if y.all() or not y.any():
        raise ValueError(f"Labels must contain {positive!r} and at least one other value.")
    n_active = (U > 0).sum(0)
    keep = np.flatnonzero(n_active >= max(1, min_cells))
    df = pd.DataFrame({
        "auroc": [roc_auc_score(y, U[:, j]) for j in keep],
        "freq_pos": (U[y][:, keep] > 0).mean(0), "freq_neg": (U[~y][:, keep] > 0).mean(0),
        "mean_pos": U[y][:, keep].mean(0), "mean_neg": U[~y][:, keep].mean(0),
        "n_active": n_active[keep]}, index=pd.Index(keep, name="concept"))
    df.insert(3, "freq_diff", df["freq_pos"] - df["freq_neg"])
    return df.sort_values("auroc", ascending=False, kind="stable")


def frequency_shift(codes_query, codes_reference) -> pd.Series:
    """Label-free ranking: activation frequency in the query cells minus in the reference cells.

    Parameters
    ----------
    codes_query, codes_reference
        Activations of the same SAE on two datasets, shapes (n_q, c) and (n_r, c).

    Returns
    -------
    Series
        Index ``concept`` (all c), sorted decreasingly.
    """
    fq = np.asarray((codes_query > 0).mean(0)).ravel()
    fr = np.asarray((codes_reference > 0).mean(0)).ravel()
    if fq.shape != fr.shape:
        raise ValueError(f"The two code matrices have {fq.size} and {fr.size} concepts.")
    return pd.Series(fq - fr, index=pd.Index(np.arange(fq.size), name="concept"),
                     name="freq_shift").sort_values(ascending=False, kind="stable")


def attribute_on_role(pipe, units: Sequence[int], model: str = "scvi",
                      role: str = "perturbation", sae_role: str = "main") -> AttributionResult:
    """Attribution (Eq 1–3) of concepts of the ``sae_role`` SAE on the cells of ``role`` (cached).

    :meth:`Pipeline.attribution` explains a dataset with the SAE trained on that same dataset;
    here the SAE comes from ``sae_role`` and the prototypes, counterfactuals and perturbed cells
    from ``role``, with the same functions (:func:`scconcepts.attribution.attribute_units`) and
    N_p, N_c of ``pipe.model_settings(model)``.

    Returns
    -------
    AttributionResult
        Cached as ``artifacts/<profile>/perturbation/<model>_<role>_sae-<sae_role>_<key>.npz``.
    """
    from .attribution import SAEReadout, UnitFunction, attribute_units
    from .utils import param_key

    cf = pipe.cfg
    ms = pipe.model_settings(model)
    c, k = int(ms["c"]), int(ms["k"])
    units = np.asarray(units, dtype=int)
    key = param_key({"units": units.tolist(), "np": ms["np"], "nc": ms["nc"],
                     "sae": pipe.sae_config(c, k, model, sae_role).__dict__,
                     "emb": pipe._emb_tag(model), "n": int(pipe.dataset(role).n_obs)})
    path = cf.artifacts / "perturbation" / f"{model}_{role}_sae-{sae_role}_{key}.npz"
    if path.exists():
        return AttributionResult.load(path)
    sae, _ = pipe.sae(c, k, model, sae_role)
    X, genes, f = pipe._model_input(role, model)
    res = attribute_units(UnitFunction(f, SAEReadout(sae)), X, pipe.embeddings(role, model),
                          pipe.codes(c, k, model, role=role, sae_role=sae_role), units, genes,
                          n_prototypes=int(ms["np"]), n_counterfactuals=int(ms["nc"]),
                          progress=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    res.save(path)
    return res


def marker_hits(ranked: pd.Series, markers: Sequence[str], n: int = 20) -> list[str]:
    """Markers (e.g. interferon-stimulated genes) among the top-``n`` genes of a ranking."""
    top = [str(g).upper() for g in ranked.index[:n]]
    mk = {m.upper() for m in markers}
    return [g for g in top if g in mk]


def interferon_evidence(attribution: AttributionResult, summary: pd.DataFrame,
                        markers: Sequence[str], n: int = 20) -> dict:
    """How much interferon signal the explained concepts carry (chapter 11's verdict).

    Parameters
    ----------
    attribution
        Attribution of the concepts (first unit = the best-separating one).
    summary
        :func:`scconcepts.enrichment.annotate_units` summary of the same units (``best_term``,
        ``top_terms`` JSON, ``annotation``).
    markers
        Interferon-stimulated genes the model sees.

    Returns
    -------
    dict
        ``n_concepts``; ``isg`` (ISGs among each concept's top-``n`` genes, list);
        ``with_isg`` (concepts with at least one); ``ifn_best`` / ``ifn_any`` (concepts whose
        best GO term / one of whose top terms matches :data:`INTERFERON_TERMS`);
        ``annotated`` (at least weakly annotated); ``found`` (True when some concept has ISGs
        and an interferon/virus term, best or among the top terms).
    """
    isg = [len(marker_hits(attribution.ranked(int(u)), markers, n)) for u in attribution.units]
    ifn_best = sum(bool(INTERFERON_TERMS.search(str(t)))
                   for t in summary["best_term"].fillna(""))
    ifn_any = sum(any(INTERFERON_TERMS.search(t["term"]) for t in json.loads(s))
                  for s in summary["top_terms"])
    with_isg = sum(i > 0 for i in isg)
    return {"n_concepts": len(attribution.units), "isg": isg, "with_isg": with_isg,
            "ifn_best": ifn_best, "ifn_any": ifn_any,
            "annotated": int((summary["annotation"] != "none").sum()),
            "found": bool(with_isg and (ifn_any or ifn_best))}
