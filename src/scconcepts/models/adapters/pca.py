"""PCA of library-size-normalised log1p expression as a linear "foundation model".

f(x) = (log1p(10⁴ · x / Σx) − μ) Wᵀ with W the top principal axes (n_comps × m) fitted on the
main dataset's cells (scikit-learn ``PCA``, the scanpy recipe ``normalize_total`` + ``log1p`` +
``pca``). It is the low-rank baseline reviewers ask for and proves the adapter design: its
encoder is exact and cheap, so attribution through its projection is exact.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from ..base import FoundationModel, ModelSpec, register


class PCASpec(ModelSpec):
    grid: list[tuple[int, int]] = [(100, 2), (200, 4)]
    c: int = Field(200, gt=0)
    k: int = Field(4, gt=0)
    #: principal components (the embedding size d)
    n_comps: int = Field(50, gt=1)
    target_sum: float = Field(1e4, gt=0)


def _log_norm(X, target_sum: float) -> np.ndarray:
    X = sp.csr_matrix(X, dtype=np.float32)
    total = np.asarray(X.sum(axis=1)).ravel()
    scale = target_sum / np.maximum(total, 1.0)
    return np.log1p(np.asarray(sp.diags(scale.astype(np.float32)) @ X.toarray(), np.float32))


@register
class PCAModel(FoundationModel):
    """Adapter ``pca``: embeddings ``obsm["X_pca"]`` of shape (n_cells, n_comps)."""

    name: ClassVar[str] = "pca"
    spec = PCASpec
    label: ClassVar[str] = "PCA (log1p)"

    def __init__(self, settings: PCASpec, ctx):
        super().__init__(settings, ctx)
        self._fit = None

    def _params(self) -> dict:
        return {"n_comps": self.settings.n_comps, "target_sum": self.settings.target_sum,
                "seed": int(self.ctx.seed)}

    def fingerprint(self) -> str:
        ref, ref_key = self.ctx.reference()
        return self.ctx.store.key("pca", self._params(), [ref_key])

    def fitted(self) -> dict:
        """{"genes", "mean" (m,), "components" (n_comps, m)} fitted on the main dataset."""
        if self._fit is None:
            from sklearn.decomposition import PCA

            ref, _ = self.ctx.reference()
            s = self.settings

            def fit():
                L = _log_norm(ref.X, s.target_sum)
                n = min(s.n_comps, L.shape[0] - 1, L.shape[1] - 1)
                pca = PCA(n_components=n, svd_solver="full", random_state=int(self.ctx.seed)).fit(L)
                return {"genes": np.asarray(ref.var_names, dtype=str),
                        "mean": pca.mean_.astype(np.float32),
                        "components": pca.components_.astype(np.float32)}

            def save(v, path):
                with open(path, "wb") as fh:
                    np.savez(fh, **v)

            def load(path):
                with np.load(path, allow_pickle=False) as z:
                    return {k: z[k] for k in z.files}

            self._fit = self.ctx.store.cached(self.fingerprint(), ".npz", fit, save, load,
                                              recipe={"step": "pca", **self._params()})
        return self._fit

    def inputs(self, adata, role: str):
        from ...scale import _selection_matrix

        genes = [str(g) for g in self.fitted()["genes"]]
        P, _ = _selection_matrix([str(g) for g in adata.var_names], genes)  # missing genes: 0
        return sp.csr_matrix(sp.csr_matrix(adata.X, dtype=np.float32) @ P), genes

    def embed(self, adata, role: str) -> np.ndarray:
        fit = self.fitted()
        X, _ = self.inputs(adata, role)
        L = _log_norm(X, self.settings.target_sum)
        return ((L - fit["mean"]) @ fit["components"].T).astype(np.float32)

    def encoder(self, genes):
        import torch

        fit = self.fitted()
        mean = torch.from_numpy(fit["mean"])
        W = torch.from_numpy(fit["components"].T.copy())
        target = float(self.settings.target_sum)

        @torch.no_grad()
        def f(x: torch.Tensor) -> torch.Tensor:
            x = x.float()
            total = x.sum(dim=1, keepdim=True).clamp_min(1.0)
            return (torch.log1p(x * (target / total)) - mean) @ W

        return f
