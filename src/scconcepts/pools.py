"""What a unit's counterfactuals are: per-unit pair diagnostics and the annotation model of
chapter 05's neuron-baseline sensitivity (issue 13, item 3).

Eq 1 of the paper takes a unit's counterfactual among the cells where the unit does not
activate. For a Top-K concept that pool is nearly every cell (a concept fires in a few per cent
of them), so the nearest non-activating cell is a close neighbour of the prototype. For a neuron
centred on its median (:class:`scconcepts.attribution.NeuronReadout`) the pool is half of the
cells, and the nearest one below the median can be far from a prototype several standard
deviations above it — often a cell of another population. Fig 3A.b then compares two kinds of
unit *and* two kinds of counterfactual. This module measures the second difference:

* :func:`pair_diagnostics` — per unit, from the (prototype, counterfactual) pairs the attribution
  used: the embedding distance of the pair relative to the prototype's nearest neighbour, the
  share of pairs whose two cells have different cell types, and the library-size ratio;
* :func:`pool_quantile` — the quantile that gives neurons the concepts' median firing rate;
* :func:`annotation_model` — a logistic regression ``annotated ~ kind + diagnostics``
  (statsmodels), whose coefficient of "kind" says whether concepts and neurons still differ once
  the counterfactuals are alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["pair_diagnostics", "pool_quantile", "annotation_model", "DIAGNOSTICS"]

#: fewer complete units than this leave :func:`annotation_model` unfitted (NaN)
MIN_UNITS = 10
#: the per-unit covariates of :func:`annotation_model`, in the order of its table
DIAGNOSTICS = ("log distance ratio", "other cell type", "abs log library ratio")


def pair_diagnostics(embeddings: np.ndarray, library_size: np.ndarray,
                     cell_type: Sequence, prototypes: np.ndarray, counterfactuals: np.ndarray,
                     units: Sequence[int]) -> pd.DataFrame:
    """Per-unit description of the (prototype, counterfactual) pairs of an attribution.

    Parameters
    ----------
    embeddings
        f(x) of every cell, (n_cells, d): the space of Eq 1's distances.
    library_size
        Total counts of every cell, (n_cells,) (counts).
    cell_type
        Cell-type label of every cell, (n_cells,).
    prototypes, counterfactuals
        :class:`~scconcepts.attribution.AttributionResult` fields, (n_units, N_p) and
        (n_units, N_p, N_c) cell indices, −1 where absent.
    units
        Unit indices, (n_units,).

    Returns
    -------
    DataFrame
        Index ``unit``; columns ``distance ratio`` (mean over pairs of ‖f(x^p) − f(x^c)‖ over the
        distance from x^p to its nearest other cell: 1 = the counterfactual is as close as the
        nearest neighbour), ``log distance ratio``, ``other cell type`` (share of pairs whose
        cells have different cell types), ``abs log library ratio`` (mean |log(lib_c / lib_p)|)
        and ``pairs``. Units without pairs get NaN.

    Raises
    ------
    ValueError
        If the arrays disagree on the number of cells or units.
    """
    from sklearn.neighbors import NearestNeighbors

    A = np.asarray(embeddings, dtype=np.float64)
    lib = np.asarray(library_size, dtype=np.float64).ravel()
    ct = np.asarray(cell_type).astype(str)
    P, C = np.asarray(prototypes), np.asarray(counterfactuals)
    if not (len(A) == len(lib) == len(ct)):
        raise ValueError(f"embeddings ({len(A)}), library_size ({len(lib)}) and cell_type "
                         f"({len(ct)}) must describe the same cells.")
    if not (P.shape[0] == C.shape[0] == len(units)) or C.shape[:2] != P.shape:
        raise ValueError(f"prototypes {P.shape}, counterfactuals {C.shape} and {len(units)} "
                         "units do not match (AttributionResult fields expected).")
    cells = np.unique(P[P >= 0])
    nn = NearestNeighbors(n_neighbors=2).fit(A)
    d_nn = dict(zip(cells, nn.kneighbors(A[cells])[0][:, 1])) if cells.size else {}
    rows = []
    for u, p_row, c_rows in zip(units, P, C):
        ok = [(p, c) for p, cs in zip(p_row, c_rows) if p >= 0 for c in cs if c >= 0]
        if not ok:
            rows.append({"unit": int(u), "pairs": 0})
            continue
        p, c = map(np.asarray, zip(*ok))
        dist = np.linalg.norm(A[p] - A[c], axis=1)
        ratio = dist / np.maximum([d_nn[i] for i in p], 1e-12)
        rows.append({"unit": int(u), "distance ratio": float(ratio.mean()),
                     "log distance ratio": float(np.log(ratio).mean()),
                     "other cell type": float((ct[p] != ct[c]).mean()),
                     "abs log library ratio": float(np.abs(np.log(np.maximum(lib[c], 1)
                                                                  / np.maximum(lib[p], 1))).mean()),
                     "pairs": len(ok)})
    cols = ["distance ratio", "log distance ratio", "other cell type", "abs log library ratio",
            "pairs"]
    return pd.DataFrame(rows).set_index("unit").reindex(columns=cols)


def pool_quantile(codes) -> float:
    """The neuron centring quantile that matches the concepts' median firing rate: 1 − the
    median over active concepts of the share of cells where the concept fires.

    ``codes``: concept activations U, (n_cells, c), sparse or dense. Raises ValueError when no
    concept fires."""
    import scipy.sparse as sp

    nnz = (codes.getnnz(axis=0) if sp.issparse(codes)
           else (np.asarray(codes) != 0).sum(0))
    rate = nnz[nnz > 0] / codes.shape[0]
    if rate.size == 0:
        raise ValueError("No concept fires in any cell: there is no firing rate to match.")
    return float(1 - np.median(rate))


def annotation_model(table: pd.DataFrame, covariates: Sequence[str] = DIAGNOSTICS
                     ) -> pd.DataFrame:
    """Logistic regression ``annotated ~ concept + covariates`` over units (statsmodels Logit).

    Parameters
    ----------
    table
        One row per unit: ``annotated`` (bool), ``kind`` (``"concept"`` / ``"neuron"``) and the
        covariate columns (e.g. :func:`pair_diagnostics`). Rows with a missing value are left
        out.
    covariates
        Columns added to the model, standardised (mean 0, sd 1) so coefficients compare.

    Returns
    -------
    DataFrame
        One row per term (``concept`` = the kind indicator, then each covariate): ``coef``
        (log-odds), ``low``, ``high`` (95 % Wald interval), ``p``, with ``n`` (units) and
        ``model`` (``"kind only"`` or ``"kind + pairs"``) — both models are fitted, so the
        table shows how the kind's coefficient moves when the pair covariates enter.
        A perfectly separated fit is reported with NaN intervals rather than raised.

        With fewer than :data:`MIN_UNITS` complete units, every value is NaN.

    Raises
    ------
    ValueError
        If a column is missing.
    """
    import statsmodels.api as sm

    need = ["annotated", "kind", *covariates]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(f"annotation_model: missing column(s) {missing}; pass a table with "
                         f"{need}.")
    t = table[need].dropna()
    if len(t) < MIN_UNITS:  # too few units to fit: NaN rows, so that the claim says so
        return pd.DataFrame([{"model": name, "term": term, "coef": np.nan, "low": np.nan,
                              "high": np.nan, "p": np.nan, "n": len(t)}
                             for name, terms in (("kind only", ["concept"]),
                                                 ("kind + pairs", ["concept", *covariates]))
                             for term in terms])
    y = t["annotated"].astype(float).to_numpy()
    x_kind = (t["kind"] == "concept").astype(float).to_numpy()
    out = []
    for name, cols in (("kind only", []), ("kind + pairs", list(covariates))):
        X = [x_kind]
        for col in cols:
            v = t[col].to_numpy(float)
            sd = v.std()
            X.append((v - v.mean()) / sd if sd > 0 else v * 0)
        X = sm.add_constant(np.column_stack(X), has_constant="add")
        try:
            fit = sm.Logit(y, X).fit(disp=0, method="newton", maxiter=200)
            params, ci, p = fit.params, fit.conf_int(0.05), fit.pvalues
        except (np.linalg.LinAlgError, Exception):  # perfect separation, singular design
            params = np.full(X.shape[1], np.nan)
            ci, p = np.full((X.shape[1], 2), np.nan), np.full(X.shape[1], np.nan)
        for j, term in enumerate(["concept", *cols], start=1):
            out.append({"model": name, "term": term, "coef": float(params[j]),
                        "low": float(np.asarray(ci)[j, 0]), "high": float(np.asarray(ci)[j, 1]),
                        "p": float(p[j]), "n": len(t)})
    return pd.DataFrame(out)
