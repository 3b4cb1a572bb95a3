"""Counterfactual-pair diagnostics and the annotation model (:mod:`scconcepts.pools`) on
constructed cases with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scconcepts import pools


def _two_populations():
    """Two tight populations 10 apart on a line, 20 cells each; the same library sizes."""
    A = np.concatenate([np.arange(20)[:, None] * 0.1, 10 + np.arange(20)[:, None] * 0.1])
    A = np.hstack([A, np.zeros_like(A)])
    ct = np.array(["T"] * 20 + ["B"] * 20)
    lib = np.full(40, 1000.0)
    lib[25] = 4000.0
    return A, lib, ct


def test_pair_diagnostics_near_and_far_counterfactuals():
    A, lib, ct = _two_populations()
    P = np.array([[5, 6], [5, 6]])
    C = np.array([[[4], [7]],          # unit 0: neighbours in the same population
                  [[25], [26]]])       # unit 1: cells of the other population
    d = pools.pair_diagnostics(A, lib, ct, P, C, units=[3, 8])
    assert list(d.index) == [3, 8] and (d["pairs"] == 2).all()
    assert d.loc[3, "distance ratio"] == pytest.approx(1.0)       # as close as the nearest
    assert d.loc[3, "other cell type"] == 0 and d.loc[8, "other cell type"] == 1
    assert d.loc[8, "distance ratio"] == pytest.approx(100.0)     # 10 apart, neighbours 0.1
    assert d.loc[8, "abs log library ratio"] == pytest.approx(np.log(4) / 2)
    assert d.loc[3, "abs log library ratio"] == 0


def test_pair_diagnostics_skips_missing_and_checks_shapes():
    A, lib, ct = _two_populations()
    d = pools.pair_diagnostics(A, lib, ct, np.array([[-1, -1]]), np.full((1, 2, 1), -1), [0])
    assert d.loc[0, "pairs"] == 0 and np.isnan(d.loc[0, "distance ratio"])
    with pytest.raises(ValueError, match="same cells"):
        pools.pair_diagnostics(A, lib[:5], ct, np.array([[1]]), np.array([[[2]]]), [0])
    with pytest.raises(ValueError, match="do not match"):
        pools.pair_diagnostics(A, lib, ct, np.array([[1]]), np.array([[[2]]]), [0, 1])


def test_pool_quantile_matches_the_median_firing_rate():
    codes = sp.csr_matrix(np.array([[1, 0, 0, 0]] * 2 + [[1, 1, 0, 0]] * 2 + [[0, 0, 1, 0]] * 6,
                                   dtype=float))
    # firing rates 4/10, 2/10, 6/10 (the fourth never fires): median 0.4
    assert pools.pool_quantile(codes) == pytest.approx(0.6)
    assert pools.pool_quantile(codes.toarray()) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="No concept fires"):
        pools.pool_quantile(sp.csr_matrix((5, 3)))


def test_annotation_model_kind_vanishes_when_the_pairs_explain_it():
    """Annotation driven by the counterfactual (other cell type), not by the kind: the kind's
    coefficient is large alone and shrinks towards 0 once the pair covariate enters."""
    rng = np.random.default_rng(0)
    n = 400
    kind = np.where(np.arange(n) < n // 2, "concept", "neuron")
    other = np.where(kind == "neuron", rng.uniform(0.5, 1, n), rng.uniform(0, 0.5, n))
    annotated = rng.uniform(size=n) < 1 / (1 + np.exp(-8 * (other - 0.5)))
    t = pd.DataFrame({"annotated": annotated, "kind": kind, "other cell type": other,
                      "log distance ratio": rng.normal(size=n),
                      "abs log library ratio": rng.normal(size=n)})
    res = pools.annotation_model(t).set_index(["model", "term"])
    alone, adjusted = res.loc[("kind only", "concept")], res.loc[("kind + pairs", "concept")]
    assert alone["high"] < 0                          # neurons annotated more, alone
    assert adjusted["low"] < 0 < adjusted["high"]     # not once the pairs enter
    assert res.loc[("kind + pairs", "other cell type"), "low"] > 0
    assert (res["n"] == n).all()


def test_annotation_model_errors():
    with pytest.raises(ValueError, match="missing column"):
        pools.annotation_model(pd.DataFrame({"annotated": [True], "kind": ["concept"]}))
    t = pd.DataFrame({"annotated": [True] * 5, "kind": ["concept"] * 5,
                      **{c: [0.0] * 5 for c in pools.DIAGNOSTICS}})
    few = pools.annotation_model(t)
    assert few["coef"].isna().all() and (few["n"] == 5).all()
