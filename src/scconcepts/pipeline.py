"""Cached pipeline steps shared by the notebooks.

Every expensive result (scVI model and embeddings, SAE weights, attributions, GSEA tables) is
written under ``artifacts/<profile>/`` in a file whose name carries a hash of the parameters
that made it, written atomically (temporary file + rename). Any notebook can run alone: it loads
what exists and computes what is missing through the same functions, so a rerun resumes from
cached artefacts and a changed parameter never reuses a stale result.

Profiles are flat YAML files ``params/<profile>.yaml``; notebooks receive ``profile`` and
``params`` (overrides) as papermill parameters and call :func:`load_config`.

Paper scale (``params/paper.yaml``; every key is null/off in the default and smoke profiles, whose
behaviour and cache keys do not depend on it):

* ``census_version`` + ``cache_dir``: datasets named by CELLxGENE dataset id are read from the
  download cache (:func:`scconcepts.census.resolve_dataset`), and :class:`Pipeline` checks every
  input at construction (:func:`scconcepts.census.preflight`);
* ``scvi_model: census``: the Census scVI model applied as a query model (no training); its genes
  are Ensembl ids, matched through ``var["feature_id"]``, and the counts it reads keep gene
  symbols as ``var_names`` so attribution genes, GSEA and displays use symbols;
* ``embedding_chunk_size``: embeddings go through the resumable on-disk store of
  :func:`scconcepts.scale.embed_in_chunks`;
* ``attribution_shard_count`` > 1: :meth:`Pipeline.attribution` computes shard
  ``attribution_shard_index`` only; a later run without sharding (or
  :meth:`Pipeline.merge_attribution_shards`) merges the shards with
  :func:`scconcepts.scale.merge_shards`;
* ``sae_table3``: per-SAE learning rate and epochs (:func:`scconcepts.scale.sae_hparams`);
* ``gene_sets``: a library fetched by name into the cache (:func:`scconcepts.census.resolve_gene_sets`).
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

from . import census
from . import data as sc_data
from . import scale
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


def _empty_attribution(kind: str, genes, n_p: int, n_c: int):
    """An :class:`~scconcepts.attribution.AttributionResult` with no unit (an empty shard)."""
    from .attribution import AttributionResult

    m = len(genes)
    return AttributionResult(
        units=np.zeros(0, dtype=np.int64), genes=np.asarray(genes, dtype=str),
        scores=np.zeros((0, m), np.float32), per_prototype=np.zeros((0, n_p, m), np.float32),
        prototypes=np.zeros((0, n_p), np.int64), counterfactuals=np.zeros((0, n_p, n_c), np.int64),
        prototype_activation=np.zeros((0, n_p), np.float32), kind=kind)


def _uses_census(values: dict) -> bool:
    """True for profiles with Census inputs (``census_version`` and ``cache_dir`` both set)."""
    return bool(values.get("census_version")) and bool(values.get("cache_dir"))


class Pipeline:
    """Cached steps for one profile: datasets → scVI → SAEs → attribution → GSEA.

    Parameters
    ----------
    cfg
        :class:`Config` from :func:`load_config`.

    Raises
    ------
    scconcepts.census.PaperInputsMissing
        For a Census profile (``census_version`` and ``cache_dir`` set, e.g. ``paper``) whose
        downloads are not all present; the message lists each one, where it must go and the
        command that gets it. Profiles without Census inputs are not checked.
    ValueError
        If ``scvi_model`` is neither null nor ``"census"``, or the shard settings are invalid.
    """

    def __init__(self, cfg: Config):
        self.cfg = cfg
        torch.set_num_threads(max(1, int(cfg.values.get("torch_threads") or os.cpu_count() or 1)))
        self._cache: dict[str, Any] = {}
        scvi_model = cfg.values.get("scvi_model")
        if scvi_model not in (None, "census"):
            raise ValueError(f"scvi_model must be null (train scVI on main_dataset) or 'census' "
                             f"(the CELLxGENE Census model), not {scvi_model!r}.")
        self._shard()  # validates attribution_shard_index / attribution_shard_count
        if _uses_census(cfg.values):
            census.preflight(cfg)

    # ---------------------------------------------------------------- paper-scale switches
    @property
    def census_scvi(self) -> bool:
        """True when scVI is the CELLxGENE Census model (``scvi_model: census``)."""
        return self.cfg.values.get("scvi_model") == "census"

    def _chunk_size(self) -> int | None:
        n = self.cfg.values.get("embedding_chunk_size")
        return int(n) if n else None

    def _shard(self) -> tuple[int, int]:
        """(index, count) of this job's attribution shard; (0, 1) when not sharding."""
        v = self.cfg.values
        count = int(v.get("attribution_shard_count") or 1)
        index = int(v.get("attribution_shard_index") or 0)
        if count < 1 or not 0 <= index < count:
            raise ValueError(f"attribution_shard_index must be in 0..attribution_shard_count-1 "
                             f"and attribution_shard_count >= 1; got index {index}, count "
                             f"{count}. Set e.g. --set attribution_shard_count=4 --set "
                             "attribution_shard_index=0.")
        return index, count

    def _scvi_tag(self) -> str:
        """Names the scVI model in cache keys (the model folder name, as before, for trained
        models; ``census_scvi_<release>`` for the Census model, whose folder is ``homo_sapiens``)."""
        if self.census_scvi:
            return f"census_scvi_{census.cache_for(self.cfg).version}"
        return self.scvi_dir().name

    def _embedding_source(self, role: str):
        """What :func:`scconcepts.scale.embed_in_chunks` reads for ``role``: the dataset's
        ``.h5ad`` (backed, one chunk in memory) when the dataset is a file and is not subsampled,
        else the loaded dataset. Rows are the rows of :meth:`dataset` either way."""
        resolved = census.resolve_dataset(self.cfg, role)
        path = Path(str(resolved))
        if (path.suffix == ".h5ad" and path.is_file()
                and not self.cfg.values.get(f"subsample_{role}")):
            return path
        return self.dataset(role)

    def _chunked_embeddings(self, name: str, role: str, make_encoder, key: dict) -> np.ndarray:
        """Embeddings of ``role``'s cells through the resumable store ``embeddings/<name>/``.

        ``make_encoder()`` is called only if some chunk is still to be computed.
        """
        built: list = []

        def encode(chunk):
            if not built:
                built.append(make_encoder())
            return built[0](chunk)

        z = scale.embed_in_chunks(self._embedding_source(role), encode,
                                  self.cfg.artifacts / "embeddings" / name,
                                  chunk_size=int(self._chunk_size()), key=key, progress=False)
        if z.shape[0] != self.dataset(role).n_obs:
            raise ValueError(f"The embedding store embeddings/{name} has {z.shape[0]} rows but "
                             f"the {role} dataset has {self.dataset(role).n_obs} cells; delete "
                             "the folder to recompute.")
        return np.array(z, dtype=np.float32)  # in memory, writable (the store stays on disk)

    # ---------------------------------------------------------------- datasets
    def dataset(self, role: str = "main") -> ad.AnnData:
        """Validated, optionally subsampled dataset for ``role`` ∈ {main, second, perturbation}.

        The subsample (``subsample_<role>`` parameter) is stratified by cell type when present.
        """
        key = f"dataset:{role}"
        if key not in self._cache:
            # a Census dataset id becomes its cached .h5ad (PaperInputsMissing if absent)
            name = census.resolve_dataset(self.cfg, role)
            required = tuple(self.cfg.values.get(f"{role}_required_obs") or ())
            adata = sc_data.load_dataset(name, required_obs=required)
            adata = _subsample(adata, self.cfg.values.get(f"subsample_{role}"), self.cfg.seed,
                               "cell_type" if "cell_type" in adata.obs else "condition")
            self._cache[key] = adata
        return self._cache[key]

    # ---------------------------------------------------------------- scVI
    def scvi_dir(self) -> Path:
        """Folder of the scVI ``model.pt``: trained here (cached), or the downloaded Census
        model (``<cache_dir>/models/scvi/<census_version>/homo_sapiens``)."""
        c = self.cfg
        if self.census_scvi:
            return census.cache_for(c).scvi_model_dir()
        key = param_key({"data": c.main_dataset, "n": c.values.get("subsample_main"),
                         "epochs": c.scvi_max_epochs, "seed": c.seed, "n_latent": 50,
                         "batch": c.scvi_batch_key})
        return c.artifacts / "models" / f"scvi_{key}"

    def scvi_model(self):
        """Reference scVI trained on the main dataset (cached in ``artifacts/``), or with
        ``scvi_model: census`` the Census scVI loaded as a query model (not trained;
        :func:`scconcepts.census.load_census_scvi`)."""
        from .models import scvi as ms

        if "scvi" not in self._cache:
            c = self.cfg
            if self.census_scvi:
                model, report = census.load_census_scvi(self.dataset("main"), self.scvi_dir())
                self._cache["scvi"] = model
                self._cache["scvi_report"] = report
                return model
            self._cache["scvi"] = ms.train_reference(
                self.dataset("main"), self.scvi_dir(), batch_key=c.scvi_batch_key,
                max_epochs=c.scvi_max_epochs, seed=c.seed)
        return self._cache["scvi"]

    def scvi_encoder(self):
        """f: raw counts (n, n_ref_genes) → X_scvi (n, 50), for attribution."""
        from .models import scvi as ms

        return ms.encoder_fn(self.scvi_model())

    def _census_aligned(self, src: ad.AnnData) -> tuple[ad.AnnData, dict]:
        """``src`` aligned to the Census scVI genes (model order, absent genes zero-filled).

        The model is indexed by Ensembl ids, matched through ``src.var["feature_id"]``; the
        result keeps gene symbols as ``var_names`` (the Ensembl id where the dataset lacks the
        gene) and the ids in ``var["feature_id"]``, so attribution genes are symbols.
        """
        from .models import scvi as ms

        ref = ms.reference_genes(self.scvi_dir())
        census._check_ensembl(src, "feature_id", ref, 0.2)
        ids = src.var["feature_id"].astype(str).tolist()
        P, n_found = scale._selection_matrix(ids, ref)
        symbol = dict(zip(ids, src.var_names.astype(str)))
        names = pd.Index([symbol.get(g, g) for g in ref])
        if names.has_duplicates:  # a symbol equal to another gene's Ensembl id: keep ids
            names = pd.Index(ref)
        X = sp.csr_matrix(sp.csr_matrix(src.X, dtype=np.float32) @ P, dtype=np.float32)
        adata = ad.AnnData(X=X, obs=src.obs.copy(),
                           var=pd.DataFrame({"feature_id": list(ref)}, index=names),
                           obsm={k: np.asarray(v) for k, v in src.obsm.items()},
                           uns={"scconcepts_source": src.uns.get("scconcepts_source")})
        found = set(ids)
        report = {"n_reference": len(ref), "n_found": int(n_found),
                  "missing": [g for g in ref if g not in found]}
        return adata, report

    def _scvi_chunk_encoder(self):
        """Chunk encoder of the scVI model (:mod:`scconcepts.scale`), on ``device`` with ``amp``."""
        c = self.cfg
        device, amp = c.values.get("device"), bool(c.values.get("amp"))
        if self.census_scvi:
            return census.census_scvi_encoder(self.scvi_model(), self.scvi_dir(), device=device,
                                              amp=amp)
        return scale.scvi_chunk_encoder(self.scvi_model(), device=device, amp=amp)

    def scvi_adata(self, role: str = "main") -> ad.AnnData:
        """Dataset aligned to the scVI genes with ``obsm["X_scvi"]`` (cached embeddings).

        The main dataset is the reference; other roles are mapped as query data
        (``prepare_query_anndata`` + ``load_query_data``). With the Census model every role is a
        query, aligned through ``var["feature_id"]`` with symbols kept as ``var_names``. With
        ``embedding_chunk_size`` the embeddings come from the resumable store
        ``embeddings/scvi_<model>_<role>_<key>/`` (:func:`scconcepts.scale.embed_in_chunks`).
        """
        from .models import scvi as ms

        key = f"scvi_adata:{role}"
        if key in self._cache:
            return self._cache[key]
        model = self.scvi_model()
        src = self.dataset(role)
        stem = (f"scvi_{self._scvi_tag()}_{role}_"
                f"{param_key({'n': src.n_obs, 'd': src.uns.get('scconcepts_source')})}")
        path = self.cfg.artifacts / "embeddings" / f"{stem}.npy"
        if self.census_scvi:
            adata, report = self._census_aligned(src)
        elif role == "main":
            adata = src.copy()
            report = {"n_reference": adata.n_vars, "n_found": adata.n_vars, "missing": []}
        else:
            adata, report = ms.prepare_query(src, self.scvi_dir())
        chunk = self._chunk_size()
        if chunk:
            amp = bool(self.cfg.values.get("amp"))
            z = self._chunked_embeddings(
                f"{stem}_chunks{chunk}{'_amp' if amp else ''}", role, self._scvi_chunk_encoder,
                {"model": self._scvi_tag(), "scvi_dir": str(self.scvi_dir()), "role": role,
                 "n": src.n_obs, "source": src.uns.get("scconcepts_source"), "amp": amp})
        elif path.exists():
            z = np.load(path)
        else:
            if self.census_scvi:
                z = self._scvi_chunk_encoder()(src)
            elif role == "main":
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
        path = self._umap_path(role, rep, adata.n_obs)
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

    def _umap_path(self, role: str, rep: str, n_obs: int) -> Path:
        """Cache file of :meth:`umap`, keyed by the embeddings it is computed from (a retrained
        scGPT gets a new UMAP, not the old model's)."""
        tag = self._scvi_tag()  # the rows are those of the scVI-aligned dataset
        if rep == "X_scgpt":
            tag = f"{tag}_{self._emb_tag('scgpt')}"
        return self.cfg.artifacts / "embeddings" / f"umap_{rep}_{tag}_{role}_{n_obs}.npy"

    def scgpt_checkpoint(self) -> Path:
        """Folder of the scGPT checkpoint (``scgpt_checkpoint``, relative to the repository)."""
        path = Path(self.cfg.scgpt_checkpoint)
        return path if path.is_absolute() else repo_root() / path

    def scgpt_embeddings(self, role: str = "main") -> np.ndarray:
        """CLS embeddings X_scgpt of ``role``'s cells (cached), shape (n_cells, d_model).

        With ``embedding_chunk_size`` they go through the resumable store
        ``embeddings/scgpt_<checkpoint>_<role>_<key>/`` (:func:`scconcepts.scale.scgpt_chunk_encoder`,
        on ``device``, fp16 autocast on CUDA when ``amp``).
        """
        from .models import scgpt as ms

        src = self.dataset(role)
        folder = self.scgpt_checkpoint()
        stamp = self._scgpt_stamp()
        stem = (f"scgpt_{folder.name}_{role}_"
                f"{param_key({'n': src.n_obs, 'ckpt': stamp, 'seed': self.cfg.seed})}")
        path = self.cfg.artifacts / "embeddings" / f"{stem}.npy"
        chunk = self._chunk_size()
        if chunk:
            v = self.cfg.values
            amp = bool(v.get("amp"))

            def make_encoder():
                net, vocab, _ = self.scgpt_loaded()
                return scale.scgpt_chunk_encoder(net, vocab, seed=int(self.cfg.seed), amp=amp,
                                                 device=v.get("device"))

            return self._chunked_embeddings(
                f"{stem}_chunks{chunk}{'_amp' if amp else ''}", role, make_encoder,
                {"model": f"scgpt_{folder.name}_{stamp}", "role": role, "n": src.n_obs,
                 "source": src.uns.get("scconcepts_source"), "seed": int(self.cfg.seed),
                 "amp": amp})
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
            return self._scvi_tag()
        return f"scgpt_{self.scgpt_checkpoint().name}_{self._scgpt_stamp()}"

    def _scgpt_stamp(self) -> str:
        """Content fingerprint of the scGPT weights (SHA-1 of ``best_model.pt``, 12 hex digits).

        A retrained model of the same size must not reuse the old model's cached embeddings,
        SAEs or attributions, so the file's bytes, not its size, key the caches.
        """
        if "scgpt_stamp" not in self._cache:
            path = self.scgpt_checkpoint() / "best_model.pt"
            h = hashlib.sha1()
            if path.exists():
                with open(path, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        h.update(block)
            self._cache["scgpt_stamp"] = h.hexdigest()[:12] if path.exists() else "none"
        return self._cache["scgpt_stamp"]

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
        # Table 3 per-SAE values when sae_table3 is set, else sae_lr / sae_epochs (as before)
        lr, epochs = scale.sae_hparams(cf.values, model, c, k)
        return SAEConfig(d=d, c=int(c), k=int(k), aux_k=int(cf.sae_aux_k), lr=float(lr),
                         epochs=int(epochs), batch_size=int(cf.sae_batch_size),
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
    def _attribution_plan(self, kind: str, model: str, c, k, units, role: str) -> dict:
        """Readout, activations, units and cache names of one attribution (no computation)."""
        from .attribution import NeuronReadout, SAEReadout
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
        stem = f"{model}_{role}_{tag}_{param_key({'units': units.tolist(), **common})}"
        return {"A": A, "readout": readout, "acts": acts, "units": units, "tag": tag,
                "common": common, "ms": ms, "stem": stem,
                "path": cf.artifacts / "attribution" / f"{stem}.npz",
                "shards": cf.artifacts / "attribution" / "shards"}

    def attribution(self, kind: str = "concept", model: str = "scvi", c: int | None = None,
                    k: int | None = None, units=None, role: str = "main"):
        """Counterfactual occlusion attribution (Eq 1–3) for concepts or neurons (cached).

        ``units=None`` means, for scVI, every concept that activates at least once
        (``kind="concept"``) or every neuron (``kind="neuron"``); for scGPT, whose forward pass
        is ~100× costlier, the interpretation sample: ``gsea_n_units`` seeded random active
        concepts or neurons (:meth:`sample_units`, :meth:`sample_neurons`). N_p and N_c are
        ``n_prototypes``/``n_counterfactuals`` for scVI and ``scgpt_n_*`` for scGPT.

        With ``attribution_shard_count`` = n > 1 only shard ``attribution_shard_index`` of the
        units is computed (:func:`scconcepts.scale.shard_units`, a contiguous range of the
        sorted units) and returned, saved as ``attribution/shards/<stem>_shard<i>of<n>.npz``.
        Without sharding, a complete set of shards of the same attribution is merged
        (:meth:`merge_attribution_shards`) instead of recomputing; an incomplete set raises.

        Raises
        ------
        FileNotFoundError
            Without sharding, when some but not all shards of this attribution exist (the
            message lists the missing shard indices and how to run them).
        """
        from .attribution import AttributionResult, UnitFunction, attribute_units

        cf = self.cfg
        plan = self._attribution_plan(kind, model, c, k, units, role)
        units, common, ms, tag = plan["units"], plan["common"], plan["ms"], plan["tag"]
        path = plan["path"]
        shard, n_shards = self._shard()
        if n_shards > 1:
            out = scale.shard_path(plan["shards"], plan["stem"], shard, n_shards)
            if out.exists():
                return AttributionResult.load(out)
            units = scale.shard_units(units, shard, n_shards)
        elif path.exists():
            return AttributionResult.load(path)
        else:
            merged = self._merge_shards(plan, require=False)
            if merged is not None:
                return merged
        block = int(cf.values.get("attribution_block") or 100)
        X, genes, f = self._model_input(role, model)
        if n_shards > 1 and len(units) == 0:  # more shards than units: an empty shard
            res = _empty_attribution(kind, genes, int(ms["np"]), int(ms["nc"]))
            res.save(out)
            return res
        unit_fn = UnitFunction(f, plan["readout"])

        def block_path(sub):
            return (cf.artifacts / "attribution" / "blocks" /
                    f"{model}_{role}_{tag}_{param_key({'units': sub.tolist(), **common})}.npz")

        parts = _in_blocks(
            units, block, block_path,
            compute=lambda sub: attribute_units(
                unit_fn, X, plan["A"], plan["acts"], sub, genes,
                n_prototypes=int(ms["np"]), n_counterfactuals=int(ms["nc"])),
            load=AttributionResult.load, save=lambda part, path: part.save(path))
        res = AttributionResult.concat(parts)
        res.save(out if n_shards > 1 else path)
        _drop_blocks(units, block, block_path)
        return res

    def _merge_shards(self, plan: dict, require: bool):
        """Merge the complete shard set of ``plan`` into its unsharded cache file.

        Returns None when no shard exists (and ``require`` is False).
        """
        from .attribution import AttributionResult

        found: dict[int, list[int]] = {}
        prefix = f"{plan['stem']}_shard"
        for p in plan["shards"].glob(f"{prefix}*of*.npz"):
            i, _, n = p.stem[len(prefix):].partition("of")
            if i.isdigit() and n.isdigit():
                found.setdefault(int(n), []).append(int(i))
        if not found:
            if not require:
                return None
            raise FileNotFoundError(
                f"No attribution shards of {plan['stem']} in {plan['shards']}. Run the shards "
                "first: --set attribution_shard_count=<n> --set attribution_shard_index=<i> "
                "for i = 0..n-1 (README 'Run at paper scale').")
        complete = [n for n, idx in found.items() if len(set(idx)) == n]
        n = max(complete) if complete else max(found, key=lambda m: len(found[m]))
        try:
            merged = scale.merge_shards(plan["shards"], plan["stem"], n, units=plan["units"])
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"{err} Or delete {plan['shards']}/{prefix}*of{n:03d}.npz to compute this "
                "attribution without sharding.") from None
        # rows in the order of the requested units, as an unsharded run returns them
        rows = np.searchsorted(merged.units, plan["units"])
        for key in ("units", "scores", "per_prototype", "prototypes", "counterfactuals",
                    "prototype_activation"):
            setattr(merged, key, getattr(merged, key)[rows])
        merged.save(plan["path"])
        return AttributionResult.load(plan["path"])

    def merge_attribution_shards(self, kind: str = "concept", model: str = "scvi",
                                 c: int | None = None, k: int | None = None, units=None,
                                 role: str = "main"):
        """Merge the shards of one attribution (same arguments as :meth:`attribution`).

        Checks with :func:`scconcepts.scale.merge_shards` that every shard is present and that
        their units are exactly the requested ones, writes the result where an unsharded
        :meth:`attribution` caches it (so later chapters load it) and returns it. A run without
        sharding does this by itself; this method is for checking after the shard jobs.

        Raises
        ------
        FileNotFoundError
            If no shard or not every shard exists (lists the missing indices).
        ValueError
            If the shards hold other units than the requested set.
        """
        return self._merge_shards(self._attribution_plan(kind, model, c, k, units, role),
                                  require=True)

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
        if self._shard()[1] > 1:
            raise ValueError(
                "GSEA needs the whole attribution, but attribution_shard_count > 1 makes "
                "attribution compute one shard. Run the shard jobs of chapter 04, then this step "
                "without --set attribution_shard_count (the shards are merged automatically).")
        att = self.attribution(kind, model, c, k)
        units = self.gsea_units(kind, att)
        key = param_key({"att": hashlib.sha1(att.scores.tobytes()).hexdigest(),
                         "units": units.tolist(), "perm": cf.gsea_permutations,
                         "strong": cf.gsea_strong_permutations,
                         "strong_method": cf.values.get("gsea_strong_method", "permutation"),
                         "lib": cf.gene_sets,
                         "min": cf.gsea_min_size, "seed": cf.seed, "shuffle": shuffle})
        name = f"{model}_{kind}{'_null' if shuffle else ''}"
        path = cf.artifacts / "gsea" / f"{name}_{key}.parquet"
        if path.exists():
            return pd.read_parquet(path)
        # bundled name, or the cached GMT of a library fetched by name (paper: GO 2025)
        gene_sets = sc_data.load_gene_sets(census.resolve_gene_sets(cf))
        block = max(1, int(cf.values.get("gsea_block") or 10))

        def block_path(sub):
            return cf.artifacts / "gsea" / "blocks" / f"{name}_{key}_{param_key(sub.tolist())}.parquet"

        def compute(sub):
            part, _ = annotate_units(
                att, gene_sets, sub, permutations=int(cf.gsea_permutations),
                strong_permutations=int(cf.gsea_strong_permutations),
                strong_method=str(cf.values.get("gsea_strong_method", "permutation")),
                min_size=int(cf.gsea_min_size), seed=int(cf.seed),
                threads=int(cf.values.get("gsea_threads") or 1), shuffle=shuffle)
            return part.assign(model=model)

        parts = _in_blocks(units, block, block_path, compute, load=pd.read_parquet,
                           save=lambda part, p: atomic_write(p, part.to_parquet))
        summary = pd.concat(parts, ignore_index=True)
        atomic_write(path, summary.to_parquet)
        _drop_blocks(units, block, block_path)
        return summary
