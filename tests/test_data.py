"""Input validation of :mod:`scconcepts.data` and the bundled data files.

Every invalid input must raise the documented error type *and* a message that names the fix.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scconcepts import data as sd
from scconcepts.data import DataValidationError, load_dataset


@pytest.fixture(scope="module")
def counts_small(kang_small):
    """60 real cells (raw counts, dense int) with their obs; a fresh AnnData per use via copy."""
    sub = kang_small[:60].copy()
    x = sub.X.toarray().astype(np.int64)
    obs = sub.obs[["cell_type", "donor_id"]].copy()
    obs["cell_type"] = obs["cell_type"].astype(str)
    obs["donor_id"] = obs["donor_id"].astype(str)
    var = pd.DataFrame(index=sub.var_names.copy())
    var["feature_id"] = sub.var["feature_id"].astype(str).values
    return x, obs, var


def _write(tmp_path, x, obs, var, name="d.h5ad", layers=None):
    a = ad.AnnData(X=x, obs=obs.copy(), var=var.copy(), layers=layers or {})
    path = tmp_path / name
    a.write_h5ad(path)
    return path


def test_valid_file_roundtrip(tmp_path, counts_small):
    x, obs, var = counts_small
    path = _write(tmp_path, sp.csr_matrix(x.astype(np.float64)), obs, var)
    a = load_dataset(path, required_obs=("cell_type",), min_cells=50)
    assert a.shape == x.shape
    assert sp.isspmatrix_csr(a.X) and a.X.dtype == np.float32
    np.testing.assert_array_equal(a.X.toarray(), x)
    np.testing.assert_array_equal(a.layers["counts"].toarray(), x)


def test_log_normalised_x_is_rejected_with_counts_layer_hint(tmp_path, counts_small):
    x, obs, var = counts_small
    lognorm = np.log1p(x / np.maximum(x.sum(1, keepdims=True), 1) * 1e4)
    path = _write(tmp_path, lognorm, obs, var)
    with pytest.raises(DataValidationError, match="counts_layer") as ei:
        load_dataset(path)
    assert "raw integer counts" in str(ei.value)
    assert "X" in str(ei.value)


def test_negative_values_are_rejected(tmp_path, counts_small):
    x, obs, var = counts_small
    bad = x.astype(np.float32)
    bad[0, 0] = -1.0
    path = _write(tmp_path, bad, obs, var)
    with pytest.raises(DataValidationError, match="negative") as ei:
        load_dataset(path)
    assert "counts_layer" in str(ei.value)


def test_missing_counts_layer_lists_available_layers(tmp_path, counts_small):
    x, obs, var = counts_small
    path = _write(tmp_path, x.astype(np.float32), obs, var, layers={"spliced": x.astype(np.float32)})
    with pytest.raises(DataValidationError, match="'raw' not found") as ei:
        load_dataset(path, counts_layer="raw")
    msg = str(ei.value)
    assert "spliced" in msg and "counts_layer=None" in msg


def test_non_integer_counts_layer_names_the_layer(tmp_path, counts_small):
    x, obs, var = counts_small
    path = _write(tmp_path, x.astype(np.float32), obs, var,
                  layers={"raw": np.log1p(x).astype(np.float32)})
    with pytest.raises(DataValidationError, match=r"layers\['raw'\]"):
        load_dataset(path, counts_layer="raw")


def test_counts_in_a_layer_are_moved_to_x(tmp_path, counts_small):
    x, obs, var = counts_small
    lognorm = np.log1p(x).astype(np.float32)
    path = _write(tmp_path, lognorm, obs, var, layers={"raw": sp.csr_matrix(x.astype(np.float32))})
    with pytest.raises(DataValidationError):  # X itself is not counts
        load_dataset(path)
    a = load_dataset(path, counts_layer="raw")
    assert sp.isspmatrix_csr(a.X) and a.X.dtype == np.float32
    np.testing.assert_array_equal(a.X.toarray(), x)
    np.testing.assert_array_equal(a.layers["counts"].toarray(), x)
    # the layer is a copy, not a view of X
    a.X.data[:] = 0
    assert a.layers["counts"].sum() == x.sum()


def test_ensembl_var_names_are_rejected_with_symbol_hint(tmp_path, counts_small):
    x, obs, var = counts_small
    var_ens = var.copy()
    var_ens.index = var["feature_id"].values
    assert var_ens.index.str.startswith("ENSG").mean() > 0.9
    path = _write(tmp_path, x.astype(np.float32), obs, var_ens)
    with pytest.raises(DataValidationError, match="Ensembl") as ei:
        load_dataset(path)
    assert "symbols" in str(ei.value)


@pytest.mark.filterwarnings("ignore:Variable names are not unique")
def test_duplicated_symbols_are_rejected(tmp_path, counts_small):
    x, obs, var = counts_small
    names = list(var.index)
    names[5] = names[4]
    var_dup = pd.DataFrame(index=pd.Index(names))
    path = _write(tmp_path, x.astype(np.float32), obs, var_dup)
    with pytest.raises(DataValidationError, match="Duplicated") as ei:
        load_dataset(path)
    msg = str(ei.value)
    assert names[4] in msg and "var_names_make_unique" in msg


def test_missing_obs_column_is_named(tmp_path, counts_small):
    x, obs, var = counts_small
    path = _write(tmp_path, x.astype(np.float32), obs, var)
    with pytest.raises(DataValidationError, match="tissue") as ei:
        load_dataset(path, required_obs=("cell_type", "tissue"))
    msg = str(ei.value)
    assert "['tissue']" in msg and "cell_type" in msg  # names the missing one, lists available
    assert "adata.obs['tissue']" in msg


def test_too_few_cells(tmp_path, counts_small):
    x, obs, var = counts_small
    path = _write(tmp_path, x.astype(np.float32), obs, var)
    with pytest.raises(DataValidationError, match="60 cells") as ei:
        load_dataset(path, min_cells=61)
    assert "min_cells" in str(ei.value)
    assert load_dataset(path, min_cells=60).n_obs == 60


def test_unknown_bundled_name_lists_the_bundled_ones():
    with pytest.raises(DataValidationError, match="Unknown dataset") as ei:
        load_dataset("kang2018_pbmc_stim")
    for name in sd.BUNDLED_DATASETS:
        assert name in str(ei.value)


def test_missing_h5ad_path(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "absent.h5ad")


def test_corrupt_h5ad(tmp_path):
    path = tmp_path / "corrupt.h5ad"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DataValidationError, match="Could not read") as ei:
        load_dataset(path)
    assert "re-export" in str(ei.value)


@pytest.mark.parametrize("name, shape, obs", [
    ("kang2018_pbmc_ctrl", (12261, 1287), ("cell_type", "donor_id", "tissue", "condition")),
    ("pbmc4k_10x", (2170, 18368), ("cell_type",)),
    ("kang2018_pbmc_ifnb", (2000, 9015), ("condition",)),
])
def test_bundled_datasets(name, shape, obs):
    a = load_dataset(name, required_obs=obs)
    assert a.shape == shape
    assert sp.isspmatrix_csr(a.X) and a.X.dtype == np.float32
    assert a.X.nnz > 0
    assert np.all(a.X.data >= 0) and np.all(a.X.data == np.round(a.X.data))
    c = a.layers["counts"]
    assert sp.issparse(c) and (c != a.X).nnz == 0
    assert a.var_names.is_unique and a.var_names.dtype == object
    assert a.uns["scconcepts_source"] == name


def test_read_gmt_uppercases_and_deduplicates(tmp_path):
    path = tmp_path / "x.gmt"
    path.write_text("SetA\tdesc\tcd74\tHLA-dra\tCD74\n"
                    "short line\n"
                    "SetB\t\tMs4a1 \tCD19\n")
    sets = sd.read_gmt(path)
    assert sets == {"SetA": ["CD74", "HLA-DRA"], "SetB": ["MS4A1", "CD19"]}
    bad = tmp_path / "bad.gmt"
    bad.write_text("not a gmt\n")
    with pytest.raises(DataValidationError, match="GMT"):
        sd.read_gmt(bad)


def test_bundled_go_library():
    sets = sd.load_gene_sets("GO_Biological_Process_2023")
    name = "Antigen Processing And Presentation Of Exogenous Peptide Antigen (GO:0002478)"
    assert "HLA-DRA" in sets[name]
    assert len(sets) > 5000
    assert all(g == g.upper() for g in sets[name])
    sets[name].clear()  # callers get copies they may mutate; the cached library is untouched
    assert "HLA-DRA" in sd.load_gene_sets("GO_Biological_Process_2023")[name]
    with pytest.raises(DataValidationError, match="Unknown gene-set library"):
        sd.load_gene_sets("GO_Biological_Process_1999")


def test_gene_info_and_names():
    info = sd.load_gene_info()
    assert info.loc["CD74", "name"] == "CD74 molecule"
    assert "ENSG00000019582" in info.loc["CD74", "ensembl_ids"]
    assert info.index.is_unique
    names = sd.gene_names(["CD74", "NOT_A_GENE_XYZ"])
    assert names["CD74"] == "CD74 molecule" and names["NOT_A_GENE_XYZ"] == ""


def test_cell_cycle_genes():
    cc = sd.load_cell_cycle_genes()
    assert len(cc["S"]) == 43 and len(cc["G2M"]) == 54
    assert cc["S"][0] == "MCM5" and cc["G2M"][0] == "HMGB2"
    assert not set(cc["S"]) & set(cc["G2M"])


def test_every_bundled_file_has_a_checksum_that_matches():
    """``data/SHA256SUMS`` lists every bundled file (a new file must be added to it) and each
    file matches (``cd data && sha256sum -c SHA256SUMS``); loaders verify with it."""
    import hashlib

    from scconcepts import data

    root = data.data_dir()
    sums = dict(reversed(line.split(None, 1))
                for line in (root / data.CHECKSUMS).read_text().splitlines())
    files = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
             and p.name not in ("README.md", data.CHECKSUMS)}
    assert set(sums) == files
    for rel, digest in sums.items():
        assert hashlib.sha256((root / rel).read_bytes()).hexdigest() == digest, rel
