"""Concept-extraction baselines next to the Top-K SAE (App B, Tables 4/5).

* **Semi-NMF** (Ding, Li & Jordan 2010, "Convex and semi-nonnegative matrix factorizations",
  IEEE TPAMI 32(1):45–55): A − ā ≈ U Dᵀ with non-negative codes U (n, c) and a mixed-sign
  dictionary D (d, c), fitted by the paper's alternating updates (their Eq 5 and 6, with
  X = (A − ā)ᵀ, F = D, G = U):

      D ← (A − ā)ᵀ U (UᵀU)⁻¹
      U ← U ∘ sqrt( ([(A − ā) D]⁺ + U [DᵀD]⁻) / ([(A − ā) D]⁻ + U [DᵀD]⁺) )

  where M⁺ = (|M| + M)/2 and M⁻ = (|M| − M)/2. Both the under-complete (c < d) and
  over-complete (c > d) settings of App B. The paper used the Overcomplete library's
  ``SemiNMF``; here it is implemented because ``pip install overcomplete`` is not clean on a CPU
  machine: it requires torchvision, and resolving it replaces the pinned CPU torch with a CUDA
  build (a dry run would install torch 2.15 plus ~2 GB of nvidia-* wheels). Differences from
  Ding et al.: the inputs are centred by their mean (as the SAE's ``b_dec``), U is initialised
  seeded-uniform instead of by k-means, and codes of new cells are obtained by the same U update
  with D fixed (:meth:`SemiNMF.transform`).
* **Comparable sparsity**: plain multiplicative updates give dense codes, while App B compares
  "at comparable sparsity levels"; :func:`keep_top_k` keeps each cell's k largest semi-NMF codes
  (k of the SAE) as an extra, sparse variant.
* **PCA** and **ICA** (scikit-learn ``PCA``, ``FastICA``): the low-rank, dense baselines a
  reviewer asked for.

:func:`decomposition_metrics` gives the columns of Tables 4/5 (concepts, active concepts,
sparsity, R²); :func:`baseline_table` assembles the table of one model with the SAE, the neurons
and the downstream accuracies of :mod:`scconcepts.downstream`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .sae import r2_score

__all__ = ["SemiNMF", "semi_nmf", "LinearDecomposition", "fit_pca", "fit_ica",
           "decomposition_metrics", "baseline_table", "keep_top_k"]

_EPS = 1e-12


def _pos(m: np.ndarray) -> np.ndarray:
    return (np.abs(m) + m) / 2


def _neg(m: np.ndarray) -> np.ndarray:
    return (np.abs(m) - m) / 2


def _update_codes(X: np.ndarray, D: np.ndarray, U: np.ndarray, n_iter: int) -> np.ndarray:
    """``n_iter`` multiplicative updates of U ≥ 0 with D fixed (Ding et al. 2010, Eq 6)."""
    DtD = D.T @ D
    DtD_p, DtD_n = _pos(DtD), _neg(DtD)
    XD = X @ D
    XD_p, XD_n = _pos(XD), _neg(XD)
    for _ in range(n_iter):
        U = U * np.sqrt((XD_p + U @ DtD_n) / (XD_n + U @ DtD_p + _EPS))
    return U


def _solve_dictionary(X: np.ndarray, U: np.ndarray) -> np.ndarray:
    """D = Xᵀ U (UᵀU)⁻¹ (Ding et al. 2010, Eq 5), least squares when UᵀU is singular."""
    return np.linalg.lstsq(U.T @ U, U.T @ X, rcond=None)[0].T


@dataclass
class SemiNMF:
    """A fitted semi-NMF: A ≈ U Dᵀ + mean, U ≥ 0.

    Attributes
    ----------
    D
        Dictionary, (d, c), mixed sign (columns not normalised).
    mean
        Centre of the training embeddings, (d,).
    codes
        U of the training cells, (n_train, c), ≥ 0.
    history
        Training R² after each iteration.
    n_iter, seed
        Iterations and seed used (also for :meth:`transform`).
    """

    D: np.ndarray
    mean: np.ndarray
    codes: np.ndarray
    history: list = field(default_factory=list)
    n_iter: int = 100
    seed: int = 0

    @property
    def n_concepts(self) -> int:
        return int(self.D.shape[1])

    def transform(self, A: np.ndarray, n_iter: int | None = None) -> np.ndarray:
        """Codes U ≥ 0 of new cells A (n, d) with D fixed: the U update from a seeded start."""
        X = np.asarray(A, dtype=np.float64) - self.mean
        rng = np.random.default_rng(self.seed + 1)
        U = rng.uniform(0, 1, (X.shape[0], self.n_concepts)) * self.codes.mean()
        return _update_codes(X, self.D, U, int(n_iter or self.n_iter))

    def reconstruct(self, U: np.ndarray) -> np.ndarray:
        """A' = U Dᵀ + mean, (n, d)."""
        return np.asarray(U) @ self.D.T + self.mean


def semi_nmf(A: np.ndarray, c: int, n_iter: int = 100, seed: int = 0) -> SemiNMF:
    """Fit a semi-NMF with ``c`` concepts (Ding, Li & Jordan 2010) to embeddings ``A``.

    Parameters
    ----------
    A
        Embeddings, (n_cells, d), any sign.
    c
        Number of concepts (c < d under-complete, c > d over-complete).
    n_iter
        Alternating updates (D then U); each iteration never increases ‖A − ā − U Dᵀ‖² (Ding et
        al. 2010, Theorem 1).
    seed
        Seed of the uniform initialisation of U.

    Returns
    -------
    SemiNMF

    Raises
    ------
    ValueError
        If ``A`` is not a finite 2-D array or ``c`` < 1.
    """
    X = np.asarray(A, dtype=np.float64)
    if X.ndim != 2 or not np.isfinite(X).all():
        raise ValueError(f"A must be a finite (n_cells, d) array; got shape {X.shape}.")
    if int(c) < 1:
        raise ValueError(f"c must be >= 1, got {c}.")
    mean = X.mean(0)
    X = X - mean
    rng = np.random.default_rng(seed)
    U = rng.uniform(0, 1, (X.shape[0], int(c)))
    hist = []
    for _ in range(int(n_iter)):
        D = _solve_dictionary(X, U)
        U = _update_codes(X, D, U, 1)
        hist.append(r2_score(X, U @ D.T))
    D = _solve_dictionary(X, U)
    return SemiNMF(D=D, mean=mean, codes=U, history=hist, n_iter=int(n_iter), seed=int(seed))


@dataclass
class LinearDecomposition:
    """A scikit-learn PCA or FastICA with the :class:`SemiNMF` interface (codes are dense)."""

    model: object

    @property
    def n_concepts(self) -> int:
        return int(self.model.n_components_ if hasattr(self.model, "n_components_")
                   else self.model.components_.shape[0])

    def transform(self, A: np.ndarray) -> np.ndarray:
        return self.model.transform(np.asarray(A, dtype=np.float64))

    def reconstruct(self, U: np.ndarray) -> np.ndarray:
        return self.model.inverse_transform(U)


def fit_pca(A: np.ndarray, n: int, seed: int = 0) -> LinearDecomposition:
    """scikit-learn ``PCA(n)`` on A (n_cells, d)."""
    from sklearn.decomposition import PCA

    return LinearDecomposition(PCA(n_components=int(n), random_state=seed).fit(
        np.asarray(A, dtype=np.float64)))


def fit_ica(A: np.ndarray, n: int, seed: int = 0, max_iter: int = 400) -> LinearDecomposition:
    """scikit-learn ``FastICA(n)`` (unit-variance whitening) on A (n_cells, d)."""
    import warnings

    from sklearn.decomposition import FastICA
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LinearDecomposition(FastICA(n_components=int(n), whiten="unit-variance",
                                           random_state=seed, max_iter=max_iter).fit(
            np.asarray(A, dtype=np.float64)))


def matched_rank(A_fit: np.ndarray, A_eval: np.ndarray, target_r2: float, seed: int = 0
                 ) -> tuple[int, float]:
    """Capacity-matched PCA: the smallest number of principal components whose reconstruction
    of ``A_eval`` reaches ``target_r2`` (e.g. the SAE's held-out R²).

    Parameters
    ----------
    A_fit
        Cells PCA is fitted on, (n_fit, d) (the SAE's training cells).
    A_eval
        Held-out cells the R² is measured on, (n_eval, d).
    target_r2
        R² to reach (variance-weighted, :func:`scconcepts.sae.r2_score`).

    Returns
    -------
    (rank, r2)
        The rank and its R² on ``A_eval``; (d, R² at d) when even the full rank falls short.
    """
    from sklearn.decomposition import PCA

    A_fit, A_eval = np.asarray(A_fit, np.float64), np.asarray(A_eval, np.float64)
    pca = PCA(random_state=seed).fit(A_fit)
    Z = (A_eval - pca.mean_) @ pca.components_.T
    r2 = float("nan")
    for r in range(1, pca.n_components_ + 1):
        r2 = r2_score(A_eval, Z[:, :r] @ pca.components_[:r] + pca.mean_)
        if r2 >= target_r2:
            return r, float(r2)
    return int(pca.n_components_), float(r2)


class ComponentReadout:
    """Components of a fitted PCA or ICA as units (chapter 05's capacity-matched baselines):
    embeddings (n, d) → centred component scores (n, r) = (A − mean) Wᵀ − median, where W
    (r, d) is scikit-learn's ``components_`` (for FastICA the unmixing matrix including the
    whitening, so that the scores equal ``transform``). Centred on each score's median over the
    dataset, as :class:`scconcepts.attribution.NeuronReadout`: a component "activates" above its
    median, and the centring cancels in Eq 2."""

    def __init__(self, mean: np.ndarray, components: np.ndarray, median: np.ndarray,
                 kind: str = "component"):
        import torch

        self.mean = torch.as_tensor(np.asarray(mean, dtype=np.float32))
        self.W = torch.as_tensor(np.asarray(components, dtype=np.float32))
        self.median = torch.as_tensor(np.asarray(median, dtype=np.float32))
        self.kind = kind

    @classmethod
    def from_decomposition(cls, dec: "LinearDecomposition", embeddings: np.ndarray,
                           kind: str = "component") -> "ComponentReadout":
        model = dec.model
        mean = np.asarray(model.mean_, dtype=np.float64)
        W = np.asarray(model.components_, dtype=np.float64)
        scores = (np.asarray(embeddings, dtype=np.float64) - mean) @ W.T
        return cls(mean, W, np.median(scores, axis=0), kind)

    def __call__(self, emb):
        dev = emb.device
        return (emb - self.mean.to(dev)) @ self.W.to(dev).T - self.median.to(dev)


def keep_top_k(U: np.ndarray, k: int) -> np.ndarray:
    """U (n, c) with all but the ``k`` largest codes of each row set to 0 (the SAE's sparsity)."""
    U = np.asarray(U)
    if k >= U.shape[1]:
        return U.copy()
    out = np.zeros_like(U)
    idx = np.argpartition(-U, k - 1, axis=1)[:, :k]
    rows = np.arange(U.shape[0])[:, None]
    out[rows, idx] = U[rows, idx]
    return out


def decomposition_metrics(A: np.ndarray, codes, A_hat: np.ndarray, zero_tol: float = 1e-3
                          ) -> dict:
    """Table 4/5 columns for one decomposition evaluated on cells A.

    Parameters
    ----------
    A, A_hat
        Embeddings and their reconstruction, (n, d).
    codes
        Codes (n, c), dense or sparse.
    zero_tol
        A code counts as zero when ``|u| <= zero_tol × max_j |u_j|`` of its cell: multiplicative
        updates shrink unused codes towards 0 without reaching it, and Top-K codes are exact
        zeros either way.

    Returns
    -------
    dict
        ``concepts`` (c), ``active`` (concepts non-zero in at least one cell), ``sparsity``
        and ``sparsity_std`` (mean and std over cells of the fraction of zero codes, as
        1 − L0/c in Tables 4/5), ``r2`` (variance-weighted, :func:`scconcepts.sae.r2_score`).
    """
    import scipy.sparse as sp

    U = np.abs(codes.toarray() if sp.issparse(codes) else np.asarray(codes, dtype=np.float64))
    nz = U > zero_tol * U.max(1, keepdims=True)
    frac_zero = 1 - nz.mean(1)
    return {"concepts": int(U.shape[1]), "active": int(nz.any(0).sum()),
            "sparsity": float(frac_zero.mean()), "sparsity_std": float(frac_zero.std()),
            "r2": r2_score(A, A_hat)}


def baseline_table(embeddings: dict, saes: dict, tasks: dict, n_iter: int, fit_cells: int,
                   low_rank_c: int, zero_tol: float = 1e-3, seed: int = 0, *,
                   sae_held_out: dict, n_boot: int | None = None
                   ) -> tuple[pd.DataFrame, dict]:
    """Table 4/5 analogue for one model: neurons, Top-K SAE, semi-NMF (c > d, c < d), PCA, ICA.

    Every decomposition is fitted, for each task, on the task dataset's training cells (at most
    ``fit_cells`` of them, seeded); the SAE is the default-size SAE of that dataset, trained by
    :func:`scconcepts.sae.train_sae` on all its cells but a seeded held-out share
    (``sae_held_out``). The over-complete semi-NMF has the SAE's c concepts, its sparse variant
    keeps the SAE's k codes per cell. Reconstruction and sparsity columns come from the cell-type
    task's dataset (the main one), as in the paper:

    * **R² (held-out cells)** is measured, for every method, on the same cells: the cell-type
      task's test cells that the SAE also held out, i.e. cells none of the methods was fitted
      or trained on. Their number is ``details[method]["metrics"]["n_r2_cells"]`` (about the
      SAE's ``val_fraction`` × the task's test cells) and their indices
      ``details[method]["r2_cells"]``;
    * **active concepts** and **sparsity** are measured on all the task's test cells (the
      number of concepts active in at least one cell grows with the number of cells, so fewer
      cells would understate it).

    Accuracies use the logistic regressions of :func:`scconcepts.downstream.fit_task` on the
    task's training and test cells (the SAE codes of the training cells, and of test cells the
    SAE was trained on without labels, are used as they are).

    Parameters
    ----------
    embeddings
        Role → the model's embeddings (n_cells, d) of every task's ``role``.
    saes
        Role → the model's default-size :class:`~scconcepts.sae.TopKSAE` trained on that role.
    tasks
        :func:`scconcepts.downstream.usefulness_tasks` output (task → dict with ``role``,
        ``labels``, ``train``, ``test``, ``max_iter``).
    n_iter
        Semi-NMF iterations (fit and transform).
    fit_cells
        Cells used to fit each decomposition (the paper fits on 90 %, or 50 % for its largest).
    low_rank_c
        c of the under-complete semi-NMF, PCA and ICA (paper: 20 for scVI d = 50, 200 for
        scGPT d = 512).
    seed
        Seed of the fitting-cell draw, of every decomposition and of the bootstrap.
    sae_held_out
        Role → indices of the cells the role's SAE held out from training
        (``scconcepts.sae.cell_split(meta["history"], n_cells)[1]``); needed for the cell-type
        task's role.
    n_boot
        Bootstrap replicates of the R² (default :data:`scconcepts.claims.stats.N_BOOT`).

    Returns
    -------
    (table, details)
        ``table``: rows = Tables 4/5 rows, columns = methods; ``details``: method → per-task
        :class:`scconcepts.downstream.TaskResult` and ``metrics`` (:func:`decomposition_metrics`
        with ``r2`` on the R² cells and ``n_r2_cells``; None for the neurons); for the methods
        with an R², also ``r2_cells`` (the cell indices) and ``r2_replicates`` ((n_boot,) R²
        replicates, all methods weighted by one :func:`scconcepts.claims.stats.bootstrap_weights`
        matrix seeded by ``seed``: a paired bootstrap, so differences of two methods' replicates
        give the interval of their R² difference; NaN when fewer than 2 cells).

    Raises
    ------
    KeyError
        If a task's role has no embeddings or SAE, or the cell-type role has no SAE held-out
        cells.
    ValueError
        If an R² cell is among the task's training cells.
    """
    from . import sae as sae_mod
    from .claims import stats
    from .downstream import fit_task

    seed = int(seed)
    n_boot = stats.N_BOOT if n_boot is None else int(n_boot)
    roles = [t["role"] for t in tasks.values()]
    missing = [r for r in roles if r not in embeddings or r not in saes]
    if missing:
        raise KeyError(f"No embeddings or SAE for task role(s) {missing}; pass both per role.")
    if "cell type" in tasks and tasks["cell type"]["role"] not in sae_held_out:
        raise KeyError(f"No SAE held-out cells for role {tasks['cell type']['role']!r}; pass "
                       "sae_held_out[role] = scconcepts.sae.cell_split(history, n)[1].")
    c_over, k = int(saes[roles[0]].c), int(saes[roles[0]].k)
    topk_name = f"semi-NMF (c > d), top {k} codes"
    methods = ["neurons", "Top-K SAE", "semi-NMF (c > d)", topk_name, "semi-NMF (c < d)", "PCA",
               "ICA"]
    acc = {m: {} for m in methods}
    metrics: dict[str, dict] = {}
    details: dict[str, dict] = {m: {} for m in methods}
    r2_cells, r2_rec = None, {}  # cells of the R² and each method's reconstruction of them
    for task, t in tasks.items():
        A, sae = embeddings[t["role"]], saes[t["role"]]
        train, test = t["train"], t["test"]
        rng = np.random.default_rng(seed)
        fit_idx = train if len(train) <= fit_cells else np.sort(rng.choice(train, fit_cells,
                                                                            replace=False))
        if task == "cell type":
            r2_cells = np.intersect1d(test, np.asarray(sae_held_out[t["role"]], dtype=np.int64))
            if np.intersect1d(r2_cells, train).size:
                raise ValueError("Cells of the R² are among the task's training cells.")
        decomps = {
            "semi-NMF (c > d)": semi_nmf(A[fit_idx], c_over, n_iter, seed),
            "semi-NMF (c < d)": semi_nmf(A[fit_idx], low_rank_c, n_iter, seed),
            "PCA": fit_pca(A[fit_idx], low_rank_c, seed),
            "ICA": fit_ica(A[fit_idx], low_rank_c, seed),
        }
        feats = {"neurons": A, "Top-K SAE": sae_mod.encode(sae, A)}
        idx = np.concatenate([train, test])
        for name, dec in decomps.items():
            U = np.zeros((A.shape[0], dec.n_concepts))
            U[idx] = dec.transform(A[idx])
            feats[name] = U
            if name == "semi-NMF (c > d)":  # comparable sparsity: keep the SAE's k codes per cell
                feats[topk_name] = keep_top_k(U, k)
                decomps_eval = {name: U, topk_name: feats[topk_name]}
            else:
                decomps_eval = {name: U}
            if task == "cell type":
                for nm, V in decomps_eval.items():
                    metrics[nm] = decomposition_metrics(A[test], V[test],
                                                        dec.reconstruct(V[test]), zero_tol)
                    r2_rec[nm] = dec.reconstruct(V[r2_cells])
        if task == "cell type":
            codes = feats["Top-K SAE"][test]
            metrics["Top-K SAE"] = decomposition_metrics(
                A[test], codes, sae_mod.reconstruct(sae, A[test]), zero_tol)
            r2_rec["Top-K SAE"] = sae_mod.reconstruct(sae, A[r2_cells])
        for name, X in feats.items():
            res = fit_task(X, t["labels"], train, test, t["max_iter"], seed)
            acc[name][task] = res.accuracy
            details[name][task] = res
    if r2_rec:  # R² of every method on the same cells, one bootstrap weight matrix for all
        A_r2 = embeddings[tasks["cell type"]["role"]][r2_cells]
        n_r2 = int(r2_cells.size)
        W = stats.bootstrap_weights(n_r2, n_boot, seed) if n_r2 >= 2 else None
        for nm, rec in r2_rec.items():
            metrics[nm]["r2"] = r2_score(A_r2, rec) if n_r2 >= 2 else float("nan")
            metrics[nm]["n_r2_cells"] = n_r2
            details[nm]["r2_cells"] = r2_cells
            details[nm]["r2_replicates"] = (stats.r2_replicates(A_r2, rec, W) if W is not None
                                            else np.full(n_boot, np.nan))
    d = embeddings[roles[0]].shape[1]
    rows = {}
    for m in methods:
        mt = metrics.get(m)
        rows[m] = {
            "number of concepts c": d if m == "neurons" else mt["concepts"],
            "active concepts": "—" if mt is None else mt["active"],
            "sparsity": "—" if mt is None else f"{mt['sparsity']:.3f} ({mt['sparsity_std']:.3f})",
            "R² (held-out cells)": "—" if mt is None else round(mt["r2"], 3),
            **{f"{task} accuracy": round(acc[m][task], 3) for task in tasks},
        }
    for m in methods:
        details[m]["metrics"] = metrics.get(m)
    return pd.DataFrame(rows), details
