"""Cached pipeline steps shared by the notebooks.

Every expensive result (scVI model and embeddings, SAE weights, attributions, GSEA tables) is
written under ``artifacts/<profile>/`` in a file whose name carries a hash of the parameters
that made it, written atomically (temporary file + rename). Any notebook can run alone: it loads
what exists and computes what is missing through the same functions, so a rerun resumes from
cached artefacts and a changed parameter never reuses a stale result.

Profiles are flat YAML files ``params/<profile>.yaml``; notebooks receive ``profile`` and
``params`` (overrides) as papermill parameters and call :func:`load_config`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import yaml

from . import data as sc_data
from .utils import atomic_write, param_key

__all__ = ["Config", "load_config", "repo_root", "Pipeline"]


def repo_root() -> Path:
    """Repository root (``$SCCONCEPTS_ROOT`` or two levels above ``src/scconcepts``)."""
    env = os.environ.get("SCCONCEPTS_ROOT")
    return Path(env) if env else Path(__file__).resolve().parents[2]


@dataclass
class Config:
    """Run parameters of one profile, with overrides applied.

    Attribute access reads ``values`` (``cfg.seed`` ≡ ``cfg.values["seed"]``).
    """

    profile: str
    values: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name):
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(f"Parameter {name!r} is not set in profile {self.__dict__.get('profile')!r}")

    def table(self, keys=None) -> pd.DataFrame:
        """Run-parameters table (the values actually used), optionally limited to ``keys``."""
        keys = list(self.values) if keys is None else list(keys)
        rows = [{"parameter": k, "value": json.dumps(self.values[k]) if not isinstance(
            self.values[k], str) else self.values[k],
                 "source": "override" if k in self.overrides else f"params/{self.profile}.yaml"}
                for k in keys]
        return pd.DataFrame(rows).set_index("parameter")

    @property
    def artifacts(self) -> Path:
        path = Path(self.values.get("artifacts_dir") or repo_root() / "artifacts") / self.profile
        path.mkdir(parents=True, exist_ok=True)
        return path


def load_config(profile: str = "default", params: dict | None = None,
                params_dir: str | os.PathLike | None = None) -> Config:
    """Read ``params/<profile>.yaml`` and apply ``params`` on top.

    Raises
    ------
    FileNotFoundError
        If the profile file does not exist (lists the available ones).
    KeyError
        If an override names a parameter the profile does not define (likely a typo).
    """
    pdir = Path(params_dir) if params_dir else repo_root() / "params"
    path = pdir / f"{profile}.yaml"
    if not path.exists():
        avail = sorted(p.stem for p in pdir.glob("*.yaml"))
        raise FileNotFoundError(f"No profile {profile!r} ({path}); available: {avail}.")
    values = yaml.safe_load(path.read_text()) or {}
    params = dict(params or {})
    unknown = [k for k in params if k not in values]
    if unknown:
        raise KeyError(f"Unknown parameter(s) {unknown} for profile {profile!r}; known: "
                       f"{sorted(values)}.")
    # papermill passes the whole profile; only values that differ count as overrides
    overrides = {k: v for k, v in params.items() if values.get(k) != v}
    values.update(params)
    return Config(profile=profile, values=values, overrides=overrides)


def _subsample(adata: ad.AnnData, n: int | None, seed: int, stratify: str | None) -> ad.AnnData:
    if not n or adata.n_obs <= n:
        return adata
    rng = np.random.default_rng(seed)
    if stratify and stratify in adata.obs:
        # proportional per label, so rare cell types survive in smoke runs
        groups = adata.obs.groupby(stratify, observed=True).indices
        frac = n / adata.n_obs
        idx = np.concatenate([rng.choice(ix, max(1, int(round(len(ix) * frac))), replace=False)
                              for ix in groups.values()])
    else:
        idx = rng.choice(adata.n_obs, n, replace=False)
    return adata[np.sort(idx)].copy()


def _in_blocks(items: np.ndarray, block: int, block_path, compute, load, save) -> list:
    """Run ``compute(sub)`` over blocks of ``items``, caching each finished block.

    A block whose file ``block_path(sub)`` exists is loaded instead of recomputed, so an
    interrupted run resumes from the last finished block. Returns the per-block results in order;
    the caller assembles them and then calls :func:`_drop_blocks`.
    """
    parts = []
    for start in range(0, len(items), block):
        sub = items[start:start + block]
        path = block_path(sub)
        if path.exists():
            parts.append(load(path))
            continue
        part = compute(sub)
        save(part, path)
        parts.append(part)
    return parts


def _drop_blocks(items: np.ndarray, block: int, block_path) -> None:
    for start in range(0, len(items), block):
        block_path(items[start:start + block]).unlink(missing_ok=True)


class Pipeline:
    """Cached steps for one profile: datasets → scVI → SAEs → attribution → GSEA.

    Parameters
    ----------
    cfg
        :class:`Config` from :func:`load_config`.
    """

    def __init__(self, cfg: Config):
        self.cfg = cfg
        torch.set_num_threads(max(1, int(cfg.values.get("torch_threads") or os.cpu_count() or 1)))
        self._cache: dict[str, Any] = {}

    # ---------------------------------------------------------------- datasets
    def dataset(self, role: str = "main") -> ad.AnnData:
        """Validated, optionally subsampled dataset for ``role`` ∈ {main, second, perturbation}.

        The subsample (``subsample_<role>`` parameter) is stratified by cell type when present.
        """
        key = f"dataset:{role}"
        if key not in self._cache:
            name = self.cfg.values[f"{role}_dataset"]
            required = tuple(self.cfg.values.get(f"{role}_required_obs") or ())
            adata = sc_data.load_dataset(name, required_obs=required)
            adata = _subsample(adata, self.cfg.values.get(f"subsample_{role}"), self.cfg.seed,
                               "cell_type" if "cell_type" in adata.obs else "condition")
            self._cache[key] = adata
        return self._cache[key]

    # ---------------------------------------------------------------- scVI
    def scvi_dir(self) -> Path:
        c = self.cfg
        key = param_key({"data": c.main_dataset, "n": c.values.get("subsample_main"),
                         "epochs": c.scvi_max_epochs, "seed": c.seed, "n_latent": 50,
                         "batch": c.scvi_batch_key})
        return c.artifacts / "models" / f"scvi_{key}"

    def scvi_model(self):
        """Reference scVI trained on the main dataset (cached in ``artifacts/``)."""
        from .models import scvi as ms

        if "scvi" not in self._cache:
            c = self.cfg
            self._cache["scvi"] = ms.train_reference(
                self.dataset("main"), self.scvi_dir(), batch_key=c.scvi_batch_key,
                max_epochs=c.scvi_max_epochs, seed=c.seed)
        return self._cache["scvi"]

    def scvi_encoder(self):
        """f: raw counts (n, n_ref_genes) → X_scvi (n, 50), for attribution."""
        from .models import scvi as ms

        return ms.encoder_fn(self.scvi_model())

    def scvi_adata(self, role: str = "main") -> ad.AnnData:
        """Dataset aligned to the scVI genes with ``obsm["X_scvi"]`` (cached embeddings).

        The main dataset is the reference; other roles are mapped as query data
        (``prepare_query_anndata`` + ``load_query_data``).
        """
        from .models import scvi as ms

        key = f"scvi_adata:{role}"
        if key in self._cache:
            return self._cache[key]
        model = self.scvi_model()
        src = self.dataset(role)
        path = self.cfg.artifacts / "embeddings" / (
            f"scvi_{self.scvi_dir().name}_{role}_{param_key({'n': src.n_obs, 'd': src.uns.get('scconcepts_source')})}.npy")
        if role == "main":
            adata = src.copy()
            report = {"n_reference": adata.n_vars, "n_found": adata.n_vars, "missing": []}
        else:
            adata, report = ms.prepare_query(src, self.scvi_dir())
        if path.exists():
            z = np.load(path)
        else:
            if role == "main":
                z = ms.embed(model)
            else:
                z = ms.embed(ms.load_query(adata, self.scvi_dir()), adata)
            atomic_write(path, lambda tmp: np.save(open(tmp, "wb"), z))
        adata.obsm["X_scvi"] = z
        adata.uns["scvi_gene_report"] = {k: v for k, v in report.items() if k != "missing"}
        adata.uns["scvi_missing_genes"] = list(report["missing"])
        self._cache[key] = adata
        return adata

    def umap(self, role: str = "main", rep: str = "X_scvi") -> np.ndarray:
        """2-D UMAP (scanpy: 15-NN graph on ``obsm[rep]``, ``tl.umap``), cached, (n_cells, 2).

        Stored in ``obsm["X_umap"]`` for scVI and ``obsm["X_umap_<model>"]`` otherwise.
        """
        import scanpy as sc

        adata = self.scvi_adata(role)
        if rep == "X_scgpt" and rep not in adata.obsm:
            adata.obsm[rep] = self.scgpt_embeddings(role)
        path = self.cfg.artifacts / "embeddings" / (
            f"umap_{rep}_{self.scvi_dir().name}_{role}_{adata.n_obs}.npy")
        if path.exists():
            xy = np.load(path)
        else:
            tmp = ad.AnnData(obs=adata.obs[[]].copy(), obsm={rep: adata.obsm[rep]})
            # exact sklearn kNN: the pynndescent path of scanpy 1.11 breaks on scipy csr_array
            sc.pp.neighbors(tmp, use_rep=rep, n_neighbors=15, random_state=self.cfg.seed,
                            transformer="sklearn")
            sc.tl.umap(tmp, random_state=self.cfg.seed)
            xy = tmp.obsm["X_umap"].astype(np.float32)
            atomic_write(path, lambda t: np.save(open(t, "wb"), xy))
        adata.obsm["X_umap" if rep == "X_scvi" else f"X_umap_{rep[2:]}"] = xy
        return xy

    def scgpt_checkpoint(self) -> Path:
        """Folder of the scGPT checkpoint (``scgpt_checkpoint``, relative to the repository)."""
        path = Path(self.cfg.scgpt_checkpoint)
        return path if path.is_absolute() else repo_root() / path

    def scgpt_embeddings(self, role: str = "main") -> np.ndarray:
        """CLS embeddings X_scgpt of ``role``'s cells (cached), shape (n_cells, d_model)."""
        from .models import scgpt as ms

        src = self.dataset(role)
        folder = self.scgpt_checkpoint()
        stamp = (folder / "best_model.pt").stat().st_size if (folder / "best_model.pt").exists() else 0
        path = self.cfg.artifacts / "embeddings" / (
            f"scgpt_{folder.name}_{role}_{param_key({'n': src.n_obs, 'ckpt': stamp, 'seed': self.cfg.seed})}.npy")
        if path.exists():
            return np.load(path)
        model, vocab, _ = ms.load_checkpoint(folder)
        z = ms.embed(model, vocab, src, seed=int(self.cfg.seed))
        atomic_write(path, lambda tmp: np.save(open(tmp, "wb"), z))
        return z

    def scgpt_loaded(self):
        """(model, vocab, args) of the scGPT checkpoint, loaded once."""
        from .models import scgpt as ms

        if "scgpt_model" not in self._cache:
            self._cache["scgpt_model"] = ms.load_checkpoint(self.scgpt_checkpoint())
        return self._cache["scgpt_model"]

    def embeddings(self, role: str = "main", model: str = "scvi") -> np.ndarray:
        """Cell embeddings ``obsm["X_<model>"]`` of ``role``'s cells, shape (n_cells, d).

        d = 50 for scVI, ``d_model`` for scGPT (64 for the project model, 512 whole-human).
        """
        adata = self.scvi_adata(role)
        key = f"X_{model}"
        if key not in adata.obsm:
            if model != "scgpt":
                raise ValueError(f"Unknown model {model!r}: expected 'scvi' or 'scgpt'.")
            adata.obsm[key] = self.scgpt_embeddings(role)
        return adata.obsm[key]

    def _emb_tag(self, model: str) -> str:
        """Identifies the embeddings an SAE or attribution was computed from (for cache keys)."""
        if model == "scvi":
            return self.scvi_dir().name
        path = self.scgpt_checkpoint() / "best_model.pt"
        return f"scgpt_{self.scgpt_checkpoint().name}_{path.stat().st_size if path.exists() else 0}"

    def model_settings(self, model: str = "scvi") -> dict:
        """Per-model SAE grid, default size and attribution N_p/N_c (``scgpt_*`` parameters)."""
        v = self.cfg.values
        if model == "scvi":
            return {"grid": v["sae_grid"], "c": v["default_c"], "k": v["default_k"],
                    "np": v["n_prototypes"], "nc": v["n_counterfactuals"]}
        if model == "scgpt":
            return {"grid": v["scgpt_sae_grid"], "c": v["scgpt_default_c"],
                    "k": v["scgpt_default_k"], "np": v["scgpt_n_prototypes"],
                    "nc": v["scgpt_n_counterfactuals"]}
        raise ValueError(f"Unknown model {model!r}: expected 'scvi' or 'scgpt'.")

    def _model_input(self, role: str, model: str):
        """(expression, genes, f) of ``model`` for attribution: raw counts in the model's genes."""
        if model == "scvi":
            adata = self.scvi_adata(role)
            return adata.X, list(adata.var_names), self.scvi_encoder()
        from .models import scgpt as ms
        from .models.scgpt_occlusion import ScGPTOcclusion

        src = self.dataset(role)
        net, vocab, _ = self.scgpt_loaded()
        genes = ms.match_genes(src, vocab)["found"]
        X = sp.csr_matrix(ms._counts(src, None)[:, src.var_names.get_indexer(genes)])
        return X, genes, ScGPTOcclusion(net, vocab, genes, seed=int(self.cfg.seed))

    def knn_accuracy(self, role: str = "main", key: str = "cell_type",
                     scgpt: bool = False) -> pd.DataFrame:
        """k-NN (k = 15, 5-fold) cell-type accuracy of scVI (and scGPT) embeddings vs PCA."""
        from .downstream import knn_table, pca_of_counts

        adata = self.scvi_adata(role)
        src = self.dataset(role)
        reps = {"scVI (X_scvi)": adata.obsm["X_scvi"]}
        if scgpt:
            reps["scGPT, project-pretrained (X_scgpt)"] = self.scgpt_embeddings(role)
        reps["PCA of log-normalised counts"] = pca_of_counts(src, seed=self.cfg.seed)
        return knn_table(reps, adata.obs[key].astype(str).to_numpy(), seed=self.cfg.seed)

    # ---------------------------------------------------------------- SAEs
    def sae_config(self, c: int, k: int, model: str = "scvi", role: str = "main", seed=None):
        from .sae import SAEConfig

        cf = self.cfg
        d = self.embeddings(role, model).shape[1]
        return SAEConfig(d=d, c=int(c), k=int(k), aux_k=int(cf.sae_aux_k), lr=float(cf.sae_lr),
                         epochs=int(cf.sae_epochs), batch_size=int(cf.sae_batch_size),
                         seed=int(cf.seed if seed is None else seed))

    def sae(self, c: int, k: int, model: str = "scvi", role: str = "main", seed=None):
        """Top-K SAE (ψ) trained on ``obsm["X_<model>"]`` of ``role`` (cached).

        Returns
        -------
        (TopKSAE, dict)
            The SAE and ``{"config", "history", "metrics"}``.
        """
        from . import sae as sae_mod

        config = self.sae_config(c, k, model, role, seed)
        key = f"sae:{model}:{role}:{param_key(config.__dict__)}"
        if key in self._cache:
            return self._cache[key]
        path = (self.cfg.artifacts / "sae" /
                f"{model}_{role}_c{c}_k{k}_{param_key({**config.__dict__, 'emb': self._emb_tag(model)})}.pt")
        A = self.embeddings(role, model)
        if path.exists():
            try:
                sae, meta = sae_mod.load_sae(path)
                self._cache[key] = (sae, meta)
                return self._cache[key]
            except ValueError:
                path.unlink()  # corrupt: retrain below
        sae, hist = sae_mod.train_sae(A, config)
        metrics = sae_mod.sae_metrics(sae, A)
        sae_mod.save_sae(sae, path, config, extra={"history": hist, "metrics": metrics})
        self._cache[key] = (sae, {"config": config.__dict__, "history": hist, "metrics": metrics})
        return self._cache[key]

    def sae_table(self, role: str = "main", model: str = "scvi") -> pd.DataFrame:
        """Table 3 analogue: one row per SAE of ``sae_grid`` with its metrics on ``role``."""
        rows = []
        for c, k in self.model_settings(model)["grid"]:
            _, meta = self.sae(c, k, model, role)
            cf = meta["config"]
            rows.append({"c": c, "k": k, "lr": cf["lr"], "epochs": cf["epochs"],
                         **{m: meta["metrics"][m] for m in
                            ("r2", "active_concepts", "dead_concepts", "l0", "sparsity")}})
        return pd.DataFrame(rows)

    def codes(self, c: int, k: int, model: str = "scvi", role: str = "main",
              sae_role: str | None = None) -> sp.csr_matrix:
        """Concept activations U = ψ(A) of ``role``'s cells, shape (n_cells, c)."""
        from . import sae as sae_mod

        sae, _ = self.sae(c, k, model, sae_role or role)
        return sae_mod.encode(sae, self.embeddings(role, model))

    def categories(self, c: int | None = None, k: int | None = None, model: str = "scvi",
                   role: str = "main") -> pd.DataFrame:
        """Sec 3.1 categories of every concept of SAE (c, k) on ``role``'s cells."""
        from .concepts import categorize_concepts

        ms = self.model_settings(model)
        c = int(c or ms["c"])
        k = int(k or ms["k"])
        return categorize_concepts(self.codes(c, k, model, role), self.scvi_adata(role).obs,
                                   keys=self.cfg.metadata_keys,
                                   threshold=float(self.cfg.specificity_threshold),
                                   min_cells=int(self.cfg.min_cells))

    # ---------------------------------------------------------------- attribution
    def attribution(self, kind: str = "concept", model: str = "scvi", c: int | None = None,
                    k: int | None = None, units=None, role: str = "main"):
        """Counterfactual occlusion attribution (Eq 1–3) for concepts or neurons (cached).

        ``units=None`` means, for scVI, every concept that activates at least once
        (``kind="concept"``) or every neuron (``kind="neuron"``); for scGPT, whose forward pass
        is ~100× costlier, the interpretation sample: ``gsea_n_units`` seeded random active
        concepts or neurons (:meth:`sample_units`, :meth:`sample_neurons`). N_p and N_c are
        ``n_prototypes``/``n_counterfactuals`` for scVI and ``scgpt_n_*`` for scGPT.
        """
        from .attribution import (AttributionResult, NeuronReadout, SAEReadout, UnitFunction,
                                  attribute_units)
        from . import sae as sae_mod

        cf = self.cfg
        ms = self.model_settings(model)
        c = int(c or ms["c"])
        k = int(k or ms["k"])
        A = self.embeddings(role, model)
        if kind == "concept":
            sae, _ = self.sae(c, k, model, role)
            readout = SAEReadout(sae)
            acts = sae_mod.encode(sae, A)
            if units is None:
                units = (np.flatnonzero(acts.getnnz(axis=0) > 0) if model == "scvi" else
                         self.sample_units(c, k, int(cf.gsea_n_units), model, role))
            tag = f"concept_c{c}_k{k}"
        elif kind == "neuron":
            readout = NeuronReadout.from_embeddings(A)
            acts = A - readout.median.numpy()
            if units is None:
                units = (np.arange(A.shape[1]) if model == "scvi" else
                         self.sample_neurons(int(cf.gsea_n_units), model, role))
            tag = "neuron"
        else:
            raise ValueError(f"kind must be 'concept' or 'neuron', not {kind!r}")
        units = np.asarray(units, dtype=int)
        common = {"np": ms["np"], "nc": ms["nc"],
                  "sae": self.sae_config(c, k, model, role).__dict__ if kind == "concept" else None,
                  "emb": self._emb_tag(model), "role": role, "n": A.shape[0]}
        key = param_key({"units": units.tolist(), **common})
        path = cf.artifacts / "attribution" / f"{model}_{role}_{tag}_{key}.npz"
        if path.exists():
            return AttributionResult.load(path)
        block = int(cf.values.get("attribution_block") or 100)
        X, genes, f = self._model_input(role, model)
        unit_fn = UnitFunction(f, readout)

        def block_path(sub):
            return (cf.artifacts / "attribution" / "blocks" /
                    f"{model}_{role}_{tag}_{param_key({'units': sub.tolist(), **common})}.npz")

        parts = _in_blocks(
            units, block, block_path,
            compute=lambda sub: attribute_units(
                unit_fn, X, A, acts, sub, genes,
                n_prototypes=int(ms["np"]), n_counterfactuals=int(ms["nc"])),
            load=AttributionResult.load, save=lambda part, path: part.save(path))
        res = AttributionResult.concat(parts)
        res.save(path)
        _drop_blocks(units, block, block_path)
        return res

    def sample_units(self, c: int, k: int, n: int | None = None, model: str = "scvi",
                     role: str = "main") -> np.ndarray:
        """Seeded random sample of at most ``n`` (``attribution_grid_max_units``) active concepts."""
        codes = self.codes(c, k, model, role)
        active = np.flatnonzero(codes.getnnz(axis=0) > 0)
        n = int(n or self.cfg.attribution_grid_max_units)
        if len(active) <= n:
            return active
        rng = np.random.default_rng(self.cfg.seed)
        return np.sort(rng.choice(active, n, replace=False))

    def sample_neurons(self, n: int, model: str = "scvi", role: str = "main") -> np.ndarray:
        """Seeded random sample of at most ``n`` neurons (embedding dimensions)."""
        d = self.embeddings(role, model).shape[1]
        if d <= n:
            return np.arange(d)
        rng = np.random.default_rng(self.cfg.seed + 1)
        return np.sort(rng.choice(d, n, replace=False))

    # ---------------------------------------------------------------- GSEA
    def gsea_units(self, kind: str, attribution) -> np.ndarray:
        """Units sent to GSEA: a seeded random sample of ``gsea_n_units`` attributed units."""
        ok = attribution.units[~np.isnan(attribution.scores).all(1)]
        n = int(self.cfg.gsea_n_units)
        if len(ok) <= n:
            return ok
        rng = np.random.default_rng(self.cfg.seed + (0 if kind == "concept" else 1))
        return np.sort(rng.choice(ok, n, replace=False))

    def gsea(self, kind: str = "concept", model: str = "scvi", c=None, k=None,
             shuffle: bool = False):
        """Attribution-based GSEA summary for the sampled units (cached parquet).

        ``shuffle=True`` runs the shuffled-ranking null on the same units.
        """
        from .enrichment import annotate_units

        cf = self.cfg
        att = self.attribution(kind, model, c, k)
        units = self.gsea_units(kind, att)
        key = param_key({"att": hashlib.sha1(att.scores.tobytes()).hexdigest(),
                         "units": units.tolist(), "perm": cf.gsea_permutations,
                         "strong": cf.gsea_strong_permutations, "lib": cf.gene_sets,
                         "min": cf.gsea_min_size, "seed": cf.seed, "shuffle": shuffle})
        name = f"{model}_{kind}{'_null' if shuffle else ''}"
        path = cf.artifacts / "gsea" / f"{name}_{key}.parquet"
        if path.exists():
            return pd.read_parquet(path)
        gene_sets = sc_data.load_gene_sets(cf.gene_sets)
        block = max(1, int(cf.values.get("gsea_block") or 10))

        def block_path(sub):
            return cf.artifacts / "gsea" / "blocks" / f"{name}_{key}_{param_key(sub.tolist())}.parquet"

        def compute(sub):
            part, _ = annotate_units(
                att, gene_sets, sub, permutations=int(cf.gsea_permutations),
                strong_permutations=int(cf.gsea_strong_permutations),
                min_size=int(cf.gsea_min_size), seed=int(cf.seed),
                threads=int(cf.values.get("gsea_threads") or 1), shuffle=shuffle)
            return part.assign(model=model)

        parts = _in_blocks(units, block, block_path, compute, load=pd.read_parquet,
                           save=lambda part, p: atomic_write(p, part.to_parquet))
        summary = pd.concat(parts, ignore_index=True)
        atomic_write(path, summary.to_parquet)
        _drop_blocks(units, block, block_path)
        return summary
