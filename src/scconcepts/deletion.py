"""Deletion curves of concepts (App C, Fig 8): the activation while a concept's top genes are
replaced, cumulatively, by a counterfactual's values or by 0, in attribution or in DGEA order;
on the attribution's own (prototype, counterfactual) pairs and on held-out ones. Used by
:func:`scconcepts.dgea.compare_with_dgea`, which re-exports these functions."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from .attribution import AttributionResult, UnitFunction

__all__ = ["deletion_curve", "held_out_pairs", "deletion_curves", "curve_summary"]


def _dense(x) -> np.ndarray:
    return np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float32)


def deletion_curve(unit_fn: UnitFunction, unit: int, x_p: np.ndarray, x_c: np.ndarray | None,
                   order: Sequence[int], n_steps: int, batch_size: int = 2048) -> np.ndarray:
    """Concept activation while the top genes of ``order`` are removed cumulatively (Fig 8).

    Step s replaces genes ``order[:s]`` of each prototype by the counterfactual's values
    (``x_c``; Eq 2 for s genes at once) or, with ``x_c=None``, sets them to 0 (zero-masking).
    When ``order`` has fewer than ``n_steps`` genes the curve stays flat after its end.

    ``unit_fn``: (ψ∘f) on the model's input (counts for scVI; scGPT re-bins internally);
    ``x_p``, ``x_c``: prototype and counterfactual inputs (n_pairs, m); ``order``: gene column
    indices, most important first; ``n_steps``: S, genes removed at the last step. Returns the
    activation at steps 0 … S, shape (n_pairs, S + 1) (column 0: the unperturbed prototype).
    """
    xp = np.atleast_2d(np.asarray(x_p, dtype=np.float32))
    target = np.zeros_like(xp) if x_c is None else np.atleast_2d(np.asarray(x_c, np.float32))
    if target.shape != xp.shape:
        raise ValueError(f"x_p {xp.shape} and x_c {target.shape} must have the same shape.")
    order = np.asarray(order, dtype=int)[:n_steps]
    n_pairs, m = xp.shape
    # all (pair, step) copies at once: copy (i, s) has genes order[:s] taken from the target
    copies = np.repeat(xp[:, None, :], n_steps + 1, axis=1)   # (n_pairs, S+1, m)
    for s, g in enumerate(order, start=1):
        copies[:, s:, g] = target[:, None, g]
    flat = torch.from_numpy(copies.reshape(-1, m))
    out = [unit_fn(flat[i:i + batch_size], unit).float().cpu().numpy()
           for i in range(0, flat.shape[0], batch_size)]
    return np.concatenate(out).reshape(n_pairs, n_steps + 1)


def held_out_pairs(embeddings: np.ndarray, activation: np.ndarray, n_prototypes: int,
                   n_counterfactuals: int) -> list[tuple[int, int]]:
    """(prototype, counterfactual) pairs the attribution never saw: the prototypes ranked
    N_p + 1 … 2 N_p by activation, each with its N_c nearest non-activating cells (Eq 1)."""
    from .attribution import find_counterfactuals, select_prototypes

    protos = select_prototypes(activation, 2 * n_prototypes)[n_prototypes:]
    if protos.size == 0 or (np.asarray(activation) <= 0).sum() < n_counterfactuals:
        return []
    cfs = find_counterfactuals(embeddings, activation, protos, n_counterfactuals)
    return [(int(p), int(c)) for p, cs in zip(protos, cfs) for c in cs]


def deletion_curves(unit_fn: UnitFunction, expression, attribution: AttributionResult,
                    dgea_orders: dict[int, Sequence[str]], n_steps: int,
                    max_pairs: int | None = None, batch_size: int = 2048,
                    random_seed: int | None = None, embeddings: np.ndarray | None = None,
                    codes=None) -> pd.DataFrame:
    """Deletion curves of several concepts, relative to the prototypes' activation.

    For each concept of ``dgea_orders`` (which must be in ``attribution.units``), the pairs are
    the attribution's (prototype, counterfactual) pairs (N_p × N_c, the first ``max_pairs``).
    Curves: ``attribution`` (C_i order, counterfactual value), ``DGEA`` (|log2FC| order,
    counterfactual value), ``attribution, zero-masked`` and ``DGEA, zero-masked`` (gene set to
    0), and with ``random_seed`` a ``random`` order (counterfactual value) as a null. With
    ``embeddings`` (n_cells, d) and ``codes`` (n_cells, c) also ``attribution, held-out pairs``
    and ``DGEA, held-out pairs``: the same orders on pairs the attribution order was not
    estimated from (:func:`held_out_pairs`), so that the attribution curve is not scored on its
    own training pairs.

    Returns
    -------
    DataFrame
        Long format: ``unit``, ``curve``, ``step`` (0 … S), ``activation`` (mean over pairs of
        a(s)/a(0), so 1 at step 0; the activation is the SAE code, a ReLU, ≥ 0).
    """
    genes = pd.Index(attribution.genes)
    rows = []
    for unit, dorder in dgea_orders.items():
        r = int(np.flatnonzero(attribution.units == unit)[0])
        protos, cfs = attribution.prototypes[r], attribution.counterfactuals[r]
        pairs = [(p, c) for i, p in enumerate(protos) if p >= 0 for c in cfs[i] if c >= 0]
        pairs = pairs[:max_pairs] if max_pairs else pairs
        if not pairs:
            continue
        xp = _dense(expression[[p for p, _ in pairs]])
        xc = _dense(expression[[c for _, c in pairs]])
        att_order = np.argsort(-np.nan_to_num(attribution.scores[r], nan=-np.inf), kind="stable")
        d_order = genes.get_indexer(list(dorder))
        orders = {"attribution": (att_order, xc), "DGEA": (d_order, xc),
                  "attribution, zero-masked": (att_order, None),
                  "DGEA, zero-masked": (d_order, None)}
        if random_seed is not None:
            orders["random"] = (np.random.default_rng([random_seed, int(unit)]).permutation(
                len(genes)), xc)
        curves = {name: (order, xp, target) for name, (order, target) in orders.items()}
        if embeddings is not None and codes is not None:
            col = codes[:, int(unit)]
            act0 = np.asarray(col.toarray() if sp.issparse(col) else col, dtype=float).ravel()
            held = held_out_pairs(embeddings, act0, protos.shape[0], cfs.shape[1])
            held = held[:max_pairs] if max_pairs else held
            if held:
                hp = _dense(expression[[p for p, _ in held]])
                hc = _dense(expression[[c for _, c in held]])
                curves["attribution, held-out pairs"] = (att_order, hp, hc)
                curves["DGEA, held-out pairs"] = (d_order, hp, hc)
        for name, (order, xp_, target) in curves.items():
            act = deletion_curve(unit_fn, int(unit), xp_, target, order, n_steps, batch_size)
            base = act[:, :1]
            with np.errstate(invalid="ignore", divide="ignore"):
                rel = np.where(base > 0, act / base, np.nan)
            for s, v in enumerate(np.nanmean(rel, 0)):
                rows.append({"unit": int(unit), "curve": name, "step": s, "activation": float(v)})
    return pd.DataFrame(rows, columns=["unit", "curve", "step", "activation"])


def curve_summary(curves: pd.DataFrame, steps: Sequence[int] = (1, 5, 10)) -> pd.DataFrame:
    """Mean ± std over concepts of the relative activation at some steps, one row per curve."""
    steps = [s for s in steps if s <= curves["step"].max()]
    g = curves[curves["step"].isin(steps)].groupby(["curve", "step"])["activation"]
    tab = g.mean().unstack().round(3).astype(str) + " ± " + g.std(ddof=0).unstack().round(3).astype(str)
    tab.columns = [f"after {s} gene{'s' if s > 1 else ''}" for s in tab.columns]
    auc = curves.groupby(["curve", "unit"])["activation"].mean().groupby("curve").mean()
    tab["area under curve (mean over steps)"] = auc.round(3)
    return tab
