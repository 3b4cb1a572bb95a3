"""The paper profile's switches wired into :class:`scconcepts.workflow.Workflow`, on a tiny
"paper-like" profile whose Census inputs are local files in a temporary cache (no network):
Census-schema datasets by dataset id, an Ensembl-indexed scVI standing in for the Census model,
a gene-set library fetched "by name", Table 3 SAE hyper-parameters, the chunked embedding store
(with resume) and sharded attribution (merged = unsharded).
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from scconcepts import scale
from scconcepts.data import census, census_scvi
from scconcepts.data.census import CensusCache, make_census_like_h5ad
from scconcepts.config import ConfigError, load_config, repo_root
from scconcepts.workflow import Workflow

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

    values = {
        "extends": "smoke", "torch_threads": 1, "artifacts_dir": str(tmp / "artifacts"),
        "data": {"main": {"dataset": TS, "subsample": None,
                          "required_obs": ["cell_type", "donor_id", "tissue"]},
                 "second": {"dataset": CIC, "subsample": None}},
        "models": {"scvi": {"source": "census", "table3": {"main": [[200, 8, 0.002, 6]]}},
                   "scgpt": {"checkpoint": str(repo_root() / "models" / "scgpt_pbmc_small")}},
        "sae": {"epochs": 3},
        "gsea": {"gene_sets": "GO_Biological_Process_2025"},
        "scale": {"census_version": VERSION, "cache_dir": str(cache.root),
                  "embedding_chunk_size": CHUNK, "device": "cpu", "amp": False},
    }
    pdir = tmp / "params"
    pdir.mkdir()
    for name in ("default", "smoke"):
        (pdir / f"{name}.yaml").write_text((repo_root() / "params" / f"{name}.yaml").read_text())
    (pdir / "paperlike.yaml").write_text(yaml.safe_dump(values))
    return {"params_dir": pdir, "cache": cache, "tmp": tmp}


def _cfg(paper_like, **over):
    return load_config("paperlike", over, params_dir=paper_like["params_dir"])


def _shard(paper_like, index, count=3):
    return _cfg(paper_like, **{"scale.attribution_shard_count": count,
                               "scale.attribution_shard_index": index})


# ------------------------------------------------------------------------------ default profiles


def test_default_and_smoke_profiles_use_no_census_input():
    for profile in ("default", "smoke"):
        wf = Workflow(load_config(profile))
        c = wf.cfg
        assert not c.scale.uses_census and c.scale.attribution_shard_count == 1
        assert c.scale.embedding_chunk_size is None
        assert all(getattr(m, "source", "trained") == "trained" for m in c.models.values())
        ms = c.models["scvi"]
        assert ms.sae_hparams(500, 8, "main", c.sae.lr, c.sae.epochs) == (c.sae.lr, c.sae.epochs)
        assert census.resolve_dataset(c, "main") == c.data.main.dataset
        assert census.resolve_gene_sets(c) == c.gsea.gene_sets


# ------------------------------------------------------------------------------ inputs


def test_dataset_is_the_cached_census_h5ad_and_preflight_runs_early(paper_like, tmp_path):
    pipe = Workflow(_cfg(paper_like))
    main = pipe.dataset("main")
    assert main.n_obs == N_MAIN and main.uns["scconcepts_source"] == str(
        paper_like["cache"].dataset(TS))
    assert main.var["feature_id"].str.startswith("ENSG").all() and "LYZ" in main.var_names
    assert pipe.dataset("second").n_obs == N_SECOND
    assert pipe.dataset("perturbation").n_obs <= 500            # bundled name, unchanged
    with pytest.raises(census.PaperInputsMissing, match="--what main_dataset") as err:
        Workflow(_cfg(paper_like, **{"scale.cache_dir": str(tmp_path / "empty")}))
    assert "Census scVI model" in str(err.value)
    with pytest.raises(ConfigError, match="attribution_shard_index"):
        _cfg(paper_like, **{"scale.attribution_shard_index": 2,
                            "scale.attribution_shard_count": 2})
    with pytest.raises(ConfigError, match="source"):
        _cfg(paper_like, **{"models.scvi.source": "censsus"})


def test_sae_config_follows_table3(paper_like):
    pipe = Workflow(_cfg(paper_like))
    cf = pipe.sae_config("scvi", 200, 8)
    assert (cf.lr, cf.epochs) == (0.002, 6)                     # the table's row for main
    cf = pipe.sae_config("scvi", 100, 4)
    assert (cf.lr, cf.epochs) == (pipe.cfg.sae.lr, pipe.cfg.sae.epochs)   # not in the table
    cf = pipe.sae_config("scvi", 200, 8, role="second")         # Table 3 is per dataset
    assert (cf.lr, cf.epochs) == (pipe.cfg.sae.lr, pipe.cfg.sae.epochs)


# ------------------------------------------------------------------------------ Census scVI


@pytest.mark.slow  # integration: chunked Census-scVI embedding through the workflow
def test_census_scvi_chunked_embeddings_resume(paper_like, monkeypatch):
    from scconcepts.models import scvi as ms

    monkeypatch.setattr(ms, "train_reference", lambda *a, **k: pytest.fail("scVI trained"))
    cfg = _cfg(paper_like)
    pipe = Workflow(cfg)
    model = pipe.model("scvi")
    assert model.model_dir() == paper_like["cache"].scvi_model_dir()
    src = pipe.dataset("main")
    adata, _ = model.aligned(src, "main")
    ref = ms.reference_genes(model.model_dir())
    # model order (Ensembl), symbols as var_names, counts moved with their gene
    assert list(adata.var["feature_id"]) == ref
    assert set(adata.var_names) == set(src.var_names)
    for gene in ("LYZ", "CD74"):
        np.testing.assert_array_equal(adata[:, gene].X.toarray(), src[:, gene].X.toarray())
    z = pipe.embeddings("main", "scvi")
    assert z.shape == (N_MAIN, 50)
    want = census.census_scvi_encoder(model.model(), model.model_dir(), device="cpu")(src)
    np.testing.assert_allclose(z, want, atol=1e-5)
    store = pipe.store.path(pipe.embedding_key("main", "scvi"))
    assert scale.embedding_progress(store)["complete"]

    rep = model.gene_report(pipe.dataset("second"), "second")   # query with missing genes
    assert rep["n_found"] < rep["n_reference"] == len(ref)
    assert pipe.embeddings("second", "scvi").shape == (N_SECOND, 50)

    # killed after the first chunk, then resumed: finished chunks are not recomputed
    fresh = _cfg(paper_like, artifacts_dir=str(paper_like["tmp"] / "resume"))
    store = Workflow(fresh).store.path(Workflow(fresh).embedding_key("main", "scvi"))
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

    monkeypatch.setattr(census_scvi, "census_scvi_encoder", flaky)
    fail = True
    with pytest.raises(KeyboardInterrupt):
        Workflow(fresh).embeddings("main", "scvi")
    assert scale.embedding_progress(store)["done"] == 1
    fail, calls[:] = False, []
    again = Workflow(fresh).embeddings("main", "scvi")
    assert calls == ["100", "200", "300"]                       # chunks 1..3 only
    np.testing.assert_array_equal(again, z)
    calls.clear()
    Workflow(fresh).embeddings("main", "scvi")
    assert calls == []                                          # complete: no encoder call


@pytest.mark.slow  # integration: chunked scGPT embedding through the workflow
def test_scgpt_chunked_embeddings_equal_in_memory(paper_like):
    from scconcepts.models.scgpt import import_scgpt

    try:
        import_scgpt()
    except ImportError as exc:
        pytest.skip(f"scgpt not installed: {exc}")
    chunked = Workflow(_cfg(paper_like)).embeddings("second", "scgpt")
    whole = Workflow(_cfg(paper_like, **{"scale.embedding_chunk_size": None,
                                         "artifacts_dir": str(paper_like["tmp"] / "scgpt_whole")})
                     ).embeddings("second", "scgpt")
    assert chunked.shape == whole.shape and chunked.shape[0] == N_SECOND
    np.testing.assert_allclose(chunked, whole, atol=1e-5)


# ------------------------------------------------------------------------------ attribution


@pytest.mark.slow  # integration: a sharded workflow run
def test_sharded_attribution_merges_to_the_unsharded_result(paper_like, monkeypatch):
    import scconcepts.attribution as att
    import scconcepts.enrichment as enr

    cfg = _cfg(paper_like)
    pipe = Workflow(cfg)
    active = np.flatnonzero(pipe.codes("scvi", 200, 8).getnnz(axis=0) >= 5)
    units = active[[4, 0, 2, 1, 3]]                              # any order
    whole = pipe.attribution("scvi", "concept", units=units)
    np.testing.assert_array_equal(whole.units, units)
    # attribution genes are symbols (mapped back from the Census model's Ensembl ids)
    assert {"LYZ", "CD74"} <= set(whole.genes) and not any(
        str(g).startswith("ENSG0") for g in whole.genes)
    key = pipe.attribution_key("scvi", "concept", "main", None, units)
    path = pipe.store.path(key, ".npz")
    assert path.exists() and "shard" not in path.name
    path.unlink()
    shard_dir = pipe.store.root / "attribution" / "shards"

    shards = []
    for i in (1, 0):
        sp_ = Workflow(_shard(paper_like, i))
        shards.append(sp_.attribution("scvi", "concept", units=units))
        assert (shard_dir / f"{key}_shard{i:03d}of003.npz").exists()
        with pytest.raises(ValueError, match="GSEA needs the whole attribution"):
            sp_.gsea("scvi", "concept")
    np.testing.assert_array_equal(shards[1].units, scale.shard_units(units, 0, 3))
    with pytest.raises(FileNotFoundError, match=r"\[2\]"):
        Workflow(cfg).attribution("scvi", "concept", units=units)  # incomplete: no recompute
    Workflow(_shard(paper_like, 2)).attribution("scvi", "concept", units=units)

    real = att.attribute_units
    monkeypatch.setattr(att, "attribute_units", lambda *a, **k: pytest.fail("recomputed"))
    merged = Workflow(cfg).attribution("scvi", "concept", units=units)  # merges the shards
    assert path.exists()
    np.testing.assert_array_equal(merged.units, whole.units)
    np.testing.assert_allclose(merged.scores, whole.scores, atol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(merged.prototypes, whole.prototypes)
    np.testing.assert_array_equal(merged.counterfactuals, whole.counterfactuals)

    # more shards than units: the extra shard is empty and the merge skips it
    monkeypatch.setattr(att, "attribute_units", real)
    few = units[:2]
    for i in range(3):
        res = Workflow(_shard(paper_like, i)).attribution("scvi", "concept", units=few)
        assert len(res.units) == (0 if i == 2 else 1)
    np.testing.assert_allclose(Workflow(cfg).attribution("scvi", "concept", units=few).scores,
                               whole.scores[:2], atol=1e-6, equal_nan=True)

    # GSEA reads the library fetched by name from the cache, with symbol-named attributions
    seen = {}

    def fake_annotate(att_res, gene_sets, sub, **kw):
        import pandas as pd

        seen.update(n_sets=len(gene_sets), genes=set(att_res.genes))
        return pd.DataFrame({"unit": sub}), None

    monkeypatch.setattr(enr, "annotate_units", fake_annotate)
    pipe = Workflow(cfg)
    monkeypatch.setattr(pipe, "attribution", lambda *a, **k: whole)
    out = pipe.gsea("scvi", "concept")
    assert len(out) == min(len(units), cfg.gsea.n_units) and seen["n_sets"] == 200
    assert "LYZ" in seen["genes"]


