"""Exact incremental occlusion forward passes for scGPT (the fast path of Eq 2 for a transformer).

Occlusion attribution (Sec 3.2, Eq 2) needs f(x̃^p) for every perturbed copy x̃^p of a prototype
x^p: the same cell with one gene's count replaced by the counterfactual's. For scGPT the
perturbed copy is re-binned and re-tokenised exactly as a real cell (its real input path), so a
copy differs from the prototype's token sequence in a few tokens: the occluded gene (removed,
added or re-binned) and, rarely, genes whose bin moved because the cell's quantiles moved
(median 1 token, 90th percentile ~50 on the Kang cells).

:class:`ScGPTOcclusion` computes the CLS embedding of every copy **exactly** (same function, up
to float rounding: |Δ| ~ 1e-6 on L2-normalised embeddings) but much faster than a forward pass
per copy, by three exact rewrites of ``TransformerModel._encode`` followed by ``[:, 0]``:

1. **Deduplication.** Copies with the same token sequence share one computation; a copy whose
   tokens equal the prototype's gets the prototype's embedding (its attribution is exactly 0).
2. **Incremental first layer.** Token embeddings are per-token, so in the first layer only the
   changed tokens' queries, keys and values differ from the prototype's. For each unchanged
   query row i of head h, the softmax attention is a ratio of sums over keys,
   ``o_i = Σ_j e^{s_ij - c_i} v_j / Σ_j e^{s_ij - c_i}``; the prototype's numerator and
   denominator are computed once (float64) and each copy only subtracts the terms of its
   removed keys and adds those of its new keys: O(L·Δ·d) instead of O(L²·d) per copy. The rows
   of new tokens are computed in full. Out-projection, norms and feed-forward then run on all
   rows (they all changed slightly).
3. **CLS-only last layer.** The output is the ``<cls>`` row of the last layer, which needs that
   layer's keys and values for every token but its query, attention and feed-forward for the
   ``<cls>`` row only. Layers in between (none in the project model; 10 in whole-human) run in
   full, with removed tokens masked as padding.

Everything else (token and value encoders, norms, feed-forward, out-projection) is the model's
own modules in eval mode. ``tests/test_scgpt.py`` checks the result against the literal loop
(one forward pass of the unmodified model per perturbed copy) on real cells;
``benchmarks/scgpt.py`` times both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import scgpt as ms

__all__ = ["ScGPTOcclusion"]


def _heads(t: torch.Tensor, h: int) -> torch.Tensor:
    """(..., n, d) → (..., h, n, d/h)."""
    *lead, n, d = t.shape
    return t.reshape(*lead, n, h, d // h).transpose(-3, -2)


def _merge(t: torch.Tensor) -> torch.Tensor:
    """(..., h, n, hd) → (..., n, h·hd)."""
    *lead, h, n, hd = t.shape
    return t.transpose(-3, -2).reshape(*lead, n, h * hd)


class ScGPTOcclusion:
    """f for attribution (raw counts → scGPT CLS embedding), with exact fast occlusion.

    Calling the object is :func:`scconcepts.models.scgpt.encoder_fn` (the unmodified model);
    :meth:`occlude` embeds many single-gene perturbations of one cell at once.

    Parameters
    ----------
    model, vocab
        From :func:`scconcepts.models.scgpt.load_checkpoint` (``TransformerModel`` with standard
        ``nn.TransformerEncoderLayer`` layers, i.e. not the flash backend).
    genes
        Columns of the count matrices (all in ``vocab``), length m.
    n_bins, max_len, pad_value, seed, ties, normalize, batch_size, device
        As in :func:`scconcepts.models.scgpt.encoder_fn`.
    variants_per_batch
        Perturbed copies per incremental batch.

    Raises
    ------
    ValueError
        If the model uses domain-specific batch norm (needs batch labels) or non-standard layers.
    """

    def __init__(self, model, vocab: Mapping[str, int], genes: Sequence[str],
                 n_bins: int | None = None, *, max_len: int = 1200, batch_size: int = 32,
                 device=None, normalize: bool = True, pad_value: float | None = None,
                 seed: int = 0, ties: str = "mid", variants_per_batch: int = 64):
        self.model = model
        self.genes = list(genes)
        self.normalize = normalize
        self.batch_size = batch_size
        self.variants_per_batch = int(variants_per_batch)
        self.tok, self.device = ms._prepare(model, vocab, self.genes, n_bins, pad_value, max_len,
                                            seed, ties, device)
        if getattr(model, "dsbn", None) is not None:
            raise ValueError("Incremental occlusion does not support domain-specific batch norm "
                             "(DSBN needs batch labels); use the literal loop.")
        layers = list(model.transformer_encoder.layers)
        if not all(isinstance(l, torch.nn.TransformerEncoderLayer) for l in layers):
            raise ValueError("Incremental occlusion needs torch.nn.TransformerEncoderLayer layers "
                             "(load the checkpoint with the default, non-flash backend).")
        self.layers = layers

    # ------------------------------------------------------------------ f
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """f(x): raw counts (n, m) → CLS embeddings (n, d_model), the unmodified model."""
        m = len(self.genes)
        if x.ndim != 2 or x.shape[1] != m:
            raise ValueError(f"f expects (n, {m}) raw counts, got {tuple(x.shape)}")
        z = ms._embed_csr(self.model, self.tok, ms._as_csr(x), self.batch_size, self.device,
                          self.normalize, False, False)
        return torch.from_numpy(z).to(x.device)

    # ------------------------------------------------------------------ tokens
    def _tokens(self, x: np.ndarray):
        nz = np.flatnonzero(x)
        ids, vals = self.tok.cell(nz, x[nz])
        if len(nz) > self.tok.max_len - 1:  # the tokenizer kept a priority subset
            keep = np.sort(np.argsort(-self.tok.priority[nz], kind="stable")[: self.tok.max_len - 1])
            nz = nz[keep]
        return nz, ids, vals

    def _embed_tokens(self, ids: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
        m = self.model
        e = m.encoder(ids) + m.value_encoder(vals)
        if getattr(m, "bn", None) is not None:
            e = m.bn(e.transpose(-1, -2)).transpose(-1, -2)
        return e

    # ------------------------------------------------------------------ occlusion
    @torch.inference_mode()
    def occlude(self, x_p: np.ndarray, genes: np.ndarray, values: np.ndarray) -> np.ndarray:
        """CLS embeddings of copies of cell ``x_p`` with ``x[genes[v]] = values[v]``.

        Parameters
        ----------
        x_p
            Raw counts of the prototype, shape (m,).
        genes, values
            Column index and new count of each perturbed copy, shapes (n_variants,).

        Returns
        -------
        numpy.ndarray
            float32, shape (n_variants, d_model): f of each copy (re-binned, re-tokenised),
            L2-normalised if ``normalize``; equal to ``f`` of the copies up to float rounding.
        """
        x_p = np.asarray(x_p, dtype=np.float64)
        genes = np.asarray(genes, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        dev = self.device
        nz_b, ids_b, vals_b = self._tokens(x_p)
        L = len(ids_b)
        m = len(self.genes)
        # bin of each gene in the prototype's sequence (NaN: not in the sequence); position 0 is <cls>
        base_bin = np.full(m, np.nan)
        base_bin[nz_b] = vals_b[1:]
        base_pos = np.full(m, -1, dtype=np.int64)
        base_pos[nz_b] = np.arange(1, L)

        # ---- 1. token differences of every copy, deduplicated
        diffs: dict[tuple, int] = {}
        which = np.empty(len(genes), dtype=np.int64)
        uniq: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for v, (g, val) in enumerate(zip(genes, values)):
            x = x_p.copy()
            x[g] = val
            nz, ids, vals = self._tokens(x)
            b = vals[1:]
            new = base_bin[nz] != b                       # NaN (absent) compares unequal
            var_bin = np.full(m, np.nan)
            var_bin[nz] = b
            old = base_pos[nz_b[var_bin[nz_b] != vals_b[1:]]]
            key = (old.tobytes(), nz[new].tobytes(), b[new].tobytes())
            if key not in diffs:
                diffs[key] = len(uniq)
                uniq.append((old, ids[1:][new], b[new]))
            which[v] = diffs[key]

        # ---- prototype, first layer: projections, row maxima c and the softmax sums
        # [N | Z] = Σ_j e^{s_ij - c_i} [v_j | 1] (float64 for the sums the copies correct)
        layer = self.layers[0]
        att = layer.self_attn
        h = att.num_heads
        d = self.model.d_model
        scale = (d // h) ** -0.5
        ids_t = torch.from_numpy(np.asarray(ids_b, dtype=np.int64)).to(dev)
        vals_t = torch.from_numpy(np.asarray(vals_b, dtype=np.float32)).to(dev)
        e_b = self._embed_tokens(ids_t[None], vals_t[None])[0]            # (L, d)
        a_b = layer.norm1(e_b) if layer.norm_first else e_b
        q, k, v = (_heads(t, h) for t in
                   F.linear(a_b, att.in_proj_weight, att.in_proj_bias).split(d, -1))  # (h, L, hd)
        qs = q * scale
        S = qs.double() @ k.double().transpose(-1, -2)
        c = S.amax(-1, keepdim=True)                                     # (h, L, 1)
        P = torch.exp(S - c)
        v1 = torch.cat([v, torch.ones_like(v[..., :1])], -1)              # (h, L, hd+1)
        NZ = P @ v1.double()                                              # (h, L, hd+1)
        proto = (qs, k, v, v1, c.float(), P.float(), NZ)

        out = np.zeros((len(uniq), d), dtype=np.float32)
        empty = [i for i, (o, n_ids, _) in enumerate(uniq) if o.size == 0 and n_ids.size == 0]
        if empty:  # copies identical to the prototype
            out[empty] = self(torch.from_numpy(x_p[None].astype(np.float32))).numpy()
        skip = set(empty)
        todo = [i for i in range(len(uniq)) if i not in skip]
        # similar change sizes together: little padding
        todo.sort(key=lambda i: (len(uniq[i][0]), len(uniq[i][1])))
        B = self.variants_per_batch
        with ms._mha_fastpath(dev.type != "cpu"):
            for s in range(0, len(todo), B):
                rows = todo[s:s + B]
                out[rows] = self._batch([uniq[i] for i in rows], e_b, proto).cpu().numpy()
        return out[which]

    def _batch(self, items, e_b, proto) -> torch.Tensor:
        qs, k, v, v1, c, P, NZ = proto
        dev = self.device
        layer = self.layers[0]
        att = layer.self_attn
        h = att.num_heads
        d = self.model.d_model
        L = e_b.shape[0]
        nb = len(items)
        so = max(1, max(len(o) for o, _, _ in items))
        sn = max(1, max(len(n) for _, n, _ in items))
        old = np.zeros((nb, so), dtype=np.int64)
        mo = np.zeros((nb, so), dtype=np.float32)
        new_ids = np.full((nb, sn), self.tok.pad_id, dtype=np.int64)
        new_vals = np.full((nb, sn), self.tok.pad_value, dtype=np.float32)
        mn = np.zeros((nb, sn), dtype=bool)
        removed = np.zeros((nb, L), dtype=bool)
        for r, (o, n_ids, n_vals) in enumerate(items):
            old[r, :len(o)], mo[r, :len(o)] = o, 1.0
            removed[r, o] = True
            new_ids[r, :len(n_ids)], new_vals[r, :len(n_ids)], mn[r, :len(n_ids)] = n_ids, n_vals, True
        old_t = torch.from_numpy(old).to(dev)
        mo_t = torch.from_numpy(mo).to(dev)
        mn_t = torch.from_numpy(mn).to(dev)
        removed_t = torch.from_numpy(removed).to(dev)

        e_n = self._embed_tokens(torch.from_numpy(new_ids).to(dev),
                                 torch.from_numpy(new_vals).to(dev))      # (nb, sn, d)
        a_n = layer.norm1(e_n) if layer.norm_first else e_n
        qn, kn, vn = (_heads(t, h) for t in
                      F.linear(a_n, att.in_proj_weight, att.in_proj_bias).split(d, -1))  # (nb,h,sn,hd)
        # ---- 2. prototype rows: [N | Z] minus the removed keys' terms plus the new keys' terms;
        # masks ride on the [v | 1] rows, so no full-size masking is needed.
        vo1 = v1[:, old_t].permute(1, 0, 2, 3) * mo_t[:, None, :, None]       # (nb, h, so, hd+1)
        P_old = P.index_select(2, old_t.reshape(-1)).view(h, L, nb, so).permute(2, 0, 1, 3)
        vn1 = torch.cat([vn, torch.ones_like(vn[..., :1])], -1) * mn_t[:, None, :, None].float()
        E_new = torch.matmul(qs[None], kn.transpose(-1, -2)).sub_(c[None]).exp_()  # (nb,h,L,sn)
        NZv = NZ[None] + (E_new @ vn1 - P_old @ vo1).double()
        o_base = (NZv[..., :-1] / NZv[..., -1:]).float()                       # (nb, h, L, hd)
        # ---- new rows: full attention over the copy's keys
        keys = torch.cat([k[None].expand(nb, -1, -1, -1), kn], 2)
        vals = torch.cat([v[None].expand(nb, -1, -1, -1), vn], 2)
        ignore = torch.cat([removed_t, ~mn_t], 1)                               # (nb, L+sn)
        o_new = F.scaled_dot_product_attention(qn, keys, vals,
                                               attn_mask=~ignore[:, None, None, :])
        o = _merge(torch.cat([o_base, o_new], 2))                # (nb, L+sn, d)
        x = torch.cat([e_b[None].expand(nb, -1, -1), e_n], 1)
        y = self._finish(layer, x, att.out_proj(o))
        # ---- 3. middle layers in full, last layer for <cls> only
        for lay in self.layers[1:-1]:
            y = lay(y, src_key_padding_mask=ignore)
        if len(self.layers) > 1:
            last = self.layers[-1]
            a_in = last.norm1(y) if last.norm_first else y
            sa = last.self_attn(a_in[:, :1], a_in, a_in, key_padding_mask=ignore,
                                need_weights=False)[0]
            y = self._finish(last, y[:, :1], sa)
        cls = y[:, 0].float()
        return F.normalize(cls, p=2, dim=1) if self.normalize else cls

    @staticmethod
    def _finish(layer, x: torch.Tensor, sa: torch.Tensor) -> torch.Tensor:
        """Residual, norms and feed-forward of ``nn.TransformerEncoderLayer`` (eval mode)."""
        ff = lambda t: layer.linear2(layer.activation(layer.linear1(t)))  # noqa: E731
        if layer.norm_first:
            x = x + sa
            return x + ff(layer.norm2(x))
        x = layer.norm1(x + sa)
        return layer.norm2(x + ff(x))
