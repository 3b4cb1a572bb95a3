"""Usefulness of representations for downstream tasks (Sec 4.5, App G).

* the embedding-quality check of chapter 01 (k-NN accuracy, PCA of counts);
* the usefulness tasks of chapter 08 (Sec 4.5, App G, Fig 5, Fig 10): cell-cycle phases from
  ``scanpy.tl.score_genes_cell_cycle`` with the Regev-lab list, balanced train/test splits,
  scikit-learn logistic regression on concept codes vs neurons with held-out accuracy and
  confusion matrices, and the top-coefficient units per class with their attribution genes and
  known markers. Chapter 09 reuses them for the baselines of App B.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

__all__ = ["knn_accuracy", "pca_of_counts", "knn_table", "cell_cycle_coverage", "cell_cycle_phases",
           "balanced_split", "TaskResult", "fit_task", "compare_representations",
           "top_coefficients", "coefficient_genes", "cycle_role", "usefulness_tasks",
           "task_features", "unit_attribution"]


def knn_accuracy(X: np.ndarray, labels, k: int = 15, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated accuracy of a k-NN classifier (scikit-learn).

    Parameters
    ----------
    X
        Representation, shape (n_cells, d).
    labels
        Class of each cell, length n_cells.

    Returns
    -------
    float
        Mean accuracy over stratified folds.
    """
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    clf = KNeighborsClassifier(n_neighbors=k)
    return float(cross_val_score(clf, X, np.asarray(labels), cv=cv).mean())


def pca_of_counts(adata: ad.AnnData, n_comps: int = 50, seed: int = 0) -> np.ndarray:
    """PCA of log-normalised counts (scanpy: normalize_total 1e4, log1p, pca), (n, n_comps)."""
    tmp = ad.AnnData(X=adata.layers["counts"].copy() if "counts" in adata.layers
                     else adata.X.copy())
    sc.pp.normalize_total(tmp, target_sum=1e4)
    sc.pp.log1p(tmp)
    sc.pp.pca(tmp, n_comps=min(n_comps, tmp.n_vars - 1, tmp.n_obs - 1), random_state=seed)
    return tmp.obsm["X_pca"]


def knn_table(reps: dict[str, np.ndarray], labels, k: int = 15, folds: int = 5,
              seed: int = 0) -> pd.DataFrame:
    """k-NN cross-validated accuracy for several representations (rows)."""
    return pd.DataFrame({"accuracy": {n: knn_accuracy(X, labels, k, folds, seed)
                                      for n, X in reps.items()},
                         "dimensions": {n: X.shape[1] for n, X in reps.items()}})


# ---------------------------------------------------------------------------------------------
# Usefulness of concepts (Sec 4.5, App G): logistic regression on concept codes vs neurons
# ---------------------------------------------------------------------------------------------

def cell_cycle_coverage(adatas: dict[str, ad.AnnData]) -> pd.DataFrame:
    """How many Regev-lab cell-cycle genes (Tirosh et al. 2016) each dataset measures.

    Parameters
    ----------
    adatas
        Dataset name → AnnData with gene symbols as ``var_names``.

    Returns
    -------
    DataFrame
        One row per dataset: ``S genes``, ``G2M genes`` (found / listed), ``genes``.
    """
    from .data import load_cell_cycle_genes

    cc = load_cell_cycle_genes()
    rows = {}
    for name, a in adatas.items():
        v = set(map(str, a.var_names))
        rows[name] = {"S genes": sum(g in v for g in cc["S"]),
                      "G2M genes": sum(g in v for g in cc["G2M"]),
                      "listed (S / G2M)": f"{len(cc['S'])} / {len(cc['G2M'])}",
                      "genes": a.n_vars}
    return pd.DataFrame(rows).T


def cell_cycle_phases(adata: ad.AnnData, min_genes: int = 10, seed: int = 0) -> pd.DataFrame:
    """Cell-cycle phase of every cell with ``scanpy.tl.score_genes_cell_cycle`` (App G).

    The Regev-lab list bundled in ``data/genesets`` (43 S and 54 G2M genes) scores a
    log-normalised copy of the counts (``normalize_total`` to 1e4, ``log1p``), as in the scanpy
    cell-cycle tutorial.

    Parameters
    ----------
    adata
        Raw counts in ``X`` (or ``layers["counts"]``), gene symbols as ``var_names``, (n, m).
    min_genes
        Fewest genes of *each* list that must be measured; below it, the scores are noise.
    seed
        ``random_state`` of scanpy's control-gene sampling.

    Returns
    -------
    DataFrame
        Index = ``adata.obs_names``; ``S_score``, ``G2M_score``, ``phase`` (G1, S, G2M).

    Raises
    ------
    ValueError
        If fewer than ``min_genes`` genes of either list are in ``adata`` (the message gives the
        counts: pick a dataset that measures them, see :func:`cell_cycle_coverage`).
    """
    from .data import load_cell_cycle_genes

    cc = load_cell_cycle_genes()
    v = set(map(str, adata.var_names))
    s_genes = [g for g in cc["S"] if g in v]
    g2m_genes = [g for g in cc["G2M"] if g in v]
    if min(len(s_genes), len(g2m_genes)) < min_genes:
        raise ValueError(f"Only {len(s_genes)} S and {len(g2m_genes)} G2M cell-cycle genes of the "
                         f"Regev list are measured (need >= {min_genes} each); use a dataset "
                         "with more genes (see cell_cycle_coverage).")
    tmp = ad.AnnData(X=(adata.layers["counts"] if "counts" in adata.layers else adata.X).copy(),
                     obs=pd.DataFrame(index=adata.obs_names.copy()),
                     var=pd.DataFrame(index=adata.var_names.copy()))
    sc.pp.normalize_total(tmp, target_sum=1e4)
    sc.pp.log1p(tmp)
    sc.tl.score_genes_cell_cycle(tmp, s_genes=s_genes, g2m_genes=g2m_genes, random_state=seed)
    return tmp.obs[["S_score", "G2M_score", "phase"]].copy()


def balanced_split(labels, per_class: int, test_fraction: float = 0.25, min_cells: int = 0,
                   classes=None, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list]:
    """Balanced train/test cell indices for a classification task (App G).

    Every kept class contributes the same number of cells, n = min(``per_class``, size of the
    smallest kept class); of those, round(n × ``test_fraction``) go to the test set.

    Parameters
    ----------
    labels
        Class of every cell, length n_cells.
    per_class
        Cells per class, at most (paper: 6,000 + 2,000 for cell types, 10,000 + 1,000 for phases).
    test_fraction
        Share of each class's cells held out for testing.
    min_cells
        Classes with fewer cells are dropped (the paper keeps "classes with enough samples").
    classes
        Explicit classes to keep (overrides ``min_cells``).
    seed
        numpy seed of the draw.

    Returns
    -------
    (train_idx, test_idx, classes)
        Sorted index arrays into ``labels`` and the kept classes (sorted).

    Raises
    ------
    ValueError
        If fewer than two classes are kept or a class has fewer than 2 cells.
    """
    labels = pd.Series(np.asarray(labels, dtype=object)).astype(str)
    counts = labels.value_counts()
    if classes is None:
        classes = sorted(counts.index[counts >= max(min_cells, 2)])
    classes = [str(c) for c in classes]
    missing = [c for c in classes if c not in counts.index]
    if missing:
        raise ValueError(f"Classes {missing} have no cell; present: {sorted(counts.index)}.")
    if len(classes) < 2:
        raise ValueError(f"Need at least 2 classes with >= {min_cells} cells; counts: "
                         f"{counts.to_dict()}.")
    n = int(min(per_class, counts[classes].min()))
    n_test = int(round(n * test_fraction))
    if n < 2 or n_test < 1 or n_test >= n:
        raise ValueError(f"{n} cells per class cannot be split with test_fraction={test_fraction}.")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in classes:
        idx = rng.permutation(np.flatnonzero(labels.to_numpy() == c))[:n]
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test)), classes


@dataclass
class TaskResult:
    """A fitted logistic regression and its held-out evaluation.

    Attributes
    ----------
    accuracy
        Held-out accuracy (balanced classes, so it equals the balanced accuracy).
    confusion
        Rows = true class, columns = predicted class, counts (DataFrame, classes × classes).
    model
        The fitted :class:`sklearn.linear_model.LogisticRegression` (``coef_``: (n_classes, p)).
    converged
        False when scikit-learn stopped at ``max_iter`` (ConvergenceWarning), as the paper's
        ``max_iter=50`` run does.
    """

    accuracy: float
    confusion: pd.DataFrame
    model: object
    converged: bool


def fit_task(X, labels, train_idx, test_idx, max_iter: int = 100, seed: int = 0) -> TaskResult:
    """Logistic regression (scikit-learn defaults, ``max_iter``) on train, scored on test (App G).

    Parameters
    ----------
    X
        Features of every cell (concept codes (n, c), dense or sparse, or neurons (n, d)).
    labels
        Class of every cell, length n.
    train_idx, test_idx
        From :func:`balanced_split`.
    max_iter
        Paper: 50 for cell types, the default 100 for cell-cycle phases.

    Returns
    -------
    TaskResult
    """
    import warnings

    import scipy.sparse as sp
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import confusion_matrix

    X = X.tocsr() if sp.issparse(X) else np.asarray(X)
    y = np.asarray(labels, dtype=object).astype(str)
    clf = LogisticRegression(max_iter=int(max_iter), random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        clf.fit(X[train_idx], y[train_idx])
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    pred = clf.predict(X[test_idx])
    classes = list(clf.classes_)
    cm = confusion_matrix(y[test_idx], pred, labels=classes)
    return TaskResult(accuracy=float((pred == y[test_idx]).mean()),
                      confusion=pd.DataFrame(cm, index=pd.Index(classes, name="true"),
                                             columns=pd.Index(classes, name="predicted")),
                      model=clf, converged=converged)


def compare_representations(reps: dict, labels, train_idx, test_idx, max_iter: int = 100,
                            seed: int = 0) -> tuple[pd.DataFrame, dict[str, TaskResult]]:
    """:func:`fit_task` for several representations of the same cells (Fig 10).

    Returns
    -------
    (table, results)
        ``table``: one row per representation with ``accuracy``, ``features``, ``converged``;
        ``results``: name → :class:`TaskResult`.
    """
    results = {name: fit_task(X, labels, train_idx, test_idx, max_iter, seed)
               for name, X in reps.items()}
    table = pd.DataFrame({"accuracy": {n: r.accuracy for n, r in results.items()},
                          "features": {n: reps[n].shape[1] for n in reps},
                          "converged": {n: r.converged for n, r in results.items()}})
    return table, results


def top_coefficients(result: TaskResult, n: int = 3, prefix: str = "C") -> pd.DataFrame:
    """The ``n`` units with the largest positive coefficient for each class (Fig 5).

    Returns
    -------
    DataFrame
        Columns ``class``, ``rank`` (1-based), ``unit`` (feature index), ``name``
        (``prefix`` + index), ``coefficient``. For two classes scikit-learn fits one coefficient
        row (for the second class); the first class then gets the most negative ones, negated.
    """
    clf = result.model
    coef = np.asarray(clf.coef_)
    classes = list(clf.classes_)
    if coef.shape[0] == 1:
        coef = np.vstack([-coef[0], coef[0]])
    rows = []
    for ci, cls in enumerate(classes):
        order = np.argsort(-coef[ci], kind="stable")[:n]
        for rank, j in enumerate(order, 1):
            rows.append({"class": cls, "rank": rank, "unit": int(j), "name": f"{prefix}{j}",
                         "coefficient": float(coef[ci, j])})
    return pd.DataFrame(rows)


def coefficient_genes(top: pd.DataFrame, attribution, markers: dict[str, list[str]],
                      n_genes: int = 10) -> pd.DataFrame:
    """Top attribution genes of top-coefficient units and their overlap with class markers.

    Parameters
    ----------
    top
        :func:`top_coefficients` output.
    attribution
        :class:`~scconcepts.attribution.AttributionResult` holding (some of) those units.
    markers
        Class → known marker symbols (e.g. the Regev S / G2M lists, canonical cell-type markers);
        a class without a list gets "no marker list".

    Returns
    -------
    DataFrame
        ``top`` with ``top genes`` (comma-joined top ``n_genes`` of C_i), ``markers in top genes``
        and ``n markers``; units without attribution get "not attributed" and NaN.
    """
    have = set(np.asarray(attribution.units).tolist()) if attribution is not None else set()
    # (a unit may appear twice after AttributionResult.concat: the first row is used)
    genes, hits, nh = [], [], []
    for r in top.to_dict("records"):
        unit = int(r["unit"])
        row = int(np.flatnonzero(attribution.units == unit)[0]) if unit in have else None
        if row is None or np.isnan(attribution.scores[row]).all():
            genes.append("not attributed")
            hits.append("")
            nh.append(np.nan)
            continue
        g = list(attribution.ranked(unit).index[:n_genes])
        mk = markers.get(r["class"])
        genes.append(", ".join(g))
        if mk is None:
            hits.append("no marker list")
            nh.append(np.nan)
        else:
            h = [x for x in g if x in set(mk)]
            hits.append(", ".join(h))
            nh.append(len(h))
    return top.assign(**{"top genes": genes, "markers in top genes": hits, "n markers": nh})


def cycle_role(datasets: dict[str, ad.AnnData], min_genes: int = 10
               ) -> tuple[str, pd.DataFrame]:
    """The first dataset (in ``datasets`` order, e.g. main then second) measuring at least
    ``min_genes`` genes of each Regev list.

    Parameters
    ----------
    datasets
        Role → AnnData (gene symbols as ``var_names``).

    Returns
    -------
    (role, coverage)
        The role and :func:`cell_cycle_coverage` of every dataset (index = role).

    Raises
    ------
    ValueError
        If no dataset measures enough cell-cycle genes.
    """
    cov = cell_cycle_coverage(datasets)
    ok = [r for r in cov.index if min(cov.loc[r, "S genes"], cov.loc[r, "G2M genes"]) >= min_genes]
    if not ok:
        raise ValueError(f"No dataset measures >= {min_genes} genes of each cell-cycle list:\n{cov}")
    return ok[0], cov


def usefulness_tasks(datasets: dict[str, ad.AnnData], settings, seed: int = 0
                     ) -> dict[str, dict]:
    """The two classification tasks of Sec 4.5 / App G.

    * ``cell type``: ``obs["cell_type"]`` of ``datasets["main"]``, classes with at least
      ``settings.celltype_min_cells`` cells, ``settings.celltype_per_class`` cells per class,
      ``max_iter`` = ``settings.celltype_max_iter`` (paper: 50);
    * ``cell cycle``: phases from :func:`cell_cycle_phases` on the dataset chosen by
      :func:`cycle_role` among ``datasets``, balanced to the smallest phase (at most
      ``settings.cycle_per_class``), ``max_iter`` = ``settings.cycle_max_iter`` (paper:
      scikit-learn's default 100).

    Both hold out ``settings.test_fraction`` of each class, seeded by ``seed``.

    Parameters
    ----------
    datasets
        Role → AnnData (raw counts in ``X``); must hold ``"main"``; searched in order for the
        cell-cycle task (e.g. ``{"main": ..., "second": ...}``).
    settings
        The profile's ``usefulness`` section (:class:`scconcepts.config.UsefulnessSettings`).

    Returns
    -------
    dict
        Task → ``{"role", "labels" (n_cells,), "train", "test", "classes", "max_iter"}``;
        the cell-cycle entry also has ``phases`` (DataFrame of scores) and ``coverage``.
    """
    s = settings
    seed = int(seed)
    frac = float(s.test_fraction)
    ct = datasets["main"].obs["cell_type"].astype(str).to_numpy()
    tr, te, cl = balanced_split(ct, int(s.celltype_per_class), frac, int(s.celltype_min_cells),
                                seed=seed)
    tasks = {"cell type": {"role": "main", "labels": ct, "train": tr, "test": te, "classes": cl,
                           "max_iter": int(s.celltype_max_iter)}}
    role, cov = cycle_role(datasets, int(s.cycle_min_genes))
    phases = cell_cycle_phases(datasets[role], int(s.cycle_min_genes), seed)
    lab = phases["phase"].astype(str).to_numpy()
    tr, te, cl = balanced_split(lab, int(s.cycle_per_class), frac, seed=seed)
    tasks["cell cycle"] = {"role": role, "labels": lab, "train": tr, "test": te, "classes": cl,
                           "max_iter": int(s.cycle_max_iter), "phases": phases,
                           "coverage": cov}
    return tasks


def task_features(embeddings: np.ndarray, codes) -> dict:
    """The two feature sets of a task: ``neurons`` (embeddings, (n, d)) and ``concepts`` (the
    codes of the default SAE trained on the task's dataset, sparse (n, c))."""
    if embeddings.shape[0] != codes.shape[0]:
        raise ValueError(f"Embeddings ({embeddings.shape[0]} cells) and codes "
                         f"({codes.shape[0]} cells) must describe the same cells.")
    return {"neurons": embeddings, "concepts": codes}


def unit_attribution(attribute: Callable, kind: str, role: str, top: pd.DataFrame, settings,
                     classes: Sequence[str] | None = None):
    """Attribution of the top-coefficient units of one task (for :func:`coefficient_genes`).

    Parameters
    ----------
    attribute
        ``attribute(kind, units)`` → :class:`~scconcepts.attribution.AttributionResult` of
        ``kind`` ∈ {"concept", "neuron"} on the task's cells (concepts of the SAE trained on
        ``role``); ``units=None`` = the model's default (cached) attribution, asked only for
        ``role == "main"`` (chapter 04's).
    kind
        ``"concepts"`` or ``"neurons"`` (the feature set of the task).
    role
        The task's dataset.
    top
        :func:`top_coefficients` output (columns ``class``, ``rank``, ``unit``).
    settings
        The model's profile block: ``attribution_units`` (``"active"``: every unit is
        attributed, so all of ``top`` is; an integer: chapter 04 attributed only a sample) and
        ``usefulness_attribution_units`` (then, how many top units, by rank, to attribute beyond
        the sample; a unit may cost seconds to half a minute on a CPU).
    classes
        Classes whose units are attributed first when the budget limits them (e.g. those with
        a marker list, so that Fig 5's marker test has units to read); then by rank.

    Returns
    -------
    AttributionResult or None
        ``"active"``: chapter 04's attribution of every unit on main, the top units on another
        role. Otherwise chapter 04's sample when ``role`` is main, plus the budgeted units;
        None when nothing is attributed.
    """
    from .attribution import AttributionResult

    k = "concept" if kind == "concepts" else "neuron"
    units = sorted(set(top["unit"].astype(int)))
    if settings.attribution_units == "active":
        return attribute(k, None) if role == "main" else attribute(k, units)
    parts = [attribute(k, None)] if role == "main" else []
    have = set(parts[0].units.tolist()) if parts else set()
    order = top.assign(_first=~top["class"].isin(list(classes or [])))
    order = order.sort_values(["_first", "rank"], kind="stable")  # listed classes first
    budget = int(settings.usefulness_attribution_units)
    extra = [u for u in order["unit"].astype(int).unique() if u not in have][:budget]
    if extra:
        parts.append(attribute(k, sorted(extra)))
    return AttributionResult.concat(parts) if parts else None
