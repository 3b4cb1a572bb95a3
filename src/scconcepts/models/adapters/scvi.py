"""scVI adapter: the reference scVI trained here on the main dataset, or the Census scVI.

* ``source: trained`` — :func:`scconcepts.models.scvi.train_reference` (Census recipe:
  n_layers 2, n_latent 50, negative binomial, ``encode_covariates=False``, batch = donor) on
  ``data.main``; other roles are mapped as query data (``prepare_query_anndata`` +
  ``load_query_data``). Keyed by its recipe and the main dataset's content key.
* ``source: census`` — the CELLxGENE Census model of ``scale.census_version`` applied as a query
  model to every role (:func:`scconcepts.data.census.load_census_scvi`); genes are matched through
  ``var["feature_id"]`` (Ensembl ids) and symbols are kept as gene names. Keyed by its weights.

f (Eq 1) is the encoder's posterior mean on raw counts in the model's genes.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field

from ..base import FoundationModel, ModelSpec, register


class ScVISpec(ModelSpec):
    source: Literal["trained", "census"] = "trained"
    max_epochs: int = Field(60, gt=0)
    batch_key: str = "donor_id"
    n_latent: int = Field(50, gt=0)


@register
class ScVIModel(FoundationModel):
    """Adapter ``scvi``: embeddings ``obsm["X_scvi"]`` (n_cells, 50)."""

    name: ClassVar[str] = "scvi"
    spec = ScVISpec
    label: ClassVar[str] = "scVI"

    def __init__(self, settings: ScVISpec, ctx):
        super().__init__(settings, ctx)
        self._model = None
        self._report = None
        self._aligned: dict[str, tuple] = {}

    @property
    def census(self) -> bool:
        return self.settings.source == "census"

    def _params(self) -> dict:
        s = self.settings
        return {"epochs": s.max_epochs, "batch": s.batch_key, "n_latent": s.n_latent,
                "seed": int(self.ctx.seed)}

    def model_dir(self) -> Path:
        """Folder of the scVI ``model.pt`` (trained into the store, or the Census download)."""
        if self.census:
            return self.ctx.census_cache().scvi_model_dir()
        from .. import scvi as ms

        ref, ref_key = self.ctx.reference()
        key = self.fingerprint()

        def build(tmp: Path) -> None:
            ms.train_reference(ref, tmp, batch_key=self.settings.batch_key,
                               max_epochs=self.settings.max_epochs, seed=int(self.ctx.seed),
                               overwrite=True)

        return self.ctx.store.folder(key, build, "model.pt",
                                     recipe={"step": "scvi", **self._params(), "data": ref_key})

    def fingerprint(self) -> str:
        if self.census:
            from ...store import file_fingerprint

            return f"census-scvi-{file_fingerprint(self.model_dir() / 'model.pt')}"
        _, ref_key = self.ctx.reference()
        return self.ctx.store.key("scvi", self._params(), [ref_key])

    def model(self):
        """The scvi-tools model (reference, or the Census query model)."""
        if self._model is None:
            from .. import scvi as ms

            ref, _ = self.ctx.reference()
            if self.census:
                from ...data import census_scvi as census

                self._model, self._report = census.load_census_scvi(ref, self.model_dir())
            else:
                self._model = ms.load_reference(self.model_dir(), ref,
                                                batch_key=self.settings.batch_key)
        return self._model

    def _census_aligned(self, src: ad.AnnData) -> tuple[ad.AnnData, dict]:
        """``src`` in the Census model's gene order (absent genes zero), symbols as names."""
        from ...data import census_scvi as census
        from ...scale import _selection_matrix
        from .. import scvi as ms

        ref = ms.reference_genes(self.model_dir())
        census._check_ensembl(src, "feature_id", ref, 0.2)
        ids = src.var["feature_id"].astype(str).tolist()
        P, n_found = _selection_matrix(ids, ref)
        symbol = dict(zip(ids, src.var_names.astype(str)))
        names = pd.Index([symbol.get(g, g) for g in ref])
        if names.has_duplicates:  # a symbol equal to another gene's Ensembl id: keep ids
            names = pd.Index(ref)
        X = sp.csr_matrix(sp.csr_matrix(src.X, dtype=np.float32) @ P, dtype=np.float32)
        adata = ad.AnnData(X=X, obs=src.obs.copy(),
                           var=pd.DataFrame({"feature_id": list(ref)}, index=names))
        found = set(ids)
        return adata, {"n_reference": len(ref), "n_found": int(n_found),
                       "missing": [g for g in ref if g not in found]}

    def aligned(self, adata: ad.AnnData, role: str) -> tuple[ad.AnnData, dict]:
        """(``adata`` in the model's genes, gene report {"n_reference", "n_found", "missing"})."""
        from .. import scvi as ms

        memo = (role, id(adata))
        if memo not in self._aligned:
            if self.census:
                out = self._census_aligned(adata)
            elif role == "main":
                out = (adata, {"n_reference": adata.n_vars, "n_found": adata.n_vars,
                               "missing": []})
            else:
                out = ms.prepare_query(adata, self.model_dir())
            self._aligned[memo] = out
        return self._aligned[memo]

    def gene_report(self, adata, role: str) -> dict:
        return self.aligned(adata, role)[1]

    def inputs(self, adata, role: str):
        a, _ = self.aligned(adata, role)
        return sp.csr_matrix(a.X, dtype=np.float32), list(map(str, a.var_names))

    def chunk_encoder(self, adata=None, role: str = "main"):
        """Encoder of AnnData chunks (:func:`scconcepts.scale.embed_in_chunks`); ``adata`` and
        ``role`` are unused (every chunk is aligned to the model's genes as it comes)."""
        from ... import scale
        from ...data import census_scvi as census

        if self.census:
            return census.census_scvi_encoder(self.model(), self.model_dir(),
                                              device=self.ctx.device, amp=self.ctx.amp)
        return scale.scvi_chunk_encoder(self.model(), device=self.ctx.device, amp=self.ctx.amp)

    def embed(self, adata, role: str) -> np.ndarray:
        from .. import scvi as ms

        model = self.model()
        if self.census:
            return self.chunk_encoder()(adata)
        if role == "main":
            return ms.embed(model)
        aligned, _ = self.aligned(adata, role)
        return ms.embed(ms.load_query(aligned, self.model_dir()), aligned)

    def encoder(self, genes):
        from .. import scvi as ms

        return ms.encoder_fn(self.model())

    def describe(self):
        from .. import scvi as ms

        table = ms.describe(self.model())  # columns: this book, the paper's Census scVI
        return table.set_axis(["this book", "paper (Table 2)"], axis=1)
