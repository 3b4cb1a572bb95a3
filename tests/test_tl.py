"""scverse-style tools (:mod:`scconcepts.tl`, :mod:`scconcepts.pl`) on a real AnnData."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import scconcepts as scc

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning",
                                        "ignore::FutureWarning")


@pytest.fixture(scope="module")
def adata(scvi_ref):
    a = scvi_ref.adata.copy()
    a.layers["counts"] = a.X.copy()
    a.X = sp.csr_matrix(np.log1p(a.X.toarray()))      # X is not counts, as in scverse data
    a.obsm["X_scvi"] = scvi_ref.z
    scc.tl.sae(a, use_rep="X_scvi", c=40, k=4, epochs=15, lr=1e-3, batch_size=64, seed=0)
    return a


def test_sae_stores_sparse_codes_and_a_reloadable_model(adata):
    codes = adata.obsm["X_concepts"]
    assert sp.issparse(codes) and codes.shape == (adata.n_obs, 40)
    assert (codes.getnnz(axis=1) <= 4).all() and codes.min() >= 0
    st = adata.uns["concepts"]
    assert st["params"]["use_rep"] == "X_scvi" and 0 < st["metrics"]["r2"] <= 1
    from scconcepts.sae import encode

    again = encode(scc.tl.get_sae(adata), adata.obsm["X_scvi"])
    np.testing.assert_allclose(again.toarray(), codes.toarray(), atol=1e-5)


def test_concept_metadata_and_errors(adata):
    table = scc.tl.concept_metadata(adata, keys=["cell_type"], min_cells=10)
    assert len(table) == 40 and "category" in table
    assert adata.uns["concepts"]["categories"] is table
    with pytest.raises(KeyError, match="X_pca"):
        scc.tl.sae(adata, use_rep="X_pca")
    with pytest.raises(KeyError, match="tl.sae"):
        scc.tl.concept_metadata(adata, key="other")


def test_attribute_reads_the_counts_layer_and_matches_the_workflow_method(adata, scvi_ref):
    from scconcepts.attribution import SAEReadout, UnitFunction, attribute_units
    from scconcepts.models.scvi import encoder_fn

    active = np.flatnonzero(adata.obsm["X_concepts"].getnnz(axis=0) >= 5)[:2]
    res = scc.tl.attribute(adata, model=scvi_ref.model, units=active, n_prototypes=3,
                           n_counterfactuals=1)
    want = attribute_units(UnitFunction(encoder_fn(scvi_ref.model),
                                        SAEReadout(scc.tl.get_sae(adata))),
                           adata.layers["counts"], adata.obsm["X_scvi"],
                           adata.obsm["X_concepts"], active, list(adata.var_names),
                           n_prototypes=3, n_counterfactuals=1, progress=False)
    np.testing.assert_allclose(res.scores, want.scores, atol=1e-6, equal_nan=True)
    assert list(adata.uns["concepts"]["attribution"].index) == [str(u) for u in active]
    ax = scc.pl.top_genes(adata, int(active[0]), n=5)
    assert len(ax.patches) == 5
    with pytest.raises(KeyError, match="layers"):
        scc.tl.attribute(adata, model=scvi_ref.model, layer="raw")
    with pytest.raises(TypeError, match="scvi-tools model"):
        scc.tl.attribute(adata, model=42, units=active)


@pytest.mark.slow  # real GSEA permutations
def test_enrich_labels_attributed_concepts(adata):
    out = scc.tl.enrich(adata, gene_sets="GO_Biological_Process_2023", permutations=50,
                        min_size=5)
    assert set(out["unit"]) == {int(u) for u in adata.uns["concepts"]["attribution"].index}
    assert {"best_term", "NES", "pval", "annotation"} <= set(out.columns)
