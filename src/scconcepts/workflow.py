"""The book's workflow: thin cached steps over the artefact store and the model adapters.

``Workflow(cfg)`` turns a validated :class:`~scconcepts.config.Profile` into the chain

    dataset(role) → model(name) → embeddings(role, model) → sae(model, c, k, role)
      → codes → attribution(model, kind, role, ...) → gsea(model, kind)

Every step's cache key is a hash of its parameters and of its inputs' keys
(:class:`~scconcepts.store.ArtifactStore`): datasets by content, models by weights or by their
recipe and training data. Method modules (``sae``, ``concepts``, ``attribution``,
``enrichment``, ``dgea``, ``stability``, ...) are pure functions of arrays; this module only
fetches their inputs and caches their outputs. Model names are never tested here: each model is
an adapter (:mod:`scconcepts.models.adapters`) chosen by the profile's ``models`` block.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .config import Profile
from .models.base import FoundationModel, adapter_class
from .store import ArtifactStore, file_fingerprint
from .workflow_attribution import AttributionSteps

__all__ = ["Workflow"]

log = logging.getLogger("scconcepts.workflow")


@dataclass
class _Context:
    """What adapters may use (:class:`scconcepts.models.base.ModelContext`)."""

    workflow: "Workflow"
    seed: int
    device: str | None
    amp: bool

    @property
    def store(self) -> ArtifactStore:
        return self.workflow.store

    def reference(self) -> tuple[ad.AnnData, str]:
        return self.workflow.dataset("main"), self.workflow.dataset_key("main")

    def census_cache(self):
        from .data import census

        return census.cache_for(self.workflow.cfg)


@dataclass
class _EditedContext(_Context):
    """A context whose reference dataset is an edited copy of the main dataset (chapter 04's
    planted programme): an adapter built on it trains on, and is keyed by, the edited data."""

    data: Any = None
    data_key: str = ""

    def reference(self) -> tuple[ad.AnnData, str]:
        return self.data, self.data_key


class Workflow(AttributionSteps):
    """Cached steps for one profile.

    Parameters
    ----------
    cfg
        A validated profile (:func:`scconcepts.config.load_config`).

    Raises
    ------
    scconcepts.data.census.PaperInputsMissing
        For a profile with Census inputs (``scale.census_version`` and ``scale.cache_dir``)
        whose downloads are not all present; the message lists each one and the command.
    """

    def __init__(self, cfg: Profile):
        import torch

        self.cfg = cfg
        self.store = ArtifactStore(cfg.artifacts)
        torch.set_num_threads(max(1, int(cfg.torch_threads or os.cpu_count() or 1)))
        # deterministic kernels wherever torch has them (README, "Reproducibility"): on CPU
        # nearly every op already is; CUDA's cuBLAS needs a fixed workspace, set before it
        # starts. An op without a deterministic kernel warns instead of failing.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        self._ctx = _Context(self, int(cfg.seed), cfg.scale.device, bool(cfg.scale.amp))
        self._adapters: dict[str, FoundationModel] = {}
        if cfg.scale.uses_census:
            from .data import census

            census.preflight(cfg)

    # ------------------------------------------------------------------ datasets
    @property
    def models(self) -> list[str]:
        """Names of the profile's models, in profile order."""
        return list(self.cfg.models)

    def _source(self, role: str) -> str:
        from .data import census

        return census.resolve_dataset(self.cfg, role)

    def dataset_key(self, role: str = "main") -> str:
        """Content key of ``role``'s dataset: the file's bytes and how it was subsampled."""
        spec = getattr(self.cfg.data, role)
        source = self._source(role)
        from .data import _resolve_path

        content = file_fingerprint(_resolve_path(source))
        return self.store.key("dataset", {
            "content": content, "subsample": spec.subsample, "seed": int(self.cfg.seed),
            "counts_layer": spec.counts_layer})

    def dataset(self, role: str = "main") -> ad.AnnData:
        """Validated dataset of ``role`` ∈ {main, second, perturbation}, raw counts in ``X``
        (from ``counts_layer`` when set), optionally subsampled (seeded, by cell type)."""
        from .data import load_dataset, subsample

        spec = getattr(self.cfg.data, role)

        def load():
            adata = load_dataset(self._source(role), required_obs=tuple(spec.required_obs),
                                 counts_layer=spec.counts_layer)
            return subsample(adata, spec.subsample, int(self.cfg.seed),
                             "cell_type" if "cell_type" in adata.obs else "condition")

        return self.store.memo(self.dataset_key(role), load)

    # ------------------------------------------------------------------ models
    def model(self, name: str) -> FoundationModel:
        """The adapter of model ``name`` (a key of the profile's ``models``)."""
        if name not in self._adapters:
            if name not in self.cfg.models:
                raise KeyError(f"Model {name!r} is not in this profile's models "
                               f"({self.models}); add a models.{name} block.")
            self._adapters[name] = adapter_class(name)(self.cfg.models[name], self._ctx)
        return self._adapters[name]

    def settings(self, name: str):
        """The ``models.<name>`` block of the profile."""
        return self.cfg.models[name]

    def label(self, name: str) -> str:
        return self.model(name).display

    # ------------------------------------------------------------------ embeddings
    def embedding_key(self, role: str, model: str) -> str:
        m = self.model(model)
        params = {"seed": int(self.cfg.seed)}
        if hasattr(m, "embed_params"):
            params.update(m.embed_params(role))
        return self.store.key("embedding", params, [m.fingerprint(), self.dataset_key(role)])

    def embeddings(self, role: str = "main", model: str = "scvi") -> np.ndarray:
        """Cell embeddings ``obsm["X_<model>"]`` of ``role``'s cells, (n_cells, d) float32."""
        key = self.embedding_key(role, model)
        m = self.model(model)
        adata = self.dataset(role)
        chunk = self.cfg.scale.embedding_chunk_size
        if chunk and hasattr(m, "chunk_encoder"):
            return self.store.memo(key, lambda: self._chunked(key, role, m))
        return self.store.cached(
            key, ".npy", lambda: np.asarray(m.embed(adata, role), dtype=np.float32),
            ArtifactStore.save_npy, ArtifactStore.load_npy,
            recipe={"step": "embedding", "model": model, "role": role})

    def _chunked(self, key: str, role: str, m) -> np.ndarray:
        """Embeddings through the resumable chunk store (:func:`scconcepts.scale.embed_in_chunks`)."""
        from . import scale
        from .data import _resolve_path

        spec = getattr(self.cfg.data, role)
        source: Any = self.dataset(role)
        path = _resolve_path(self._source(role))  # bundled name, .h5ad or cached Census file
        if path.suffix == ".h5ad" and path.is_file() and not spec.subsample \
                and not spec.counts_layer:
            source = path  # backed: one chunk in memory
        built: list = []

        def encode(chunk):
            if not built:
                built.append(m.chunk_encoder(self.dataset(role), role))
            return built[0](chunk)

        z = scale.embed_in_chunks(source, encode, self.store.path(key),
                                  chunk_size=int(self.cfg.scale.embedding_chunk_size),
                                  key={"key": key}, progress=False)
        n = self.dataset(role).n_obs
        if z.shape[0] != n:
            raise ValueError(f"The embedding store {self.store.path(key)} has {z.shape[0]} rows "
                             f"but the {role} dataset has {n} cells; delete it to recompute.")
        return np.array(z, dtype=np.float32)

    def umap(self, role: str = "main", model: str = "scvi") -> np.ndarray:
        """2-D UMAP of ``model``'s embeddings (scanpy: 15-NN graph, ``tl.umap``), (n_cells, 2)."""
        import scanpy as sc

        emb = self.embedding_key(role, model)
        key = self.store.key("umap", {"n_neighbors": 15, "seed": int(self.cfg.seed)}, [emb])

        def compute():
            tmp = ad.AnnData(obs=pd.DataFrame(index=self.dataset(role).obs_names),
                             obsm={"X": self.embeddings(role, model)})
            # exact sklearn kNN: the pynndescent path of scanpy 1.11 breaks on scipy csr_array
            sc.pp.neighbors(tmp, use_rep="X", n_neighbors=15, random_state=int(self.cfg.seed),
                            transformer="sklearn")
            sc.tl.umap(tmp, random_state=int(self.cfg.seed))
            return tmp.obsm["X_umap"].astype(np.float32)

        return self.store.cached(key, ".npy", compute, ArtifactStore.save_npy,
                                 ArtifactStore.load_npy, recipe={"step": "umap", "model": model})

    def adata(self, role: str = "main", models: list[str] | None = None,
              umap: bool = False) -> ad.AnnData:
        """``role``'s dataset with ``obsm["X_<model>"]`` (and ``obsm["X_umap_<model>"]``)."""
        a = self.dataset(role).copy()
        for m in models or self.models:
            a.obsm[f"X_{m}"] = self.embeddings(role, m)
            if umap:
                a.obsm[f"X_umap_{m}"] = self.umap(role, m)
        return a

    # ------------------------------------------------------------------ SAEs
    def sae_config(self, model: str, c: int | None = None, k: int | None = None,
                   role: str = "main", seed: int | None = None, epochs: int | None = None,
                   decoder_bias: bool = True):
        """:class:`~scconcepts.sae.SAEConfig` of SAE (c, k) on ``model``'s ``role`` embeddings;
        Table 3 rows of the model for that role take precedence over ``sae.lr``/``sae.epochs``
        (``epochs`` is the cap of the stopping rule ``sae.val_fraction``/``tol``/``patience``)."""
        from .sae import SAEConfig

        ms = self.settings(model)
        c, k = int(c or ms.c), int(k or ms.k)
        s = self.cfg.sae
        lr, ep = ms.sae_hparams(c, k, role, s.lr, s.epochs)
        return SAEConfig(d=int(self.embeddings(role, model).shape[1]), c=c, k=k,
                         aux_k=int(s.aux_k), lr=float(lr), epochs=int(epochs or ep),
                         batch_size=int(s.batch_size),
                         seed=int(self.cfg.seed if seed is None else seed),
                         val_fraction=float(s.val_fraction), tol=float(s.tol),
                         patience=int(s.patience), decoder_bias=bool(decoder_bias))

    def sae_key(self, model: str, c=None, k=None, role: str = "main", seed=None,
                epochs=None, decoder_bias: bool = True) -> str:
        config = self.sae_config(model, c, k, role, seed, epochs, decoder_bias)
        params = dict(config.__dict__)
        if params["decoder_bias"]:  # the default (Gao et al.'s b_dec): keys of earlier runs hold
            del params["decoder_bias"]
        return self.store.key("sae", params, [self.embedding_key(role, model)])

    def sae(self, model: str, c: int | None = None, k: int | None = None, role: str = "main",
            seed: int | None = None, epochs: int | None = None, decoder_bias: bool = True):
        """Top-K SAE ψ trained on ``obsm["X_<model>"]`` of ``role`` (cached).

        Returns
        -------
        (TopKSAE, dict)
            The SAE and ``{"config", "history", "metrics"}``: the history of
            :func:`scconcepts.sae.train_sae` (per-epoch train and held-out R², the stopping
            rule, cosine of the atoms to their initialisation) and
            :func:`scconcepts.sae.split_metrics` (``r2`` on the training cells, ``r2_val`` on the
            held-out cells, activity over all cells). ``decoder_bias=False`` trains the paper's
            decoder A' = U Dᵀ (no b_dec; chapter 02's ablation).
        """
        config = self.sae_config(model, c, k, role, seed, epochs, decoder_bias)
        return self._sae(model, role, config,
                         self.sae_key(model, c, k, role, seed, epochs, decoder_bias))

    def _sae(self, model: str, role: str, config, key: str, trained=None):
        from . import sae as sae_mod

        A = self.embeddings(role, model)

        def train():
            sae, hist = trained or sae_mod.train_sae(A, config)
            return sae, {"config": config.__dict__, "history": hist,
                         "metrics": sae_mod.split_metrics(sae, A, hist)}

        def save(value, path):
            sae, meta = value
            sae_mod.save_sae(sae, path, config, extra={"history": meta["history"],
                                                       "metrics": meta["metrics"]})

        return self.store.cached(key, ".pt", train, save, sae_mod.load_sae,
                                 recipe={"step": "sae", "model": model, "role": role})

    def sae_grid(self, model: str, role: str = "main") -> dict:
        """Every SAE of the model's grid, ``{(c, k): (TopKSAE, meta)}`` as :meth:`sae` returns
        them. Those not cached yet are trained side by side in one
        :func:`scconcepts.sae.train_sae_grid` pass (one thread per SAE, ``torch_threads`` at
        once), each exactly as :meth:`sae` would train it, and cached under the same key."""
        from . import sae as sae_mod
        from . import trace

        sizes = [(int(c), int(k)) for c, k in self.settings(model).grid]
        configs = {ck: self.sae_config(model, *ck, role) for ck in sizes}
        keys = {ck: self.sae_key(model, *ck, role) for ck in sizes}

        def missing():
            return [ck for ck in sizes if not self.store.exists(keys[ck], ".pt")]

        if len(missing()) > 1:
            A = self.embeddings(role, model)
            with contextlib.ExitStack() as held:  # another process waits, then loads them
                for key in sorted(keys[ck] for ck in missing()):
                    held.enter_context(self.store.lock(key))
                todo = missing()
                with trace.timed_step(f"sae-grid-{model}-{role}",
                                      members=[keys[ck] for ck in todo]):
                    out = sae_mod.train_sae_grid(A, [configs[ck] for ck in todo])
                trained = dict(zip(todo, out))
                return {ck: self._sae(model, role, configs[ck], keys[ck], trained.get(ck))
                        for ck in sizes}
        return {ck: self._sae(model, role, configs[ck], keys[ck]) for ck in sizes}

    def sae_table(self, model: str, role: str = "main") -> pd.DataFrame:
        """Table 3 analogue: one row per SAE of the model's grid: its optimiser settings, the
        stopping rule (epochs run, converged), R² on the training and on the held-out cells,
        activity over all cells and the mean cosine of its atoms to their initialisation."""
        from .sae import sae_row

        return pd.DataFrame([sae_row(meta) for meta in
                             (m for _, m in self.sae_grid(model, role).values())])

    def sae_grid_held_out(self, model: str, role: str = "main"
                          ) -> tuple[np.ndarray, dict[tuple[int, int], np.ndarray]]:
        """The cells held out by the stopping rule of every SAE of the grid and of the default
        SAE (the same split for one seed; their intersection otherwise) and each SAE's
        reconstruction of them: ``(A_val (n_val, d), {(c, k): Â_val (n_val, d)})``, ordered by
        c, for :func:`scconcepts.claims.scale.r2_step_replicates` and the default's R²."""
        from . import sae as sae_mod

        A = self.embeddings(role, model)
        ms = self.settings(model)
        fits = dict(self.sae_grid(model, role))
        fits.setdefault((int(ms.c), int(ms.k)), self.sae(model, role=role))
        val = None
        for _, meta in fits.values():
            v = sae_mod.cell_split(meta["history"], len(A))[1]
            val = v if val is None else np.intersect1d(val, v)
        a = A[val]
        return a, {ck: sae_mod.reconstruct(sae, a) for ck, (sae, _) in sorted(fits.items())}

    def codes(self, model: str, c: int | None = None, k: int | None = None, role: str = "main",
              sae_role: str | None = None, seed=None, epochs=None) -> sp.csr_matrix:
        """Concept activations U = ψ(A) of ``role``'s cells, (n_cells, c), by the SAE trained on
        ``sae_role`` (default: ``role``)."""
        from . import sae as sae_mod

        sae, _ = self.sae(model, c, k, sae_role or role, seed, epochs)
        return sae_mod.encode(sae, self.embeddings(role, model))

    def categories(self, model: str, c: int | None = None, k: int | None = None,
                   role: str = "main") -> pd.DataFrame:
        """Sec 3.1 category of every concept of SAE (c, k) from ``role``'s cell metadata."""
        from .concepts import categorize_concepts

        return categorize_concepts(self.codes(model, c, k, role), self.dataset(role).obs,
                                   keys=self.cfg.data.metadata_keys,
                                   threshold=float(self.cfg.concepts.specificity_threshold),
                                   min_cells=int(self.cfg.concepts.min_cells))

    # ------------------------------------------------------------------ chapter 01
    def knn_accuracy(self, role: str = "main", key: str = "cell_type") -> pd.DataFrame:
        """k-NN (k = 15, 5-fold) accuracy of ``obs[key]`` from each model's embeddings and from
        PCA of log-normalised counts."""
        from .downstream import knn_table, pca_of_counts

        src = self.dataset(role)
        reps = {f"{self.label(m)} (X_{m})": self.embeddings(role, m) for m in self.models}
        reps["PCA of log-normalised counts"] = pca_of_counts(src, seed=int(self.cfg.seed))
        return knn_table(reps, src.obs[key].astype(str).to_numpy(), seed=int(self.cfg.seed))
