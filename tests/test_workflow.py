"""Invalidation along the whole chain (issue 11): a changed dataset file, subsample, seed, model
weights or SAE parameter gives every downstream artefact of every model a new key — and
nothing else — so a re-run never reads a stale result."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from scconcepts.config import load_config, repo_root
from scconcepts.workflow import Workflow

# integration: trains small scVI models and SAEs through the whole workflow (make test only)
pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning",
                                         "ignore::FutureWarning")]

SMALL = {"data.main.subsample": 300, "data.second.subsample": 200, "sae.epochs": 2,
         "models.scvi.max_epochs": 1, "models.pca.c": 100, "models.pca.k": 2,
         "models.pca.n_comps": 10, "models.scvi.grid": [[100, 4]], "models.scvi.c": 100,
         "models.scvi.k": 4, "models.scgpt.grid": [[64, 2]], "models.scgpt.c": 64,
         "models.scgpt.k": 2}


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    return tmp_path_factory.mktemp("artifacts")


def _wf(art, **over):
    return Workflow(load_config("smoke", {**SMALL, "artifacts_dir": str(art), **over}))


def _keys(wf) -> dict[str, str]:
    out = {f"dataset:{r}": wf.dataset_key(r) for r in ("main", "second")}
    for m in wf.models:
        out[f"model:{m}"] = wf.model(m).fingerprint()
        for r in ("main", "second"):
            out[f"embedding:{m}:{r}"] = wf.embedding_key(r, m)
        out[f"sae:{m}"] = wf.sae_key(m)
        out[f"umap:{m}"] = wf.store.key("umap", {"n_neighbors": 15, "seed": wf.cfg.seed},
                                        [wf.embedding_key("main", m)])
    return out


def _changed(a: dict, b: dict) -> set[str]:
    return {k for k in a if a[k] != b[k]}


@pytest.fixture(scope="module")
def base(art):
    wf = _wf(art)
    for m in wf.models:
        wf.sae(m)
    return _keys(wf)


def test_subsample_of_main_changes_what_depends_on_main(art, base):
    wf = _wf(art, **{"data.main.subsample": 250})
    got = _changed(base, _keys(wf))
    downstream_of_main = {"dataset:main", "model:scvi", "model:pca",       # fitted on main
                          *{f"embedding:{m}:main" for m in wf.models},
                          "embedding:scvi:second", "embedding:pca:second",
                          # the smoke scGPT reads the main dataset's HVGs on every dataset
                          "embedding:scgpt:second",
                          *{f"sae:{m}" for m in wf.models}, *{f"umap:{m}" for m in wf.models}}
    assert got == downstream_of_main          # scGPT's weights stay
    for m in wf.models:                       # every model's SAE is trained on the new cells
        assert wf.embeddings("main", m).shape[0] == wf.dataset("main").n_obs < 300


def test_another_main_dataset_retrains_every_models_sae(art, base, tmp_path):
    """The bug of issue 11: a new main_dataset reused the old scGPT SAEs."""
    import anndata as ad

    from scconcepts.data import data_dir, BUNDLED_DATASETS

    src = ad.read_h5ad(data_dir() / BUNDLED_DATASETS["kang2018_pbmc_ctrl"])
    other = tmp_path / "other_pbmc.h5ad"
    src[src.obs_names[::2]].copy().write_h5ad(other)
    wf = _wf(art, **{"data.main.dataset": str(other)})
    keys = _keys(wf)
    got = _changed(base, keys)
    assert {f"sae:{m}" for m in wf.models} <= got and "dataset:second" not in got
    assert "model:scgpt" not in got          # (the second embedding follows the main HVGs)
    for m in wf.models:
        sae, meta = wf.sae(m)
        assert wf.store.exists(keys[f"sae:{m}"], ".pt")
        assert wf.embeddings("main", m).shape[0] == wf.dataset("main").n_obs
    assert set(wf.dataset("main").obs_names) <= set(src.obs_names[::2])


def test_seed_changes_everything_seeded(art, base):
    got = _changed(base, _keys(_wf(art, seed=1)))
    # subsamples, fitted models, embeddings, SAEs, UMAPs; a checkpoint's weights do not move
    assert got == set(base) - {"model:scgpt"}


def test_sae_parameter_changes_only_saes(art, base):
    assert _changed(base, _keys(_wf(art, **{"sae.epochs": 3}))) == {
        "sae:scvi", "sae:scgpt", "sae:pca"}
    assert _changed(base, _keys(_wf(art, **{"models.scgpt.grid": [[64, 2], [32, 2]]}))) == set()


def test_model_weights_change_only_that_models_artefacts(art, base, tmp_path):
    ckpt = tmp_path / "scgpt_copy"
    shutil.copytree(repo_root() / "models" / "scgpt_pbmc_small", ckpt)
    same = _keys(_wf(art, **{"models.scgpt.checkpoint": str(ckpt)}))
    assert _changed(base, same) == set()      # keyed by the bytes, not the folder name
    import torch

    state = torch.load(ckpt / "best_model.pt", map_location="cpu", weights_only=False)
    name = next(k for k, v in state.items() if getattr(v, "dtype", None) == torch.float32)
    state[name] = state[name] + 0.01          # "retrained"
    torch.save(state, ckpt / "best_model.pt")
    got = _changed(base, _keys(_wf(art, **{"models.scgpt.checkpoint": str(ckpt)})))
    assert got == {"model:scgpt", "embedding:scgpt:main", "embedding:scgpt:second", "sae:scgpt",
                   "umap:scgpt"}


def test_pca_adapter_is_an_exact_linear_model(art):
    """f of the PCA adapter reproduces its embeddings from raw counts (exact attribution)."""
    import torch

    wf = _wf(art)
    m = wf.model("pca")
    X, genes = m.inputs(wf.dataset("second"), "second")
    z = m.encoder(genes)(torch.from_numpy(X[:20].toarray())).numpy()
    np.testing.assert_allclose(z, wf.embeddings("second", "pca")[:20], atol=1e-4)
    att = wf.attribution("pca", "concept", units=wf.default_units("pca", "concept")[:3])
    assert att.scores.shape == (3, len(genes)) and np.isfinite(att.scores).any()


def test_counts_layer_and_scgpt_hvgs(art, base, tmp_path):
    """Per-role ``counts_layer`` (scverse data keeps counts in layers["counts"]) and the paper's
    1,200-HVG input of scGPT (``n_hvgs``; here 200) are honoured and keyed."""
    import anndata as ad
    import scipy.sparse as sp

    from scconcepts.data import BUNDLED_DATASETS, data_dir

    src = ad.read_h5ad(data_dir() / BUNDLED_DATASETS["kang2018_pbmc_ctrl"])
    counts = sp.csr_matrix(src.X)
    src.layers["counts"] = counts.copy()
    src.X = sp.csr_matrix(np.log1p(counts.toarray()).astype(np.float32))
    path = tmp_path / "scverse_style.h5ad"
    src.write_h5ad(path)
    over = {"data.main.dataset": str(path), "data.main.counts_layer": "counts"}
    wf = _wf(art, **over)
    d = wf.dataset("main")
    idx = src.obs_names.get_indexer(d.obs_names)
    np.testing.assert_array_equal(d.X.toarray(), counts[idx].toarray())
    with pytest.raises(Exception, match="integer|count"):          # X alone is not counts
        _wf(art, **{"data.main.dataset": str(path)}).dataset("main")
    hv = _wf(art, **{"models.scgpt.n_hvgs": 200})
    X, genes = hv.model("scgpt").inputs(hv.dataset("main"), "main")
    assert len(genes) == 200 and X.shape == (hv.dataset("main").n_obs, 200)
    assert hv.embedding_key("main", "scgpt") != base["embedding:scgpt:main"]


def test_scgpt_reads_every_dataset_on_the_main_panel(art, base):
    """Issue 13, cross-dataset confound: the second dataset (default ``shared_panel_roles``) is
    tokenised on the main dataset's genes it has; without it, on its own vocabulary genes.
    The main embedding's key is the same either way; the second's follows the panel."""
    wf = _wf(art)
    m = wf.model("scgpt")
    main_genes = m.genes(wf.dataset("main"), "main")
    second = wf.dataset("second")
    X, genes = m.inputs(second, "second")
    assert genes == [g for g in main_genes if g in set(second.var_names)]
    assert X.shape == (second.n_obs, len(genes))
    own = _wf(art, **{"models.scgpt.shared_panel_roles": []})
    own_genes = own.model("scgpt").genes(own.dataset("second"), "second")
    assert set(own_genes) - set(main_genes)                 # PBMC 4k has genes Kang lacks
    assert own.embedding_key("main", "scgpt") == base["embedding:scgpt:main"]
    assert own.embedding_key("second", "scgpt") != base["embedding:scgpt:second"]
    hv = _wf(art, **{"models.scgpt.n_hvgs": 150})
    assert hv.model("scgpt").genes(hv.dataset("second"), "second") == \
        [g for g in hv.model("scgpt").genes(hv.dataset("main"), "main")
         if g in set(hv.dataset("second").var_names)]
    assert hv.embedding_key("second", "scgpt") != base["embedding:scgpt:second"]


def test_units_of_the_concepts_vs_neurons_comparison(art):
    """Chapter 05's Fig 3A.b units (issue 13, item 2): a concept sample drawn among concepts
    with at least concepts.min_cells cells, every neuron with attribution_neurons: all, the
    comparison on every attributed unit with enough cells, and the interpretation sample's
    GSEA read from the comparison run (same rows, no second computation)."""
    wf = _wf(art, **{"models.pca.attribution_units": 4, "models.pca.attribution_neurons": "all",
                     "concepts.min_cells": 5, "gsea.n_units": 2, "gsea.permutations": 20,
                     "gsea.strong_permutations": 40})
    counts = wf.codes("pca").getnnz(axis=0)
    concepts = wf.default_units("pca", "concept")
    assert len(concepts) == 4 and (counts[concepts] >= 5).all()
    assert list(wf.default_units("pca", "neuron")) == list(range(wf.embeddings("main",
                                                                                "pca").shape[1]))
    comp = wf.comparison_units("pca", "concept")
    assert set(comp) <= set(concepts) and (counts[comp] >= 5).all()
    whole = wf.gsea_comparison("pca", "concept")
    sample = wf.gsea("pca", "concept")
    assert set(sample["unit"]) <= set(whole["unit"]) and len(sample) == min(2, len(comp))
    pd.testing.assert_frame_equal(
        sample.reset_index(drop=True),
        whole[whole["unit"].isin(sample["unit"])].reset_index(drop=True))
    small = wf.gsea("pca", "concept", units=sample["unit"].to_numpy(), min_size=5)
    assert wf.testable_gene_sets("pca", 5) >= wf.testable_gene_sets("pca")
    assert set(small["unit"]) == set(sample["unit"])
    null = wf.gsea_comparison("pca", "neuron", shuffle=True)
    assert null["shuffled"].all() and len(null) == len(wf.comparison_units("pca", "neuron"))


def test_counterfactual_pools_move_the_counterfactuals(art):
    """Chapter 05's pool sensitivity: centring neurons at a high quantile makes their pool most
    cells, so counterfactuals come closer (distance ratio falls); the pool has its own key."""
    wf = _wf(art, **{"models.pca.attribution_units": 3, "concepts.min_cells": 5})
    units = wf.comparison_units("pca", "neuron")[:3]
    base = wf.attribution("pca", "neuron", units=units)
    high = wf.attribution("pca", "neuron", units=units, pool=0.95)
    assert wf.attribution_key("pca", "neuron", "main", None, units) != wf.attribution_key(
        "pca", "neuron", "main", None, units, pool=0.95)
    np.testing.assert_array_equal(base.prototypes, high.prototypes)   # same top cells
    d0 = wf.pair_diagnostics("pca", "neuron").loc[units, "distance ratio"]
    d1 = wf.pair_diagnostics("pca", "neuron", pool=0.95).loc[units, "distance ratio"]
    assert (d1 <= d0 + 1e-9).all() and (d1 < d0).any()
    med = wf.attribution("pca", "concept", units=wf.comparison_units("pca", "concept")[:2],
                         pool=0.5)
    assert np.isfinite(med.scores).any()
    with pytest.raises(ValueError, match="quantile"):
        wf.attribution("pca", "neuron", units=units, pool=1.5)


def test_planted_programme_is_recovered_and_cached(art):
    """Chapter 04's ground truth (issue 13, item 11) on the linear PCA model: the unit that best
    marks the planted cells is found, its attribution ranks planted genes above chance, the
    result is cached (a second call loads it) and keyed by the programme's settings."""
    over = {"planted.models": ["pca"], "planted.n_genes": 15, "planted.cell_fraction": 0.1,
            "planted.factor": 30.0, "planted.top_k": [5]}
    wf = _wf(art, **over)
    res = wf.planted("pca")
    s = res["scores"].set_index(["unit kind", "baseline"])
    assert len(res["genes"]) == 15 and res["cells"] == 30
    assert s["auroc"].max() > 0.8
    assert s["precision@5"].max() > s["random"].iloc[0]
    again = wf.planted("pca")
    pd.testing.assert_frame_equal(again["scores"], res["scores"])
    other = _wf(art, **{**over, "planted.factor": 6.0}).planted("pca")
    assert not other["scores"]["auroc"].equals(res["scores"]["auroc"])  # a new key, recomputed


def test_decoder_bias_keys(art):
    """The ablation SAE has its own key; the default SAE's key is the one of earlier runs (the
    default decoder_bias is not part of it)."""
    wf = _wf(art)
    assert wf.sae_key("pca") == wf.sae_key("pca", decoder_bias=True)
    assert wf.sae_key("pca", decoder_bias=False) != wf.sae_key("pca")
    params = dict(wf.sae_config("pca").__dict__)
    del params["decoder_bias"]
    assert wf.sae_key("pca") == wf.store.key("sae", params, [wf.embedding_key("main", "pca")])


def test_capacity_matched_components_are_attributed(art):
    """Chapter 05's component baselines: PCA / ICA at the capacity-matched rank, attributed as
    units with their own key, and sent to GSEA like neurons."""
    wf = _wf(art, **{"concepts.min_cells": 5, "gsea.n_units": 2, "gsea.permutations": 20,
                     "gsea.strong_permutations": 40})
    dec = wf.decomposition("pca", "pca")
    units = wf.default_units("pca", "pca")
    assert list(units) == list(range(dec.n_concepts)) and dec.n_concepts >= 1
    att = wf.attribution("pca", "pca")
    assert att.kind == "pca" and att.scores.shape[0] == len(units)
    assert np.isfinite(att.scores).any()
    assert wf.attribution_key("pca", "pca", "main", None, units) != wf.attribution_key(
        "pca", "ica", "main", None, units)
    g = wf.gsea_comparison("pca", "ica")
    assert len(g) == len(wf.comparison_units("pca", "ica"))
    with pytest.raises(ValueError, match="method"):
        wf.decomposition("pca", "nmf")

