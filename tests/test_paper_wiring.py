"""The paper profile's switches wired into :class:`scconcepts.pipeline.Pipeline`, on a tiny
"paper-like" profile whose Census inputs are local files in a temporary cache (no network):
Census-schema datasets by dataset id, an Ensembl-indexed scVI standing in for the Census model,
a gene-set library fetched "by name", Table 3 SAE hyper-parameters, the chunked embedding store
(with resume) and sharded attribution (merged = unsharded). Default/smoke cache keys are pinned.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from scconcepts import census, scale
from scconcepts.census import CensusCache, make_census_like_h5ad
from scconcepts.pipeline import Pipeline, load_config, repo_root

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning",
                                        "ignore::FutureWarning")

TS = census.PAPER_DATASETS["tabula_sapiens_immune"]["dataset_id"]
CIC = census.PAPER_DATASETS["cross_tissue_immune_cell_atlas"]["dataset_id"]
VERSION = "2025-01-30"
N_MAIN, N_SECOND, CHUNK = 360, 200, 100


@pytest.fixture(autouse=True)
def _no_cache_env(monkeypatch):
    monkeypatch.delenv("SCCONCEPTS_CACHE", raising=False)


@pytest.fixture(scope="module")
def paper_like(kang_small, tmp_path_factory):
    """A Census cache with two datasets, a 'Census' scVI (Ensembl ids) and GO 2025 by name, and
    params/paperlike.yaml = smoke.yaml + the paper keys pointing at it."""
    import anndata as ad

    from scconcepts.data import load_gene_sets
    from scconcepts.models import scvi as ms

    tmp = tmp_path_factory.mktemp("paper_like")
    cache = CensusCache(tmp / "cache", VERSION)
    make_census_like_h5ad(cache.dataset(TS), N_MAIN, kang_small, chunk_size=120, seed=5,
                          dataset_id=TS)
    # the second atlas lacks 10 % of the genes: the model aligns it with zero-filled genes
    make_census_like_h5ad(cache.dataset(CIC), N_SECOND, kang_small[:, kang_small.n_vars // 10:],
                          chunk_size=120, seed=6, dataset_id=CIC)
    main = ad.read_h5ad(cache.dataset(TS))
    rng = np.random.default_rng(0)
    ref = main[:, rng.permutation(main.n_vars)].copy()      # model order != dataset order
    ref.var_names = ref.var["feature_id"].astype(str).to_numpy()
    ms.train_reference(ref, cache.scvi_model_dir(), max_epochs=2, seed=0, accelerator="cpu")
    go = load_gene_sets("GO_Biological_Process_2023")
    lines = ["\t".join([t, "", *g]) for t, g in list(go.items())[:200]]
    cache.gene_set("GO_Biological_Process_2025").parent.mkdir(parents=True)
    cache.gene_set("GO_Biological_Process_2025").write_text("\n".join(lines) + "\n")

    values = yaml.safe_load((repo_root() / "params" / "smoke.yaml").read_text())
    values.update({
        "main_dataset": TS, "second_dataset": CIC, "subsample_main": None,
        "subsample_second": None, "main_required_obs": ["cell_type", "donor_id", "tissue"],
        "census_version": VERSION, "cache_dir": str(cache.root), "scvi_model": "census",
        "embedding_chunk_size": CHUNK, "device": "cpu", "amp": False,
        "gene_sets": "GO_Biological_Process_2025", "torch_threads": 1,
        "scgpt_checkpoint": str(repo_root() / "models" / "scgpt_pbmc_small"),
        "sae_epochs": 3, "sae_table3": {"scvi": [[200, 8, 0.002, 6]]},
        "artifacts_dir": str(tmp / "artifacts"),
    })
    pdir = tmp / "params"
    pdir.mkdir()
    (pdir / "paperlike.yaml").write_text(yaml.safe_dump(values))
    return {"params_dir": pdir, "cache": cache, "tmp": tmp}


def _cfg(paper_like, **over):
    return load_config("paperlike", over, params_dir=paper_like["params_dir"])


# ------------------------------------------------------------------------------ default unchanged


def test_default_and_smoke_cache_keys_are_unchanged():
    """The paper keys are null/off there: the scVI folder names (and so every key derived from
    them) are those of the artifacts made before the wiring."""
    from scconcepts.utils import param_key

    for profile in ("default", "smoke"):
        pipe = Pipeline(load_config(profile))
        c = pipe.cfg
        # the key formula from before the wiring (it named the existing artifacts)
        name = "scvi_" + param_key({"data": c.main_dataset, "n": c.values.get("subsample_main"),
                                    "epochs": c.scvi_max_epochs, "seed": c.seed, "n_latent": 50,
                                    "batch": c.scvi_batch_key})
        assert pipe.scvi_dir().name == name and pipe._emb_tag("scvi") == name
        assert not pipe.census_scvi and pipe._shard() == (0, 1) and pipe._chunk_size() is None
        v = pipe.cfg.values
        assert scale.sae_hparams(v, "scvi", 500, 8) == (v["sae_lr"], v["sae_epochs"])
        assert census.resolve_dataset(pipe.cfg, "main") == v["main_dataset"]
        assert census.resolve_gene_sets(pipe.cfg) == v["gene_sets"]


# ------------------------------------------------------------------------------ inputs


def test_dataset_is_the_cached_census_h5ad_and_preflight_runs_early(paper_like, tmp_path):
    pipe = Pipeline(_cfg(paper_like))
    main = pipe.dataset("main")
    assert main.n_obs == N_MAIN and main.uns["scconcepts_source"] == str(
        paper_like["cache"].dataset(TS))
    assert main.var["feature_id"].str.startswith("ENSG").all() and "LYZ" in main.var_names
    assert pipe.dataset("second").n_obs == N_SECOND
    assert pipe.dataset("perturbation").n_obs <= 500            # bundled name, unchanged
    with pytest.raises(census.PaperInputsMissing, match="--what main_dataset") as err:
        Pipeline(_cfg(paper_like, cache_dir=str(tmp_path / "empty")))
    assert "Census scVI model" in str(err.value)
    with pytest.raises(ValueError, match="attribution_shard_index"):
        Pipeline(_cfg(paper_like, attribution_shard_index=2, attribution_shard_count=2))
    with pytest.raises(ValueError, match="scvi_model"):
        Pipeline(_cfg(paper_like, scvi_model="censsus"))


def test_sae_config_follows_table3(paper_like):
    pipe = Pipeline(_cfg(paper_like))
    cf = pipe.sae_config(200, 8)
    assert (cf.lr, cf.epochs) == (0.002, 6)                     # the table's row
    cf = pipe.sae_config(100, 4)
    assert (cf.lr, cf.epochs) == (pipe.cfg.sae_lr, pipe.cfg.sae_epochs)   # not in the table


# ------------------------------------------------------------------------------ Census scVI


def test_census_scvi_chunked_embeddings_resume(paper_like, monkeypatch):
    from scconcepts.models import scvi as ms

    monkeypatch.setattr(ms, "train_reference", lambda *a, **k: pytest.fail("scVI trained"))
    cfg = _cfg(paper_like)
    pipe = Pipeline(cfg)
    assert pipe.scvi_dir() == paper_like["cache"].scvi_model_dir()
    adata = pipe.scvi_adata("main")
    src = pipe.dataset("main")
    ref = ms.reference_genes(pipe.scvi_dir())
    # model order (Ensembl), symbols as var_names, counts moved with their gene
    assert list(adata.var["feature_id"]) == ref
    assert set(adata.var_names) == set(src.var_names)
    for gene in ("LYZ", "CD74"):
        np.testing.assert_array_equal(adata[:, gene].X.toarray(), src[:, gene].X.toarray())
    z = pipe.embeddings("main")
    assert z.shape == (N_MAIN, 50)
    want = census.census_scvi_encoder(pipe.scvi_model(), pipe.scvi_dir(), device="cpu")(src)
    np.testing.assert_allclose(z, want, atol=1e-5)
    stores = list((cfg.artifacts / "embeddings").glob("scvi_census_scvi_*_main_*_chunks100"))
    assert len(stores) == 1 and scale.embedding_progress(stores[0])["complete"]

    second = pipe.scvi_adata("second")                          # query with missing genes
    rep = second.uns["scvi_gene_report"]
    assert rep["n_found"] < rep["n_reference"] == len(ref)
    assert second.obsm["X_scvi"].shape == (N_SECOND, 50)

    # killed after the first chunk, then resumed: finished chunks are not recomputed
    fresh = _cfg(paper_like, artifacts_dir=str(paper_like["tmp"] / "resume"))
    real = census.census_scvi_encoder
    calls = []

    def flaky(*a, **k):
        enc = real(*a, **k)

        def encode(chunk):
            calls.append(chunk.obs_names[0])
            if len(calls) == 2 and fail:
                raise KeyboardInterrupt("killed")
            return enc(chunk)

        return encode

    monkeypatch.setattr(census, "census_scvi_encoder", flaky)
    fail = True
    with pytest.raises(KeyboardInterrupt):
        Pipeline(fresh).embeddings("main")
    store = next((fresh.artifacts / "embeddings").glob("scvi_*_main_*_chunks100"))
    assert scale.embedding_progress(store)["done"] == 1
    fail, calls[:] = False, []
    again = Pipeline(fresh).embeddings("main")
    assert calls == ["100", "200", "300"]                       # chunks 1..3 only
    np.testing.assert_array_equal(again, z)
    calls.clear()
    Pipeline(fresh).embeddings("main")
    assert calls == []                                          # complete: no encoder call


def test_scgpt_chunked_embeddings_equal_in_memory(paper_like):
    from scconcepts.models.scgpt import import_scgpt

    try:
        import_scgpt()
    except ImportError as exc:
        pytest.skip(f"scgpt not installed: {exc}")
    chunked = Pipeline(_cfg(paper_like)).scgpt_embeddings("second")
    whole = Pipeline(_cfg(paper_like, embedding_chunk_size=None,
                          artifacts_dir=str(paper_like["tmp"] / "scgpt_whole"))
                     ).scgpt_embeddings("second")
    assert chunked.shape == whole.shape and chunked.shape[0] == N_SECOND
    np.testing.assert_allclose(chunked, whole, atol=1e-5)


# ------------------------------------------------------------------------------ attribution


def test_sharded_attribution_merges_to_the_unsharded_result(paper_like, monkeypatch):
    import scconcepts.attribution as att
    import scconcepts.enrichment as enr

    cfg = _cfg(paper_like)
    pipe = Pipeline(cfg)
    active = np.flatnonzero(pipe.codes(200, 8).getnnz(axis=0) >= 5)
    units = active[[4, 0, 2, 1, 3]]                              # any order
    whole = pipe.attribution("concept", units=units)
    np.testing.assert_array_equal(whole.units, units)
    # attribution genes are symbols (mapped back from the Census model's Ensembl ids)
    assert {"LYZ", "CD74"} <= set(whole.genes) and not any(
        str(g).startswith("ENSG0") for g in whole.genes)
    plan = pipe._attribution_plan("concept", "scvi", None, None, units, "main")
    assert "shard" not in plan["path"].name
    plan["path"].unlink()

    shards = []
    for i in (1, 0):
        sp_ = Pipeline(_cfg(paper_like, attribution_shard_count=3, attribution_shard_index=i))
        shards.append(sp_.attribution("concept", units=units))
        assert (plan["shards"] / f"{plan['stem']}_shard{i:03d}of003.npz").exists()
        with pytest.raises(ValueError, match="GSEA needs the whole attribution"):
            sp_.gsea("concept")
    np.testing.assert_array_equal(shards[1].units, scale.shard_units(units, 0, 3))
    with pytest.raises(FileNotFoundError, match=r"\[2\]"):
        Pipeline(cfg).attribution("concept", units=units)      # incomplete: no silent recompute
    with pytest.raises(FileNotFoundError, match=r"\[2\]"):
        Pipeline(cfg).merge_attribution_shards("concept", units=units)
    Pipeline(_cfg(paper_like, attribution_shard_count=3, attribution_shard_index=2)
             ).attribution("concept", units=units)

    real = att.attribute_units
    monkeypatch.setattr(att, "attribute_units", lambda *a, **k: pytest.fail("recomputed"))
    merged = Pipeline(cfg).attribution("concept", units=units)  # merges the complete set
    assert plan["path"].exists()
    np.testing.assert_array_equal(merged.units, whole.units)
    np.testing.assert_allclose(merged.scores, whole.scores, atol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(merged.prototypes, whole.prototypes)
    np.testing.assert_array_equal(merged.counterfactuals, whole.counterfactuals)
    again = Pipeline(cfg).merge_attribution_shards("concept", units=units)
    np.testing.assert_allclose(again.scores, whole.scores, atol=1e-6, equal_nan=True)

    # more shards than units: the extra shard is empty and the merge skips it
    monkeypatch.setattr(att, "attribute_units", real)
    few = units[:2]
    for i in range(3):
        res = Pipeline(_cfg(paper_like, attribution_shard_count=3, attribution_shard_index=i)
                       ).attribution("concept", units=few)
        assert len(res.units) == (0 if i == 2 else 1)
    np.testing.assert_allclose(Pipeline(cfg).attribution("concept", units=few).scores,
                               whole.scores[:2], atol=1e-6, equal_nan=True)

    # GSEA reads the library fetched by name from the cache, with symbol-named attributions
    seen = {}

    def fake_annotate(att_res, gene_sets, sub, **kw):
        import pandas as pd

        seen.update(n_sets=len(gene_sets), genes=set(att_res.genes))
        return pd.DataFrame({"unit": sub}), None

    monkeypatch.setattr(enr, "annotate_units", fake_annotate)
    pipe = Pipeline(cfg)
    monkeypatch.setattr(pipe, "attribution", lambda *a, **k: whole)
    out = pipe.gsea("concept")
    assert len(out) == min(len(units), cfg.gsea_n_units) and seen["n_sets"] == 200
    assert "LYZ" in seen["genes"]


def test_umap_cache_follows_the_embeddings():
    """The scGPT UMAP is keyed by the scGPT weights (a retrained model must not reuse the old
    model's layout); the scVI UMAP keeps its key and does not depend on scGPT."""
    pipe = Pipeline(load_config("smoke"))
    scvi_path = pipe._umap_path("main", "X_scvi", 100)
    gpt_path = pipe._umap_path("main", "X_scgpt", 100)
    assert scvi_path.name == f"umap_X_scvi_{pipe._scvi_tag()}_main_100.npy"
    assert pipe._scgpt_stamp() in gpt_path.name and gpt_path != scvi_path
    pipe._cache["scgpt_stamp"] = "0123456789ab"  # as if best_model.pt had been retrained
    assert pipe._umap_path("main", "X_scgpt", 100) != gpt_path
    assert pipe._umap_path("main", "X_scvi", 100) == scvi_path
