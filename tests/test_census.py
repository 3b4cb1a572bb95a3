"""Paper profile up to the network boundary (:mod:`scconcepts.data.census`): params/paper.yaml,
the offline failure message, Census-schema loaders on local fixtures (a fake Census client stands
in for cellxgene_census), the Census scVI query path, gene sets and precomputed embeddings.
No test touches the network."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml

from scconcepts.data import census, download
from scconcepts.data import DataValidationError, load_dataset, load_gene_sets

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning",
                                        "ignore::FutureWarning")

REPO = Path(__file__).resolve().parents[1]
TS = census.PAPER_DATASETS["tabula_sapiens_immune"]["dataset_id"]
CIC = census.PAPER_DATASETS["cross_tissue_immune_cell_atlas"]["dataset_id"]


def _profile(name, **over):
    from scconcepts.config import load_config

    return load_config(name, over)


# ------------------------------------------------------------------------------ params


def test_paper_profile_has_the_papers_values():
    from scconcepts.reference import PAPER_TABLE3

    paper, default, smoke = _profile("paper"), _profile("default"), _profile("smoke")
    raw = yaml.safe_load((REPO / "params" / "paper.yaml").read_text())
    assert raw["extends"] == "default"           # only the differences are written
    assert paper.data.main.dataset == TS and paper.data.second.dataset == CIC
    assert census.PAPER_DATASETS["tabula_sapiens_immune"]["n_cells"] == 592_317
    assert census.PAPER_DATASETS["cross_tissue_immune_cell_atlas"]["n_cells"] == 329_762
    assert paper.scale.census_version == "2025-01-30" and paper.models["scvi"].source == "census"
    assert paper.gsea.gene_sets == "GO_Biological_Process_2025"
    for m in ("scvi", "scgpt"):
        ms = paper.models[m]
        assert (ms.n_prototypes, ms.n_counterfactuals) == (10, 3)
    assert (paper.models["scvi"].c, paper.models["scvi"].k) == (500, 8)
    assert (paper.models["scgpt"].c, paper.models["scgpt"].k) == (5000, 80)
    assert paper.models["scgpt"].n_hvgs == 1200                 # Table 2: 1200 HVG
    assert paper.sae.batch_size == 1024 and paper.sae.aux_k == 512
    for ds, role in (("Tabula Sapiens Immune", "main"), ("Cross-tissue Immune Cell Atlas", "second")):
        rows = PAPER_TABLE3[PAPER_TABLE3.dataset == ds]
        for model, key in (("scVI", "scvi"), ("scGPT", "scgpt")):
            want = rows[rows.model == model][["c", "k", "lr", "epochs"]].values.tolist()
            got = paper.models[key].table3[role]
            assert sorted(map(tuple, got)) == sorted(map(tuple, want)), (ds, model)
    scvi = paper.models["scvi"]
    assert scvi.sae_hparams(500, 8, "main", 0, 0) == (paper.sae.lr, paper.sae.epochs)
    assert scvi.sae_hparams(500, 8, "second", 0, 0) == (1e-4, 2000)   # Table 3 per dataset
    # the default and smoke profiles keep their behaviour
    for prof in (default, smoke):
        assert prof.scale.census_version is None and prof.scale.cache_dir is None
        assert prof.models["scvi"].source == "trained"
        assert prof.scale.attribution_shard_count == 1


def test_load_config_accepts_paper_overrides():
    from scconcepts.config import ConfigError, load_config

    cfg = load_config("paper", {"scale.attribution_shard_index": 2,
                                "attribution_shard_count": 4})      # flat spelling too
    assert cfg.scale.attribution_shard_index == 2 and cfg.scale.attribution_shard_count == 4
    with pytest.raises(ConfigError, match="census_version"):
        load_config("default", {"census_versoin": "x"})


# ------------------------------------------------------------------------------ offline failure


@pytest.mark.slow  # starts the runner and the Census CLI as subprocesses
@pytest.mark.parametrize("cmd", [
    ["-m", "scconcepts.book", "all", "--profile", "paper"],
    ["-m", "scconcepts.data.census", "check", "--profile", "paper"],
])
def test_paper_command_fails_fast_with_download_instructions(cmd, tmp_path):
    env = {**os.environ, "SCCONCEPTS_CACHE": str(tmp_path / "empty-cache")}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *cmd], capture_output=True, text=True, timeout=60,
                          env=env, cwd=REPO)
    seconds = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert seconds < 30, seconds
    for needle in ("Tabula Sapiens - Immune", TS, CIC, "Census scVI model",
                   "s3://cellxgene-contrib-public/models/scvi/2025-01-30/homo_sapiens/model.pt",
                   "scGPT whole-human", "GO_Biological_Process_2025",
                   "python -m scconcepts.data.census download --profile paper",
                   'pip install ".[census]"', str(tmp_path / "empty-cache")):
        assert needle in out, needle
    assert "Traceback" not in out


def _complete_cache(root: Path, cfg) -> None:
    c = census.CensusCache(root, cfg.scale.census_version)
    for ds in (TS, CIC):
        c.dataset(ds).parent.mkdir(parents=True, exist_ok=True)
        c.dataset(ds).write_bytes(b"x")
    c.scvi_model_dir().mkdir(parents=True)
    (c.scvi_model_dir() / "model.pt").write_bytes(b"x")
    c.gene_set("GO_Biological_Process_2025").parent.mkdir(parents=True)
    c.gene_set("GO_Biological_Process_2025").write_text("A\t\tB\n")


def test_preflight_passes_when_everything_is_there(tmp_path, monkeypatch):
    monkeypatch.setenv("SCCONCEPTS_CACHE", str(tmp_path))
    scgpt = tmp_path / "scGPT_human"
    scgpt.mkdir()
    for f in ("args.json", "vocab.json", "best_model.pt"):
        (scgpt / f).write_text("{}")
    cfg = _profile("paper", **{"models.scgpt.checkpoint": str(scgpt)})
    with pytest.raises(census.PaperInputsMissing) as err:
        census.preflight(cfg)
    assert "scGPT" not in str(err.value) and "4 input(s)" in str(err.value)
    _complete_cache(tmp_path, cfg)
    census.preflight(cfg)                                    # nothing missing: no error
    census.preflight(_profile("default"))                    # no Census inputs: no-op
    assert census.resolve_dataset(cfg, "main").endswith(f"{TS}.h5ad")
    assert census.resolve_dataset(cfg, "perturbation") == "kang2018_pbmc_ifnb"
    assert census.resolve_gene_sets(cfg).endswith("GO_Biological_Process_2025.gmt")
    assert census.resolve_gene_sets(_profile("default")) == "GO_Biological_Process_2023"


def test_resolve_dataset_raises_with_the_download_command(tmp_path, monkeypatch):
    monkeypatch.setenv("SCCONCEPTS_CACHE", str(tmp_path))
    cfg = _profile("paper")
    with pytest.raises(census.PaperInputsMissing, match="--what main_dataset"):
        census.resolve_dataset(cfg, "main")


def test_require_census_names_the_install_command(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_census(name, *a, **k):
        if name.startswith(("cellxgene_census", "tiledbsoma")):
            raise ImportError(f"No module named {name!r}")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_census)
    with pytest.raises(ImportError, match=r'pip install "\.\[census\]"'):
        census.require_census()


# ------------------------------------------------------------------------------ Census schema


@pytest.fixture(scope="module")
def raw_census_h5ad(kang_small, tmp_path_factory):
    """What cellxgene_census.get_anndata returns for a dataset: var index 0..n-1 with
    feature_id / feature_name, Census obs columns, raw counts."""
    path = tmp_path_factory.mktemp("census") / "raw.h5ad"
    return census.make_census_like_h5ad(path, 260, kang_small, chunk_size=100, seed=3,
                                        dataset_id=CIC, raw_census=True)


def test_census_like_fixture_has_the_census_schema(raw_census_h5ad, kang_small):
    a = ad.read_h5ad(raw_census_h5ad)
    for col in census.OBS_COLUMNS:
        assert col in a.obs, col
    assert list(a.var.columns[:3]) == ["soma_joinid", "feature_id", "feature_name"]
    assert a.var_names[0] == "0" and a.var["feature_id"].str.startswith("ENSG").all()
    assert (a.obs["dataset_id"] == CIC).all()
    x = a.X.toarray()
    assert np.array_equal(x, np.round(x)) and x.min() >= 0 and x.sum(1).min() > 0
    # realistic: cell types differ in the genes they express, as in the reference
    types = a.obs["cell_type"].astype(str)
    mono, t = x[(types == "classical monocyte").to_numpy()], x[(types == "CD4-positive, alpha-beta T cell").to_numpy()]
    lyz = list(a.var["feature_name"]).index("LYZ")
    assert mono[:, lyz].mean() > 5 * t[:, lyz].mean()


def test_standardize_census_anndata(raw_census_h5ad):
    raw = ad.read_h5ad(raw_census_h5ad)
    std = census.standardize_census_anndata(raw)
    assert list(std.var_names[:3]) == list(raw.var["feature_name"][:3])
    assert (std.var["feature_id"].to_numpy() == raw.var["feature_id"].to_numpy()).all()
    assert list(std.obs_names[:2]) == ["0", "1"]
    assert sp.issparse(std.X) and std.X.dtype == np.float32
    assert (std.X != raw.X).nnz == 0

    # a Discover H5AD: Ensembl var_names, log-normalised X, counts in raw.X
    disc = ad.AnnData(X=sp.csr_matrix(np.log1p(raw.X.toarray())), obs=raw.obs.copy(),
                      var=pd.DataFrame({"feature_name": raw.var["feature_name"].to_numpy()},
                                       index=raw.var["feature_id"].to_numpy()))
    disc.raw = ad.AnnData(X=raw.X.copy(), var=disc.var.copy())
    std2 = census.standardize_census_anndata(disc)
    assert (std2.X != raw.X).nnz == 0 and std2.var_names[0] == raw.var["feature_name"].iloc[0]

    disc.raw = None
    with pytest.raises(DataValidationError, match="raw UMI counts"):
        census.standardize_census_anndata(disc)
    with pytest.raises(DataValidationError, match="Census schema"):
        census.standardize_census_anndata(ad.AnnData(X=raw.X, var=pd.DataFrame(
            index=[f"g{i}" for i in range(raw.n_vars)])))


class FakeCensus:
    """Stands in for the cellxgene_census module: one dataset served from a local h5ad."""

    def __init__(self, path, fail_on_call=None, embedding=None):
        self.adata = ad.read_h5ad(path)
        self.calls = []
        self.fail_on_call = fail_on_call
        self.embedding = embedding
        self.experimental = SimpleNamespace(
            get_embedding_metadata_by_name=self._meta, get_embedding=self._get_embedding)

    @contextmanager
    def open_soma(self, census_version=None):
        self.version = census_version
        yield "census-handle"

    def _select(self, value_filter):
        ds = value_filter.split("'")[1]
        return self.adata[(self.adata.obs["dataset_id"] == ds).to_numpy()]

    def get_obs(self, census_, organism, value_filter=None, column_names=None):
        return self._select(value_filter).obs[list(column_names)].reset_index(drop=True)

    def get_anndata(self, census_, organism, obs_coords=None, obs_value_filter=None,
                    var_value_filter=None, obs_column_names=None, obs_embeddings=()):
        self.calls.append(None if obs_coords is None else int(np.asarray(obs_coords)[0]))
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise ConnectionError("network dropped")
        a = self.adata
        if obs_coords is not None:
            a = a[np.isin(a.obs["soma_joinid"], np.asarray(obs_coords))]
        if obs_value_filter is not None:
            a = a[(a.obs["dataset_id"] == obs_value_filter.split("'")[1]).to_numpy()]
        if var_value_filter is not None:
            a = a[:, (a.var["feature_id"] == var_value_filter.split("'")[1]).to_numpy()]
        a = a.copy()
        for name in obs_embeddings:
            a.obsm[name] = self.embedding[a.obs["soma_joinid"].to_numpy()]
        return a

    def _meta(self, name, organism=None, census_version=None, embedding_type=None):
        return {"id": f"CxG-{name}", "model_link": f"s3://bucket/models/{name}/model.pt"}

    def _get_embedding(self, version, uri, ids):
        self.uri = uri
        return self.embedding[np.asarray(ids)]


def test_download_dataset_in_chunks_resumes_and_loads(raw_census_h5ad, tmp_path, monkeypatch):
    cache = census.CensusCache(tmp_path, "2025-01-30")
    fake = FakeCensus(raw_census_h5ad, fail_on_call=3)
    monkeypatch.setattr(download, "_client", lambda: fake)
    with pytest.raises(ConnectionError):
        census.download_dataset(CIC, cache, chunk_size=100, progress=False)
    assert fake.calls == [0, 100, 200]
    assert sorted(p.name for p in cache.dataset_parts(CIC).glob("part_*.h5ad")) == [
        "part_00000.h5ad", "part_00001.h5ad"]
    assert not cache.dataset(CIC).exists()

    fake2 = FakeCensus(raw_census_h5ad)
    monkeypatch.setattr(download, "_client", lambda: fake2)
    with pytest.warns(UserWarning, match="the paper reports 329,762"):
        path = census.download_dataset(CIC, cache, chunk_size=100, progress=False)
    assert fake2.calls == [200] and fake2.version == "2025-01-30"   # only the missing chunk
    assert path == cache.dataset(CIC) and not cache.dataset_parts(CIC).exists()

    got = load_dataset(path, required_obs=("cell_type", "donor_id", "tissue"))
    raw = ad.read_h5ad(raw_census_h5ad)
    assert got.n_obs == raw.n_obs and got.var_names[0] == raw.var["feature_name"].iloc[0]
    assert (got.X != raw.X).nnz == 0
    assert (got.var["feature_id"].to_numpy() == raw.var["feature_id"].to_numpy()).all()
    assert dict(ad.read_h5ad(path, backed="r").uns["census"])["dataset_id"] == CIC
    # present: returned at once, no client call
    monkeypatch.setattr(download, "_client", lambda: pytest.fail("client used for a cached file"))
    assert census.download_dataset(CIC, cache) == path


def test_download_census_embeddings(raw_census_h5ad, tmp_path, monkeypatch):
    cache = census.CensusCache(tmp_path, "2025-01-30")
    emb = np.random.default_rng(0).normal(size=(260, 6)).astype(np.float32)
    fake = FakeCensus(raw_census_h5ad, embedding=emb)
    monkeypatch.setattr(download, "_client", lambda: fake)
    p = census.download_census_embeddings(CIC, cache, "scvi")
    np.testing.assert_array_equal(np.load(p), emb)
    obs = pd.read_parquet(p.with_suffix(".obs.parquet"))
    assert obs["soma_joinid"].tolist() == list(range(260))
    p2 = census.download_census_embeddings(CIC, cache, "scgpt")
    assert "2023-12-15" in str(p2) and fake.version == "2023-12-15"
    assert fake.uri == "s3://cellxgene-contrib-public/contrib/cell-census/soma/2023-12-15/CxG-scgpt"
    np.testing.assert_array_equal(np.load(p2), emb)


def test_scvi_model_link_and_download(tmp_path, monkeypatch):
    fake = SimpleNamespace(experimental=SimpleNamespace(
        get_embedding_metadata_by_name=lambda name, organism, census_version, embedding_type:
        {"model_link": f"s3://cellxgene-contrib-public/models/{name}/{census_version}/"
                       f"{organism}/model.pt"}))
    monkeypatch.setattr(download, "_client", lambda: fake)
    link = census.scvi_model_link("2025-01-30")
    assert link == "s3://cellxgene-contrib-public/models/scvi/2025-01-30/homo_sapiens/model.pt"
    assert download._https(link) == ("https://cellxgene-contrib-public.s3.us-west-2.amazonaws.com/"
                                   "models/scvi/2025-01-30/homo_sapiens/model.pt")
    src = tmp_path / "served.pt"
    src.write_bytes(b"weights")
    cache = census.CensusCache(tmp_path / "cache")
    d = census.download_scvi_model(cache, model_link=src.as_uri())
    assert (d / "model.pt").read_bytes() == b"weights"


# ------------------------------------------------------------------------------ Census scVI


@pytest.fixture(scope="module")
def ensembl_scvi(kang_small, tmp_path_factory):
    """A reference scVI indexed by Ensembl ids, as the Census model is."""
    from scconcepts.models import scvi as ms

    ref = kang_small.copy()
    ref.var_names = ref.var["feature_id"].astype(str).to_numpy()
    save_dir = tmp_path_factory.mktemp("census_scvi") / "homo_sapiens"
    ms.train_reference(ref, save_dir, max_epochs=2, seed=0, accelerator="cpu")
    return save_dir


def test_census_scvi_query_mapping_in_chunks(ensembl_scvi, raw_census_h5ad, tmp_path):
    from scconcepts import scale
    from scconcepts.models import scvi as ms

    query = census.standardize_census_anndata(ad.read_h5ad(raw_census_h5ad))
    query = query[:, query.n_vars // 10:].copy()        # 10 % of the model genes are absent
    path = tmp_path / "query.h5ad"
    query.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    model, report = census.load_census_scvi(backed, ensembl_scvi, n_cells=50)
    assert report["n_found"] == query.n_vars and len(report["missing"]) == report[
        "n_reference"] - query.n_vars
    assert set(model.adata.obs["batch"]) == {"unassigned"}
    z = scale.embed_in_chunks(path, census.census_scvi_encoder(model, ensembl_scvi, device="cpu"),
                              tmp_path / "z", chunk_size=64, progress=False)
    # the same cells through scvi-tools alone: prepare_query_anndata + load_query_data
    q = ad.AnnData(X=query.X.copy(), var=pd.DataFrame(index=query.var["feature_id"].to_numpy()))
    aligned, _ = ms.prepare_query(q, ensembl_scvi)
    want = ms.embed(ms.load_query(aligned, ensembl_scvi), aligned)
    np.testing.assert_allclose(np.asarray(z), want, atol=1e-4)


def test_census_scvi_explains_symbol_ids(ensembl_scvi, raw_census_h5ad):
    query = census.standardize_census_anndata(ad.read_h5ad(raw_census_h5ad))
    query.var["feature_id"] = query.var_names.to_numpy()           # symbols, not Ensembl
    with pytest.raises(DataValidationError, match="Ensembl ids"):
        census.load_census_scvi(query, ensembl_scvi)
    with pytest.raises(FileNotFoundError, match="--what scvi_model"):
        census.load_census_scvi(query, ensembl_scvi.parent / "absent")


# ------------------------------------------------------------------------------ scGPT, gene sets


def test_scgpt_whole_human_loader(tmp_path):
    with pytest.raises(census.PaperInputsMissing, match="whole-human"):
        census.load_scgpt_whole_human(tmp_path / "scGPT_human")
    from scconcepts.models.scgpt import import_scgpt

    try:
        import_scgpt()
    except ImportError as exc:
        pytest.skip(f"scgpt not installed: {exc}")
    model, vocab, args = census.load_scgpt_whole_human(REPO / "models" / "scgpt_pbmc_small",
                                                       device="cpu")
    assert model.d_model == args["embsize"] and "<cls>" in vocab


def test_fetch_gene_set_by_name_through_gseapy(tmp_path, monkeypatch):
    import gseapy

    calls = []

    def fake_get_library(name, organism):
        calls.append((name, organism))
        return {"Antigen Processing (GO:0002478)": ["HLA-DRA", "CD74"] * 10,
                "Keratinocyte Differentiation (GO:0030216)": ["SPRR1A", "KRT1"]}

    monkeypatch.setattr(gseapy, "get_library", fake_get_library)
    cache = census.CensusCache(tmp_path)
    path = census.fetch_gene_set("GO_Biological_Process_2025", cache)
    assert calls == [("GO_Biological_Process_2025", "Human")]
    sets = load_gene_sets(str(path))
    assert sets["Antigen Processing (GO:0002478)"] == ["HLA-DRA", "CD74"]
    assert census.fetch_gene_set("GO_Biological_Process_2025", cache) == path and len(calls) == 1
