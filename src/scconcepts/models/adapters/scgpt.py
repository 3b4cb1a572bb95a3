"""scGPT adapter: a checkpoint in the whole-human format (``args.json``, ``vocab.json``,
``best_model.pt``) — the project-pretrained model or scGPT whole-human.

Embeddings are CLS embeddings (:func:`scconcepts.models.scgpt.embed`) of the cell's genes found
in the vocabulary, or of ``n_hvgs`` highly variable genes among them (paper Table 2: 1,200 HVGs,
:func:`scconcepts.models.scgpt.select_hvgs`): a dataset role's own, or the main dataset's for the
roles of ``shared_panel_roles`` (default: the second dataset, compared with the main one in
chapter 07). The model is keyed by a SHA-1 of its three files, so a retrained model never
reuses another's embeddings. f (Eq 1) for attribution is
:class:`scconcepts.models.scgpt_occlusion.ScGPTOcclusion`, which computes the occlusion forward
passes exactly and reuses the prototype's cached attention inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from ..base import FoundationModel, ModelSpec, register


class ScGPTSpec(ModelSpec):
    checkpoint: str = "models/scgpt_pbmc_small"
    #: highly variable genes fed to the model (paper: 1200); null = every vocabulary gene
    n_hvgs: int | None = Field(None, gt=0)
    #: dataset roles tokenised on the main dataset's panel (its vocabulary genes or HVGs), a
    #: gene a role lacks counting as unexpressed (scGPT tokenises expressed genes only, so this
    #: is scVI's zero-filled query mapping): comparing such a role with the main dataset
    #: (chapter 07) then measures the cells, not a change of genes. Other roles read their own
    #: vocabulary genes or HVGs, as the paper did for every dataset; chapter 11's perturbation
    #: cells keep the interferon genes the main dataset lacks, and compare only among themselves.
    shared_panel_roles: list[Literal["second", "perturbation"]] = ["second"]


@register
class ScGPTModel(FoundationModel):
    """Adapter ``scgpt``: embeddings ``obsm["X_scgpt"]`` (n_cells, d_model)."""

    name: ClassVar[str] = "scgpt"
    spec = ScGPTSpec
    label: ClassVar[str] = "scGPT"

    def __init__(self, settings: ScGPTSpec, ctx):
        super().__init__(settings, ctx)
        self._loaded = None
        self._fp = None
        self._genes: dict[tuple, list[str]] = {}

    def checkpoint(self) -> Path:
        """The checkpoint folder (``checkpoint``, relative to the repository root)."""
        from ...config import repo_root

        path = Path(self.settings.checkpoint)
        return path if path.is_absolute() else repo_root() / path

    def fingerprint(self) -> str:
        if self._fp is None:
            from ...store import content_key, file_fingerprint
            from .. import scgpt as ms

            folder = self.checkpoint()
            parts = {f: file_fingerprint(folder / f) if (folder / f).exists() else "absent"
                     for f in ms.REQUIRED_FILES}
            self._fp = f"scgpt-{content_key(parts)[:16]}"
        return self._fp

    def loaded(self):
        """(model, vocab, args), loaded once (on ``scale.device``)."""
        if self._loaded is None:
            from .. import scgpt as ms

            self._loaded = ms.load_checkpoint(self.checkpoint())
        return self._loaded

    def genes(self, adata, role: str) -> list[str]:
        """Genes of ``adata`` the model reads: vocabulary matches, or their ``n_hvgs`` HVGs; for
        a role of ``shared_panel_roles``, the main dataset's genes it has."""
        from .. import scgpt as ms

        memo = (role, id(adata))
        if memo not in self._genes:
            _, vocab, _ = self.loaded()
            if self._shared_panel(role):
                present = set(map(str, adata.var_names))
                genes = [g for g in self.genes(self.ctx.reference()[0], "main") if g in present]
            elif self.settings.n_hvgs:
                genes = ms.select_hvgs(adata, int(self.settings.n_hvgs), vocab=vocab)
            else:
                genes = ms.match_genes(adata, vocab)["found"]
            self._genes[memo] = list(genes)
        return self._genes[memo]

    def _shared_panel(self, role: str) -> bool:
        return role in self.settings.shared_panel_roles      # never "main" (the type)

    def _panel(self, adata, role: str) -> list[str] | None:
        """Genes to embed ``adata`` on, or None for every vocabulary gene it has."""
        if self.settings.n_hvgs or self._shared_panel(role):
            return self.genes(adata, role)
        return None

    def embed_params(self, role: str) -> dict:
        """What the embeddings of ``role`` depend on besides weights, data and seed: the panel
        (for another role on the main panel, a hash of the main panel's genes as well)."""
        from ...store import content_key

        params = {"n_hvgs": self.settings.n_hvgs}
        if self._shared_panel(role):
            panel = self.genes(self.ctx.reference()[0], "main")
            params.update(panel=content_key(panel)[:16])
        return params

    def inputs(self, adata, role: str):
        genes = self.genes(adata, role)
        X = sp.csr_matrix(sp.csr_matrix(adata.X)[:, adata.var_names.get_indexer(genes)],
                          dtype=np.float32)
        return X, genes

    def chunk_encoder(self, adata=None, role: str = "main"):
        from ... import scale

        net, vocab, _ = self.loaded()
        genes = self._panel(adata, role) if adata is not None else None
        return scale.scgpt_chunk_encoder(net, vocab, genes, seed=int(self.ctx.seed),
                                         amp=self.ctx.amp, device=self.ctx.device)

    def embed(self, adata, role: str) -> np.ndarray:
        from .. import scgpt as ms

        net, vocab, _ = self.loaded()
        genes = self._panel(adata, role)
        return ms.embed(net, vocab, adata, genes=genes, seed=int(self.ctx.seed))

    def encoder(self, genes):
        from ..scgpt_occlusion import ScGPTOcclusion

        net, vocab, _ = self.loaded()
        return ScGPTOcclusion(net, vocab, list(genes), seed=int(self.ctx.seed))

    def training_log(self) -> dict | None:
        """``training_log.json`` of a checkpoint pretrained by the project, else None."""
        import json

        path = self.checkpoint() / "training_log.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def describe(self):
        """Table 2 analogue: this checkpoint next to the paper's whole-human scGPT."""
        import json

        import pandas as pd

        from ...reference.scale import PAPER_TABLE2_SCGPT

        args = json.loads((self.checkpoint() / "args.json").read_text())
        log = self.training_log() or {}
        net, vocab, _ = self.loaded()
        n_params = log.get("n_params") or sum(p.numel() for p in net.parameters())
        ours = {
            "Model architecture": "Transformer (scgpt.model.TransformerModel)",
            "Parameters": f"{n_params / 1e6:.2f}M",
            "Genes in vocabulary": f"{len(vocab) - 3:,}",
            "Gene expression preprocessing": f"binning ({args.get('n_bins', 51)} bins, "
                                             "deterministic)",
            "Sequence length": (f"{self.settings.n_hvgs} HVG" if self.settings.n_hvgs else
                                f"non-zero genes, at most {args.get('max_seq_len')} tokens"),
            "Cell embedding strategy": "CLS token",
            "Cell embedding size": str(args.get("embsize")),
            "Pretraining": (f"{log['steps']:,} steps, {log['seconds'] / 60:.0f} CPU-minutes, "
                            f"{log['config']['batch_size']} cells/step" if log else
                            "pretrained elsewhere"),
        }
        # the paper's column is the whole-human scGPT
        return pd.DataFrame({"this book": ours, "paper (Table 2)": PAPER_TABLE2_SCGPT})
