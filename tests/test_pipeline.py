"""Profiles (:func:`scconcepts.pipeline.load_config`, :class:`Config`) and atomic writes."""

from __future__ import annotations

import os

import pytest

from scconcepts.pipeline import Config, load_config, repo_root
from scconcepts.utils import atomic_write, param_key


@pytest.fixture
def params_dir(tmp_path):
    d = tmp_path / "params"
    d.mkdir()
    (d / "alpha.yaml").write_text("seed: 0\nsae_lr: 0.0001\nmain_dataset: kang2018_pbmc_ctrl\n"
                                  "metadata_keys: [cell_type, donor_id]\n")
    (d / "beta.yaml").write_text("seed: 1\n")
    return d


def test_load_config_and_overrides(params_dir):
    cfg = load_config("alpha", {"seed": 3, "sae_lr": 0.0001}, params_dir=params_dir)
    assert cfg.profile == "alpha"
    assert cfg.seed == 3 and cfg.values["seed"] == 3
    assert cfg.overrides == {"seed": 3}  # an override equal to the profile value is not one
    assert cfg.metadata_keys == ["cell_type", "donor_id"]
    with pytest.raises(AttributeError, match="not_there"):
        cfg.not_there
    assert load_config("beta", params_dir=params_dir).values == {"seed": 1}


def test_unknown_override_key(params_dir):
    with pytest.raises(KeyError, match="sae_l") as ei:
        load_config("alpha", {"sae_l": 1e-3}, params_dir=params_dir)
    assert "sae_lr" in str(ei.value)  # lists the known parameters


def test_missing_profile_lists_available(params_dir):
    with pytest.raises(FileNotFoundError, match="gamma") as ei:
        load_config("gamma", params_dir=params_dir)
    assert "['alpha', 'beta']" in str(ei.value)


def test_repository_profiles_load():
    avail = sorted(p.stem for p in (repo_root() / "params").glob("*.yaml"))
    assert {"default", "smoke"} <= set(avail)
    for profile in ("default", "smoke"):
        cfg = load_config(profile)
        assert cfg.overrides == {} and "seed" in cfg.values


def test_config_table(params_dir):
    cfg = load_config("alpha", {"seed": 3}, params_dir=params_dir)
    tab = cfg.table()
    assert list(tab.index) == ["seed", "sae_lr", "main_dataset", "metadata_keys"]
    assert tab.loc["seed", "value"] == "3" and tab.loc["seed", "source"] == "override"
    assert tab.loc["sae_lr", "value"] == "0.0001"
    assert tab.loc["sae_lr", "source"] == "params/alpha.yaml"
    assert tab.loc["main_dataset", "value"] == "kang2018_pbmc_ctrl"  # strings are not quoted
    assert tab.loc["metadata_keys", "value"] == '["cell_type", "donor_id"]'
    sub = cfg.table(["main_dataset", "seed"])
    assert list(sub.index) == ["main_dataset", "seed"]
    with pytest.raises(KeyError):
        cfg.table(["nope"])


def test_config_artifacts_folder(tmp_path):
    cfg = Config("p", {"artifacts_dir": str(tmp_path / "art")})
    assert cfg.artifacts == tmp_path / "art" / "p" and cfg.artifacts.is_dir()


def test_atomic_write_replaces(tmp_path):
    path = tmp_path / "out" / "f.txt"
    atomic_write(path, lambda tmp: open(tmp, "w").write("one"))
    atomic_write(path, lambda tmp: open(tmp, "w").write("two"))
    assert path.read_text() == "two"
    assert os.listdir(path.parent) == ["f.txt"]
    assert (path.stat().st_mode & 0o777) == 0o644


def test_atomic_write_failure_keeps_old_file(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")

    def failing(tmp):
        with open(tmp, "w") as fh:
            fh.write("half-writ")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, failing)
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]  # no temporary file left
    fresh = tmp_path / "new.txt"
    with pytest.raises(RuntimeError):
        atomic_write(fresh, failing)
    assert not fresh.exists() and os.listdir(tmp_path) == ["f.txt"]


def test_param_key_is_stable_and_order_free():
    a = param_key({"x": 1, "y": [1, 2]})
    assert a == param_key({"y": [1, 2], "x": 1}) and len(a) == 10
    assert a != param_key({"x": 2, "y": [1, 2]})


def test_attribution_resumes_from_cached_blocks(tmp_path, monkeypatch):
    """An attribution run killed after its first block resumes without recomputing it, and the
    resumed result equals an uninterrupted run."""
    import numpy as np

    import scconcepts.pipeline as pl

    cfg = load_config("smoke", {"artifacts_dir": str(tmp_path / "a"), "attribution_block": 3,
                                "subsample_main": 400, "sae_epochs": 5, "scvi_max_epochs": 2})
    pipe = pl.Pipeline(cfg)
    units = np.arange(7)  # 3 blocks: [0,1,2] [3,4,5] [6]
    import scconcepts.attribution as att

    class Killed(RuntimeError):
        pass

    calls, killed = [], []
    original = att.attribute_units

    def flaky(*args, **kw):
        calls.append(list(args[4]))
        if len(calls) == 2 and not killed:
            killed.append(True)
            raise Killed("killed")
        return original(*args, **kw)

    monkeypatch.setattr(att, "attribute_units", flaky)
    with pytest.raises(Killed):
        pipe.attribution("concept", units=units)
    blocks = list((cfg.artifacts / "attribution" / "blocks").glob("*.npz"))
    assert len(blocks) == 1
    calls.clear()
    resumed = pipe.attribution("concept", units=units)
    assert calls == [[3, 4, 5], [6]]  # the finished block was not recomputed
    assert not list((cfg.artifacts / "attribution" / "blocks").glob("*.npz"))
    monkeypatch.setattr(att, "attribute_units", original)
    fresh = pl.Pipeline(load_config("smoke", {**cfg.overrides,
                                              "artifacts_dir": str(tmp_path / "b")}))
    again = fresh.attribution("concept", units=units)
    np.testing.assert_array_equal(resumed.units, again.units)
    np.testing.assert_allclose(resumed.scores, again.scores, atol=1e-6, equal_nan=True)


def test_sample_units_is_seeded_and_bounded(tmp_path):
    import numpy as np

    from scconcepts.pipeline import Pipeline

    cfg = load_config("smoke", {"artifacts_dir": str(tmp_path), "subsample_main": 300,
                                "sae_epochs": 2, "scvi_max_epochs": 1})
    pipe = Pipeline(cfg)
    a = pipe.sample_units(100, 4, n=5)
    b = pipe.sample_units(100, 4, n=5)
    assert len(a) == 5 and np.array_equal(a, b) and np.all(np.diff(a) > 0)
    active = np.flatnonzero(pipe.codes(100, 4).getnnz(axis=0) > 0)
    assert set(a) <= set(active)
    assert np.array_equal(pipe.sample_units(100, 4, n=10_000), active)
