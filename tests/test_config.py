"""Typed layered profiles (:mod:`scconcepts.config`) and the runner's early validation."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from scconcepts.config import ConfigError, Profile, load_config, parse_overrides, repo_root
from scconcepts.utils import atomic_write, param_key

REPO = repo_root()


@pytest.fixture
def params_dir(tmp_path):
    d = tmp_path / "params"
    d.mkdir()
    (d / "default.yaml").write_text((REPO / "params" / "default.yaml").read_text())
    (d / "child.yaml").write_text("extends: default\nseed: 3\nsae: {epochs: 7}\n"
                                  "models: {scgpt: null, scvi: {c: 200, k: 3}}\n")
    (d / "loop.yaml").write_text("extends: loop\n")
    return d


def test_repository_profiles_validate_and_extend_default():
    for name in ("default", "smoke", "paper"):
        cfg = load_config(name)
        assert isinstance(cfg, Profile) and cfg.name == name and cfg.overrides == {}
    for name in ("smoke", "paper"):
        raw = yaml.safe_load((REPO / "params" / f"{name}.yaml").read_text())
        assert raw["extends"] == "default"
        assert len(str(raw)) < len(str(yaml.safe_load((REPO / "params/default.yaml").read_text())))


def test_extends_merges_key_by_key_and_null_removes_a_model(params_dir):
    cfg = load_config("child", params_dir=params_dir)
    base = load_config("default", params_dir=params_dir)
    assert cfg.seed == 3 and cfg.sae.epochs == 7 and cfg.sae.lr == base.sae.lr
    assert list(cfg.models) == ["scvi"] and (cfg.models["scvi"].c, cfg.models["scvi"].k) == (200, 3)
    assert cfg.models["scvi"].grid == base.models["scvi"].grid
    tab = cfg.table(["seed", "sae.epochs", "sae.lr"])
    assert list(tab["source"]) == ["params/child.yaml", "params/child.yaml", "params/default.yaml"]
    with pytest.raises(ConfigError, match="circle"):
        load_config("loop", params_dir=params_dir)
    with pytest.raises(ConfigError, match="available"):
        load_config("nope", params_dir=params_dir)


def test_dotted_and_flat_overrides():
    cfg = load_config("default", {"models.scgpt.n_prototypes": 10, "main_dataset": "x.h5ad",
                                  "sae_epochs": 5, "main_counts_layer": "counts"})
    assert cfg.models["scgpt"].n_prototypes == 10 and cfg.data.main.dataset == "x.h5ad"
    assert cfg.sae.epochs == 5 and cfg.data.main.counts_layer == "counts"
    assert cfg.overrides == {"models.scgpt.n_prototypes": 10, "data.main.dataset": "x.h5ad",
                             "sae.epochs": 5, "data.main.counts_layer": "counts"}
    assert cfg.table(["sae.epochs"]).loc["sae.epochs", "source"] == "override"
    assert parse_overrides(["a.b=1", "c=[1, 2]", "d=null"]) == {"a.b": 1, "c": [1, 2], "d": None}
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["novalue"])


def test_a_new_model_block_through_overrides():
    cfg = load_config("default", {"models.pca.c": 100, "models.pca.k": 2})
    assert list(cfg.models) == ["scvi", "scgpt", "pca"]
    assert cfg.models["pca"].n_comps == 50
    with pytest.raises(ConfigError, match="registered"):
        load_config("default", {"models.bert.c": 1})


@pytest.mark.parametrize("over, needle", [
    ({"main_datset": "x"}, "main_dataset"),
    ({"sae.epoch": 3}, "sae.epochs"),
    ({"models.scgpt.n_prototype": 3}, "models.scgpt.n_prototypes"),
    ({"sae.epochs": "many"}, "sae.epochs"),
    ({"gsea.strong_method": "fast"}, "multilevel"),
    ({"models.scvi.c": 123}, "grid"),
    ({"perturbation.models": ["bert"]}, "bert"),
    ({"scale.attribution_shard_index": 3}, "attribution_shard_index"),
])
def test_bad_keys_and_values_name_the_fix(over, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config("default", over)


def test_unknown_key_in_a_profile_file(tmp_path):
    d = tmp_path / "p"
    d.mkdir()
    (d / "default.yaml").write_text((REPO / "params" / "default.yaml").read_text())
    (d / "bad.yaml").write_text("extends: default\ngsea: {permutatons: 5}\n")
    with pytest.raises(ConfigError, match="gsea.permutations"):
        load_config("bad", params_dir=d)


def test_runner_rejects_a_typo_before_any_kernel():
    """Acceptance: `--set main_datset=x` exits non-zero naming main_dataset, before any kernel
    starts (no wall-clock limit: the check is that nothing was executed)."""
    proc = subprocess.run([sys.executable, "-m", "scconcepts.book", "execute", "--only", "02",
                           "--set", "main_datset=x"], capture_output=True, text=True, cwd=REPO,
                          timeout=60, env={**os.environ, "MPLBACKEND": "Agg"})
    out = proc.stderr + proc.stdout
    assert proc.returncode != 0
    assert "main_dataset" in out
    assert "Traceback" not in proc.stderr
    assert "executing" not in out and "Kernel" not in out  # failed before the runner's plan


def test_artifacts_folder(tmp_path):
    cfg = load_config("smoke", {"artifacts_dir": str(tmp_path / "art")})
    assert cfg.artifacts == tmp_path / "art" / "smoke"     # a path: the store creates it
    assert not cfg.artifacts.exists()


def test_atomic_write_replaces_and_failure_keeps_old_file(tmp_path):
    path = tmp_path / "f.txt"
    atomic_write(path, lambda tmp: open(tmp, "w").write("one"))
    atomic_write(path, lambda tmp: open(tmp, "w").write("two"))
    assert path.read_text() == "two" and (path.stat().st_mode & 0o777) == 0o644

    def failing(tmp):
        with open(tmp, "w") as fh:
            fh.write("half-writ")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, failing)
    assert path.read_text() == "two" and os.listdir(tmp_path) == ["f.txt"]


def test_param_key_is_stable_and_order_free():
    a = param_key({"x": 1, "y": [1, 2]})
    assert a == param_key({"y": [1, 2], "x": 1}) and len(a) == 10
    assert a != param_key({"x": 2, "y": [1, 2]})


def test_shared_panel_roles_must_name_a_dataset_role():
    """A typo in ``models.scgpt.shared_panel_roles`` is an error naming the allowed roles."""
    with pytest.raises(ConfigError, match=r"models\.scgpt\.shared_panel_roles: .*'second'"):
        load_config("smoke", {"models.scgpt.shared_panel_roles": ["secnd"]})
    assert load_config("smoke", {"models.scgpt.shared_panel_roles": []}).models[
        "scgpt"].shared_panel_roles == []
