"""Attribution and GSEA steps of :class:`scconcepts.workflow.Workflow` (a mixin).

Units (:meth:`AttributionSteps.default_units`), counterfactual occlusion attribution of any SAE
of any model on any dataset role (:meth:`AttributionSteps.attribution`, one function for every
chapter, keyed by :meth:`AttributionSteps.attribution_key`), and attribution-based GSEA
(:meth:`AttributionSteps.gsea`). The methods use the workflow's ``cfg``, ``store``,
``settings``, ``embeddings``, ``codes``, ``sae``, ``sae_key``, ``model`` and ``dataset``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .store import ArtifactStore, file_fingerprint

__all__ = ["AttributionSteps"]


def _save_planted(value: dict, path) -> None:
    import json

    from .utils import atomic_write

    out = {**value, "scores": value["scores"].to_dict(orient="records")}
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(out, indent=1)))


def _load_planted(path) -> dict:
    import json

    value = json.loads(Path(path).read_text())
    return {**value, "scores": pd.DataFrame(value["scores"])}


class AttributionSteps:
    """Attribution and GSEA steps (mixed into :class:`~scconcepts.workflow.Workflow`)."""

    # ------------------------------------------------------------------ units
    def sample_units(self, model: str, c: int, k: int, n: int | None = None,
                     role: str = "main", min_cells: int = 1) -> np.ndarray:
        """Seeded random sample of at most ``n`` concepts of SAE (c, k) active in at least
        ``min_cells`` cells (in at least one cell when fewer than n qualify)."""
        codes = self.codes(model, c, k, role)
        counts = codes.getnnz(axis=0)
        active = np.flatnonzero(counts >= max(int(min_cells), 1))
        if len(active) < int(n if n is not None else 0):
            active = np.flatnonzero(counts > 0)
        n = int(n if n is not None else self.settings(model).attribution_grid_units)
        if len(active) <= n:
            return active
        rng = np.random.default_rng(int(self.cfg.seed))
        return np.sort(rng.choice(active, n, replace=False))

    def sample_neurons(self, model: str, n: int, role: str = "main") -> np.ndarray:
        """Seeded random sample of at most ``n`` neurons (embedding dimensions)."""
        d = self.embeddings(role, model).shape[1]
        if d <= n:
            return np.arange(d)
        rng = np.random.default_rng(int(self.cfg.seed) + 1)
        return np.sort(rng.choice(d, n, replace=False))

    def default_units(self, model: str, kind: str, c=None, k=None, role: str = "main"):
        """The model's attribution units: every active concept (``attribution_units:
        active``) or a seeded sample of ``attribution_units`` concepts active in at least
        ``concepts.min_cells`` cells; every neuron or a seeded sample, as
        ``attribution_neurons`` says (default: as ``attribution_units``)."""
        ms = self.settings(model)
        c, k = int(c or ms.c), int(k or ms.k)
        if kind == "concept":
            if ms.attribution_units == "active":
                return np.flatnonzero(self.codes(model, c, k, role).getnnz(axis=0) > 0)
            return self.sample_units(model, c, k, int(ms.attribution_units), role,
                                     min_cells=int(self.cfg.concepts.min_cells))
        n = ms.attribution_units if ms.attribution_neurons is None else ms.attribution_neurons
        if kind in ("pca", "ica"):
            return np.arange(self.decomposition(model, kind).n_concepts)
        if n in ("active", "all"):
            return np.arange(self.embeddings(role, model).shape[1])
        return self.sample_neurons(model, int(n), role)

    def matched_rank(self, model: str) -> tuple[int, float]:
        """Capacity-matched rank (:func:`scconcepts.baselines.matched_rank`): the number of
        principal components PCA, fitted on the default SAE's training cells, needs to reach the
        SAE's held-out R² on its held-out cells, and the R² it reaches there."""
        from . import baselines
        from . import sae as sae_mod

        A = self.embeddings("main", model)
        _, meta = self.sae(model)
        fit, held = sae_mod.cell_split(meta["history"], len(A))
        return baselines.matched_rank(A[fit], A[held], meta["metrics"]["r2_val"],
                                      int(self.cfg.seed))

    def decomposition(self, model: str, method: str):
        """PCA or ICA (``method``) of the model's main embeddings with the capacity-matched rank
        (:meth:`matched_rank`), fitted on the default SAE's training cells; seeded, recomputed
        in memory once per workflow (a fit takes seconds). Raises ValueError for another
        ``method``."""
        from . import baselines
        from . import sae as sae_mod

        if method not in ("pca", "ica"):
            raise ValueError(f"method must be 'pca' or 'ica', not {method!r}")
        memo = self.__dict__.setdefault("_decompositions", {})
        if (model, method) not in memo:
            A = self.embeddings("main", model)
            fit, _ = sae_mod.cell_split(self.sae(model)[1]["history"], len(A))
            fitter = baselines.fit_pca if method == "pca" else baselines.fit_ica
            memo[(model, method)] = fitter(A[fit], self.matched_rank(model)[0],
                                           int(self.cfg.seed))
        return memo[(model, method)]

    # ------------------------------------------------------------------ attribution
    def attribution(self, model: str, kind: str = "concept", role: str = "main",
                    sae_role: str | None = None, units=None, c: int | None = None,
                    k: int | None = None, seed: int | None = None, epochs: int | None = None,
                    pool: float | None = None, match_library: bool = False):
        """Counterfactual occlusion attribution (Eq 1–3) of concepts or neurons (cached).

        Parameters
        ----------
        kind
            ``"concept"`` (units of the SAE (c, k) trained on ``sae_role`` with ``seed``/
            ``epochs``), ``"neuron"`` (embedding dimensions, readout centred on the median), or
            ``"pca"`` / ``"ica"`` (components of :meth:`decomposition`, centred on their median:
            chapter 05's capacity-matched baselines).
        role
            The cells whose prototypes and counterfactuals are searched.
        units
            Units to attribute; None = :meth:`default_units`.
        pool
            The counterfactual pool (chapter 05's sensitivity; None = the paper's Eq 1). For
            neurons, the quantile each neuron is centred on instead of the median (cells below
            it are the pool; e.g. :func:`scconcepts.pools.pool_quantile` gives neurons the
            concepts' firing rate). For concepts, cells whose pre-activation is at or below
            this quantile of the concept's pre-activation are the pool (0.5: a median split,
            as for neurons), and prototypes are the cells of highest pre-activation; the
            attributed function stays the Top-K code.
        match_library
            Counterfactual counts scaled to the prototype's library size before occlusion
            (:func:`scconcepts.attribution.attribute_units`; chapter 04's perturbation-space
            comparison). Keyed.

        Sharding (``scale.attribution_shard_count`` = n > 1) computes only shard
        ``scale.attribution_shard_index``; a later unsharded run merges the complete set.

        Raises
        ------
        FileNotFoundError
            Without sharding, when some but not all shards of this attribution exist.
        ValueError
            For an unknown ``kind``.
        """
        from . import sae as sae_mod
        from . import scale_shards as scale
        from .attribution import (AttributionResult, NeuronReadout, SAEReadout, UnitFunction,
                                  attribute_units)
        from .scale_shards import empty_attribution, merge_shard_set

        ms = self.settings(model)
        c, k = int(c or ms.c), int(k or ms.k)
        A = self.embeddings(role, model)
        if pool is not None and not 0 < float(pool) < 1:
            raise ValueError(f"pool must be a quantile in (0, 1), not {pool!r}")
        if kind == "concept":
            sae, _ = self.sae(model, c, k, sae_role or role, seed, epochs)
            readout = SAEReadout(sae)
            acts = sae_mod.encode(sae, A)
            if pool is not None:
                import torch

                with torch.no_grad():
                    pre = sae.pre_activation(torch.from_numpy(np.asarray(A, np.float32))).numpy()
                pool_acts = pre - np.quantile(pre, float(pool), axis=0)
        elif kind == "neuron":
            readout = (NeuronReadout.from_embeddings(A) if pool is None else
                       NeuronReadout(np.quantile(np.asarray(A, np.float32), float(pool), axis=0)))
            acts = A - readout.median.numpy()
        elif kind in ("pca", "ica") and pool is None:
            from .baselines import ComponentReadout

            readout = ComponentReadout.from_decomposition(self.decomposition(model, kind), A,
                                                          kind)
            import torch

            with torch.no_grad():
                acts = readout(torch.from_numpy(np.asarray(A, np.float32))).numpy()
        else:
            raise ValueError(f"kind must be 'concept', 'neuron', 'pca' or 'ica' (the last two "
                             f"without a pool), not {kind!r}")
        if units is None:
            units = (self.default_units(model, kind, c, k, role) if (sae_role or role) == role
                     else np.flatnonzero(acts.getnnz(axis=0) > 0))
        units = np.asarray(units, dtype=int)
        if kind == "concept" and pool is not None:
            acts = pool_acts  # the units were chosen on the codes; the pool on pre-activations
        n_p, n_c = int(ms.n_prototypes), int(ms.n_counterfactuals)
        key = self.attribution_key(model, kind, role, sae_role, units, c, k, seed, epochs, pool,
                                   match_library)
        path = self.store.path(key, ".npz")
        shards = self.store.root / "attribution" / "shards"
        index, count = self.cfg.scale.attribution_shard_index, self.cfg.scale.attribution_shard_count
        if count > 1:
            out = scale.shard_path(shards, key, index, count)
            if out.exists():
                return AttributionResult.load(out)
            units = scale.shard_units(units, index, count)
        elif self.store.exists(key, ".npz"):
            return self.store.memo(key, lambda: AttributionResult.load(path))
        else:
            merged = merge_shard_set(shards, key, units, require=False)
            if merged is not None:
                return self.store.cached(key, ".npz", lambda: merged, lambda v, p: v.save(p),
                                         AttributionResult.load,
                                         recipe={"step": "attribution-merge"})
        X, genes = self.model(model).inputs(self.dataset(role), role)
        f = self.model(model).encoder(genes)
        unit_fn = UnitFunction(f, readout)

        def compute(sub):
            return attribute_units(unit_fn, X, A, acts, sub, genes, n_prototypes=n_p,
                                   n_counterfactuals=n_c, match_library=match_library)

        if count > 1:
            if len(units) == 0:  # more shards than units: an empty shard
                res = empty_attribution(kind, genes, n_p, n_c)
            else:
                res = AttributionResult.concat(self.store.blocks(
                    f"{key}-shard{index}of{count}", units, self.cfg.attribution.block, compute,
                    lambda part, p: part.save(p), AttributionResult.load, ".npz"))
            res.save(out)
            return res
        return self.store.blocked(key, ".npz", units, self.cfg.attribution.block, compute,
                                  AttributionResult.concat, lambda v, p: v.save(p),
                                  AttributionResult.load,
                                  recipe={"step": "attribution", "model": model, "kind": kind,
                                          "role": role})

    def attribution_key(self, model: str, kind: str, role: str, sae_role: str | None,
                        units, c: int | None = None, k: int | None = None,
                        seed: int | None = None, epochs: int | None = None,
                        pool: float | None = None, match_library: bool = False) -> str:
        """Store key of :meth:`attribution` with these arguments (``units`` given explicitly):
        the SAE's key (concepts) or "neurons", the embeddings' key, the units, N_p, N_c and the
        counterfactual ``pool`` when not the paper's."""
        ms = self.settings(model)
        source = (self.sae_key(model, c, k, sae_role or role, seed, epochs)
                  if kind in ("concept", "pca", "ica") else "neurons")
        params = {"kind": kind, "units": np.asarray(units, dtype=int).tolist(),
                  "np": int(ms.n_prototypes), "nc": int(ms.n_counterfactuals)}
        if pool is not None:
            params["pool"] = round(float(pool), 6)
        if match_library:
            params["match_library"] = True
        return self.store.key("attribution", params, [source, self.embedding_key(role, model)])

    # ------------------------------------------------------------------ GSEA
    def gene_sets(self) -> dict[str, list[str]]:
        from .data import census
        from .data import load_gene_sets

        return load_gene_sets(census.resolve_gene_sets(self.cfg))

    def testable_gene_sets(self, model: str, min_size: int | None = None) -> int:
        """GO sets testable on the model's attribution genes (:func:`scconcepts.enrichment.
        testable_sets` with ``min_size``, default ``gsea.min_size``): the sets a unit's best
        term is chosen from."""
        from .enrichment import testable_sets

        genes = self.attribution(model, "concept").genes
        size = int(self.cfg.gsea.min_size if min_size is None else min_size)
        return testable_sets(self.gene_sets(), list(map(str, genes)), size)

    def comparison_units(self, model: str, kind: str) -> np.ndarray:
        """Units of the concepts-vs-neurons comparison (Fig 3A.b, chapter 05): every attributed
        unit (scores not all NaN) and, for concepts, active in at least ``concepts.min_cells``
        cells of the main dataset, so that prototypes are the top of a population and not a
        handful of cells. ``gsea.comparison: sample`` restricts it to the ``gsea.n_units``
        sample (:meth:`gsea_units`)."""
        att = self.attribution(model, kind)
        ok = att.units[~np.isnan(att.scores).all(1)]
        if kind == "concept":
            counts = self.codes(model).getnnz(axis=0)
            ok = ok[counts[ok] >= int(self.cfg.concepts.min_cells)]
        if self.cfg.gsea.comparison == "sample":
            return self.gsea_units(model, kind)
        return ok

    def gsea_units(self, model: str, kind: str) -> np.ndarray:
        """The interpretation sample sent to GSEA (examples, viewer, expert study): a seeded
        random sample of ``gsea.n_units`` attributed units (concepts active in at least
        ``concepts.min_cells`` cells where enough are attributed)."""
        att = self.attribution(model, kind)
        ok = att.units[~np.isnan(att.scores).all(1)]
        if kind == "concept":
            counts = self.codes(model).getnnz(axis=0)
            big = ok[counts[ok] >= int(self.cfg.concepts.min_cells)]
            ok = big if len(big) >= int(self.cfg.gsea.n_units) else ok
        n = int(self.cfg.gsea.n_units)
        if len(ok) <= n:
            return ok
        rng = np.random.default_rng(int(self.cfg.seed) + (0 if kind == "concept" else 1))
        return np.sort(rng.choice(ok, n, replace=False))

    def gsea(self, model: str, kind: str = "concept", shuffle: bool = False,
             units=None, pool: float | None = None, min_size: int | None = None
             ) -> pd.DataFrame:
        """Attribution-based GSEA summary (Sec 3.4) of ``units`` (cached parquet, in blocks).

        ``units``: None = the interpretation sample (:meth:`gsea_units`); with
        ``gsea.comparison: all`` it is read from the comparison run (:meth:`gsea_comparison`),
        of which it is a subset (GSEA of a unit does not depend on the other units).
        ``shuffle=True`` runs the shuffled-ranking null on the same units; ``pool``: GSEA of the
        attribution with another counterfactual pool (:meth:`attribution`); ``min_size``: the
        smallest testable set (default ``gsea.min_size``; chapter 05's sensitivity).

        Raises
        ------
        ValueError
            While attribution is sharded (GSEA needs the whole attribution).
        """
        from .data import census
        from .enrichment import STRONG_FALLBACK_PERMUTATIONS, annotate_units

        g = self.cfg.gsea
        if self.cfg.scale.attribution_shard_count > 1:
            raise ValueError(
                "GSEA needs the whole attribution, but scale.attribution_shard_count > 1 makes "
                "attribution compute one shard. Run the shard jobs of chapter 04, then this step "
                "without --set scale.attribution_shard_count (the shards are merged).")
        if units is None:
            units = self.gsea_units(model, kind)
            whole = self.comparison_units(model, kind)
            if g.comparison == "all" and np.isin(units, whole).all():
                full = self.gsea(model, kind, shuffle, units=whole, min_size=min_size)
                return full[full["unit"].isin(units)].reset_index(drop=True)
        units = np.asarray(units, dtype=np.int64)
        att = (self.attribution(model, kind) if pool is None else
               self.attribution(model, kind, units=units, pool=pool))
        library = census.resolve_gene_sets(self.cfg)
        lib_key = (file_fingerprint(library) if Path(str(library)).is_file() else str(library))
        att_key = att.digest()
        size = int(g.min_size if min_size is None else min_size)
        key = self.store.key("gsea", {
            "units": units.tolist(), "perm": g.permutations, "strong": g.strong_permutations,
            "strong_method": g.strong_method, "min": size, "seed": int(self.cfg.seed),
            "fallback": STRONG_FALLBACK_PERMUTATIONS,
            "shuffle": shuffle, "library": lib_key}, [att_key])

        def compute(sub):
            part, _ = annotate_units(
                att, self.gene_sets(), sub, permutations=int(g.permutations),
                strong_permutations=int(g.strong_permutations), strong_method=g.strong_method,
                min_size=size, seed=int(self.cfg.seed), threads=int(g.threads),
                shuffle=shuffle)
            return part.assign(model=model)

        return self.store.blocked(key, ".parquet", units, g.block, compute,
                                  lambda parts: pd.concat(parts, ignore_index=True),
                                  ArtifactStore.save_parquet, ArtifactStore.load_parquet,
                                  recipe={"step": "gsea", "model": model, "kind": kind},
                                  progress=f"GSEA {model} {kind}")

    def gsea_comparison(self, model: str, kind: str, shuffle: bool = False,
                        pool: float | None = None) -> pd.DataFrame:
        """GSEA of the concepts-vs-neurons comparison units (:meth:`comparison_units`), with
        the shuffled-ranking null when ``shuffle``, with another counterfactual ``pool``
        (:meth:`attribution`) when given."""
        return self.gsea(model, kind, shuffle, units=self.comparison_units(model, kind),
                         pool=pool)

    def pair_diagnostics(self, model: str, kind: str, pool: float | None = None
                         ) -> pd.DataFrame:
        """:func:`scconcepts.pools.pair_diagnostics` of the comparison units' attribution (with
        ``pool``): embedding distance of each (prototype, counterfactual) pair relative to the
        nearest neighbour, share of pairs across cell types, library-size ratio (total counts
        of the main dataset)."""
        from .pools import pair_diagnostics

        units = self.comparison_units(model, kind)
        att = (self.attribution(model, kind) if pool is None else
               self.attribution(model, kind, units=units, pool=pool))
        keep = np.isin(att.units, units)
        data = self.dataset("main")
        lib = np.asarray(data.X.sum(1)).ravel()
        return pair_diagnostics(self.embeddings("main", model), lib, data.obs["cell_type"],
                                att.prototypes[keep], att.counterfactuals[keep], att.units[keep])

    # ------------------------------------------------------------------ planted programme
    def planted(self, model: str, replicate: int = 0) -> dict:
        """Ground truth for attribution (issue 13, item 11; :mod:`scconcepts.planted`), cached.

        A programme of ``planted.n_genes`` genes of the model's input panel, raised
        ``planted.factor``-fold in ``planted.cell_fraction`` of the main dataset's cells (seeded
        by ``seed`` + ``replicate``). The model is rebuilt on the edited data: an adapter that
        trains on the main dataset (scVI, PCA) is retrained on it, one that does not (a
        pretrained scGPT checkpoint) stays frozen, as a foundation model would. A default-size
        SAE is trained on the edited embeddings, and the concept and the neuron with the highest
        AUROC for the planted cells are attributed with counterfactuals (Eq 1–3) and with
        zero-masking.

        Returns
        -------
        dict
            ``scores`` (DataFrame: one row per unit kind × baseline with ``unit``, ``auroc``,
            ``precision@k`` and ``random``), ``genes`` (the planted symbols), ``cells`` (number
            of planted cells), ``top`` (unit kind × baseline → top-20 genes).
        """
        from . import planted as pl
        from . import sae as sae_mod
        from .attribution import NeuronReadout, SAEReadout, UnitFunction, attribute_units

        p, seed = self.cfg.planted, int(self.cfg.seed) + int(replicate)
        m = self.model(model)
        data = self.dataset("main")
        params = {"n_genes": int(p.n_genes), "fraction": float(p.cell_fraction),
                  "factor": float(p.factor), "seed": seed, "ks": list(map(int, p.top_k)),
                  "model": "rebuilt on the edited data"}
        key = self.store.key("planted", params, [self.embedding_key("main", model),
                                                 self.sae_key(model)])

        def compute():
            from .workflow import _EditedContext

            X, genes = m.inputs(data, "main")
            exclude = [g for g in genes if str(g).startswith(("RPL", "RPS", "MT-"))]
            prog = pl.choose_programme(X, genes, int(p.n_genes), seed=seed, exclude=exclude)
            cells = pl.choose_cells(data.n_obs, float(p.cell_fraction), seed)
            col = data.var_names.get_indexer(np.asarray(genes, dtype=str)[prog])
            edited = data.copy()
            edited.X = pl.plant_programme(data.X, cells, col, float(p.factor), seed)
            ctx = _EditedContext(self, self._ctx.seed, self._ctx.device, self._ctx.amp,
                                 data=edited, data_key=self.store.key(
                                     "planted-data", params, [self.dataset_key("main")]))
            m2 = type(m)(m.settings, ctx)  # retrained on the edited data if it trains on main
            Xe, _ = m2.inputs(edited, "main")
            emb = np.asarray(m2.embed(edited, "main"), dtype=np.float32)
            config = self.sae_config(model)
            sae, _ = sae_mod.train_sae(emb, config)
            codes = sae_mod.encode(sae, emb)
            f = m2.encoder(genes)
            readouts = {"concept": (SAEReadout(sae), codes),
                        "neuron": (NeuronReadout.from_embeddings(emb), None)}
            rows, top = [], {}
            for kind, (readout, acts) in readouts.items():
                if acts is None:
                    acts = emb - readout.median.numpy()
                best = pl.best_units(acts, cells).iloc[0]
                unit = int(best.name)
                for baseline in ("counterfactual", "zero"):
                    res = attribute_units(UnitFunction(f, readout), Xe, emb, acts, [unit], genes,
                                          n_prototypes=int(self.settings(model).n_prototypes),
                                          n_counterfactuals=int(
                                              self.settings(model).n_counterfactuals),
                                          baseline=baseline, progress=False)
                    ranked = list(res.ranked(unit).index)
                    top[f"{kind}, {baseline}"] = ranked[:20]
                    rows.append({"unit kind": kind, "baseline": baseline, "unit": unit,
                                 "auroc": float(best["auroc"]),
                                 **pl.precision_at_k(ranked, np.asarray(genes)[prog],
                                                     p.top_k, len(genes))})
            return {"scores": pd.DataFrame(rows), "genes": list(np.asarray(genes)[prog]),
                    "cells": int(len(cells)), "top": top}

        return self.store.cached(key, ".json", compute, _save_planted, _load_planted,
                                 recipe={"step": "planted", "model": model})

    # ------------------------------------------------------------------ DGEA (chapter 10)
    def dgea_comparison(self, model: str) -> dict:
        """Attribution vs DGEA of the model's default SAE (App C; :func:`scconcepts.dgea.
        compare_with_dgea`), cached: keyed by the attribution's content, the SAE and the
        ``dgea`` settings (the model's ``models.<m>.dgea`` block over the global ``dgea``)."""
        from . import dgea
        from .attribution import SAEReadout, UnitFunction

        opts = dgea.options(self.cfg.dgea, self.settings(model).dgea)
        g = self.cfg.gsea
        att = self.attribution(model, "concept")
        key = self.store.key("dgea", {**opts, "lib": str(g.gene_sets), "seed": int(self.cfg.seed),
                                      "min": int(g.min_size), "held_out_pairs": True},
                             [att.digest(), self.sae_key(model)])

        def compute():
            X, genes = self.model(model).inputs(self.dataset("main"), "main")
            unit_fn = UnitFunction(self.model(model).encoder(genes), SAEReadout(self.sae(model)[0]))
            return dgea.compare_with_dgea(
                X, genes, self.embeddings("main", model), self.codes(model), unit_fn, att,
                self.gene_sets(), min_size=int(g.min_size), seed=int(self.cfg.seed),
                threads=int(g.threads), **opts)

        return self.store.cached(key, ".zip", compute, dgea.save_comparison,
                                 dgea.load_comparison, recipe={"step": "dgea", "model": model})
