"""Exact incremental occlusion forward passes for scGPT (the fast path of Eq 2 for a transformer).

Occlusion attribution (Sec 3.2, Eq 2) needs f(x̃^p) for every perturbed copy x̃^p of a prototype
x^p: the same cell with one gene's count replaced by the counterfactual's. For scGPT the
perturbed copy is re-binned and re-tokenised exactly as a real cell (its real input path), so a
copy differs from the prototype's token sequence in a few tokens: the occluded gene (removed,
added or re-binned) and, rarely, genes whose bin moved because the cell's quantiles moved
(median 1 token, 90th percentile ~50 on the Kang cells).

:class:`ScGPTOcclusion` computes the CLS embedding of every copy **exactly** (same function, up
to float rounding: |Δ| ~ 1e-7 on L2-normalised embeddings) but much faster than a forward pass
per copy. Notation: the prototype has L tokens (row 0 is ``<cls>``), width d, h heads of size
d_h; a copy removes the prototype rows R and adds new tokens T (|R| + |T| = Δ, usually 1-2).

0. **Token differences.** A copy's bins depend only on its multiset of non-zero values, which
   differs from the prototype's by one value a → b: the binning runs once per distinct (a, b)
   through the tokenizer, and each copy looks up which genes moved bin. Copies with equal
   differences are computed once; a copy equal to the prototype gets the prototype's embedding.
1. **First-layer attention, rank-Δ update.** Token embeddings are per token, so in the first
   layer only the rows R ∪ T differ. For a kept row i and head h, with scores s_ij, the
   prototype's row maximum c_i and E_ij = exp(s_ij - c_i) (prototype sums in float64, once)::

       Z_i = Σ_j E_ij,   o_i = Σ_j E_ij v_j / Z_i,   Z'_i = Z_i - Σ_{j∈R} E_ij + Σ_{t∈T} E_it
       o'_i = (Z_i / Z'_i) o_i + (Σ_{t∈T} E_it v_t - Σ_{j∈R} E_ij v_j) / Z'_i

   and, the out-projection being linear per head, the residual stream u = e + W_o o + b_o is::

       u'_i = u_i + Σ_h (Z_ih/Z'_ih - 1) W_o,h o_ih + Σ_h Σ_{j∈R∪T} (±E_ijh / Z'_ih) W_o,h v_jh

   with the vectors W_o,h o_ih and W_o,h v_jh of the prototype precomputed: O((h + hΔ)·d) per
   row instead of O(L·d + d²). New rows get full attention over the copy's keys. A copy in
   which some kept row has Z'_i < 10⁻³ Z_i (the removed keys held almost all of its attention,
   so the subtraction would cancel) is run through the unmodified model instead.
2. **First-layer feed-forward, piecewise linear.** For a ReLU feed-forward
   f(t) = W_2 relu(W_1 t + b_1) + b_2 at its input t = LN(u) (norm1 post-norm, norm2 pre-norm),
   let z_i = W_1 t_i + b_1 at the prototype, m_i = 1[z_i > 0] and M_i = W_2 diag(m_i) W_1 (one
   d×d matrix per row, precomputed). Exactly, with z'_i = W_1 t'_i + b_1::

       f(t'_i) = f(t_i) + M_i (t'_i - t_i) + Σ_k W_2[:, k] (relu(z'_ik) - m_ik z'_ik)

   where the terms of the sum vanish for every unit k whose sign cannot change:
   |W_1[k]·(t'_i - t_i)| ≤ ‖W_1[k]‖ ‖t'_i - t_i‖ < |z_ik|, i.e. ‖t'_i - t_i‖ below the unit's
   margin |z_ik| / ‖W_1[k]‖. Units are sorted by margin once per row; the units (at most 8)
   whose margin is below ‖t'_i - t_i‖ are corrected exactly, and a row with more runs the
   feed-forward in full. Post-norm folds the residual in: t' + f(t') = (f(t) - M t) + (I + M) t'.
   Cost d² + O(8·d) per row instead of 2·d·d_hid. This step, with step 1's residual stream and
   the layer's norms, runs per (row, copy) in one fused kernel
   (:mod:`scconcepts.models.scgpt_occlusion_rows`, numba). Other activations or devices, or a
   per-row state L·d² too large (whole-human size): the first layer in torch, in full.
3. **Last layer: the ``<cls>`` row only, without keys or values.** The output is the ``<cls>``
   row of the last layer. With a_j the attention input of row j and q the ``<cls>`` query of a
   head, ``q·(W_k a_j + b_k) = (W_kᵀ q)·a_j + q·b_k`` (the last term is the same for every j and
   drops out of the softmax) and ``Σ_j p_j (W_v a_j + b_v) = W_v (Σ_j p_j a_j) + b_v``: 2·h·d per
   row instead of 2·d² for the key and value projections. Layers in between (none in the
   project model; 10 in whole-human) run in full, with removed rows masked as padding.

Batches of copies are independent; on CPU they run on ``torch.get_num_threads()`` worker
threads with one intra-op thread each (the many small, memory-bound operations scale better
across batches than inside each, and a busy machine does not stall every operation on a
thread barrier).

Everything else (token and value encoders, norms, weights) is the model's own modules in eval
mode. ``tests/test_scgpt_occlusion.py`` checks every step against the unmodified model (one
forward pass per perturbed copy) on real cells, and the attribution against the literal loop of
Eq 2; ``benchmarks/scgpt.py`` times both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import scgpt as ms
from .scgpt_copies import cell_tokens, token_differences
from .scgpt_occlusion_rows import feed_forward_state, prototype_rows, rows_supported, workers

__all__ = ["ScGPTOcclusion"]

#: A copy whose first-layer softmax denominator of a kept row falls below this fraction of the
#: prototype's (the removed keys held almost all of that row's attention) is recomputed directly.
_MIN_Z_RATIO = 1e-3
#: Hidden units per row whose ReLU may switch that are corrected individually; rows with more
#: run the feed-forward in full.
_MAX_RISKY = 8
#: (heads, copies, Δ, L)-sized float32 arrays alive at once in :meth:`ScGPTOcclusion._batch`
#: (E_new/E_old, E, E/Z', its permuted copy, the new rows' scores): sizes the batches.
_LIVE_ARRAYS = 6


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
        Perturbed copies per incremental batch (at most).
    batch_mib
        Memory budget of one incremental batch, MiB: a batch holds fewer copies when they
        change many tokens, so that its rank-Δ arrays (heads × copies × Δ × L float32, about
        :data:`_LIVE_ARRAYS` alive at once) stay within it. Re-binning can change hundreds of
        tokens of a long cell (PBMC 4k: Δ ~ 1,000 at L = 1,200), where 32 copies took ~4 GB.
    workers
        Worker threads for the batches on CPU, each with one intra-op thread; default
        ``torch.get_num_threads()`` at call time (1: the batches run in the caller).

    Raises
    ------
    ValueError
        If the model uses domain-specific batch norm (needs batch labels), the ``scaling``
        value-embedding style, or non-standard layers.
    """

    def __init__(self, model, vocab: Mapping[str, int], genes: Sequence[str],
                 n_bins: int | None = None, *, max_len: int = 1200, batch_size: int = 32,
                 device=None, normalize: bool = True, pad_value: float | None = None,
                 seed: int = 0, ties: str = "mid", variants_per_batch: int = 32,
                 batch_mib: float = 256.0, workers: int | None = None):
        self.model = model
        self.genes = list(genes)
        self.normalize = normalize
        self.batch_size = batch_size
        self.variants_per_batch = int(variants_per_batch)
        self.batch_bytes = float(batch_mib) * 2 ** 20
        self.workers = workers
        self.tok, self.device = ms._prepare(model, vocab, self.genes, n_bins, pad_value, max_len,
                                            seed, ties, device)
        if getattr(model, "dsbn", None) is not None:
            raise ValueError("Incremental occlusion does not support domain-specific batch norm "
                             "(DSBN needs batch labels); use the literal loop.")
        if getattr(model, "input_emb_style", "continuous") == "scaling":
            raise ValueError("Incremental occlusion needs additive value embeddings "
                             "(input_emb_style 'continuous' or 'category'), not 'scaling'.")
        layers = list(model.transformer_encoder.layers)
        if not all(isinstance(l, torch.nn.TransformerEncoderLayer) for l in layers):
            raise ValueError("Incremental occlusion needs torch.nn.TransformerEncoderLayer layers "
                             "(load the checkpoint with the default, non-flash backend).")
        if getattr(model.transformer_encoder, "norm", None) is not None:
            raise ValueError("Incremental occlusion expects no final encoder norm.")
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
        nz_b, ids_b, vals_b = cell_tokens(self.tok, x_p)
        dev = self.device
        ids_t = torch.from_numpy(np.asarray(ids_b, dtype=np.int64)).to(dev)
        vals_t = torch.from_numpy(np.asarray(vals_b, dtype=np.float32)).to(dev)
        with ms._mha_fastpath(dev.type != "cpu"), workers(dev, self.workers) as ex:
            # the prototype's first layer (worker) while the token differences are found (here)
            proto = ex.submit(self._prototype, ids_t, vals_t)

            # ---- 0. token differences of every copy, deduplicated
            old, new_g, new_b = token_differences(self.tok, x_p, nz_b, vals_b, genes, values)
            key = np.concatenate([old, new_g, new_b.view(np.int32).astype(np.int64)], 1)
            _, first, which = np.unique(key, axis=0, return_index=True, return_inverse=True)
            old, new_g, new_b = old[first], new_g[first], new_b[first]
            new_ids = np.where(new_g >= 0, self.tok.gene_ids[new_g.clip(min=0)], -1)
            n_old, n_new = (old >= 0).sum(1), (new_g >= 0).sum(1)
            empty = np.flatnonzero((n_old == 0) & (n_new == 0))   # copies equal to the prototype
            todo = np.flatnonzero((n_old > 0) | (n_new > 0))
            todo = todo[np.lexsort((n_new[todo], n_old[todo]))]   # similar sizes together
            out = np.zeros((len(first), self.model.d_model), dtype=np.float32)

            def run(rows):
                if rows is None:   # the prototype itself, by the model
                    z = self._direct(ids_t, vals_t, old[:1, :0], new_ids[:1, :0], new_b[:1, :0])
                    out[empty] = self._readout(z).cpu().numpy()
                    return
                so, sn = max(1, n_old[rows].max()), max(1, n_new[rows].max())
                out[rows] = self._batch(old[rows, :so], new_ids[rows, :sn], new_b[rows, :sn],
                                        proto.result()).cpu().numpy()

            tasks = self._batches(todo, n_old, n_new, len(ids_b)) + ([None] if empty.size else [])
            for f in [ex.submit(run, rows) for rows in tasks]:
                f.result()
        return out[which.ravel()]

    def _batches(self, todo: np.ndarray, n_old: np.ndarray, n_new: np.ndarray,
                 L: int) -> list[np.ndarray]:
        """Consecutive runs of ``todo`` (sorted by size): at most ``variants_per_batch`` copies,
        and within ``batch_mib`` for the batch's largest Δ = tokens lost + tokens gained."""
        per_token = _LIVE_ARRAYS * 4 * self.layers[0].self_attn.num_heads * (L + 1)
        out, start, so, sn = [], 0, 0, 0
        for i, r in enumerate(todo):
            so2, sn2 = max(so, n_old[r]), max(sn, n_new[r])
            n = i - start + 1
            if i > start and (n > self.variants_per_batch
                              or n * (so2 + sn2) * per_token > self.batch_bytes):
                out.append(todo[start:i])
                start, so2, sn2 = i, n_old[r], n_new[r]
            so, sn = so2, sn2
        if len(todo):
            out.append(todo[start:])
        return out

    def _readout(self, cls: torch.Tensor) -> torch.Tensor:
        cls = cls.float()
        return F.normalize(cls, p=2, dim=1) if self.normalize else cls

    # ------------------------------------------------------------------ first layer
    def _prototype(self, ids_t, vals_t) -> dict:
        """First-layer quantities of the prototype shared by all copies."""
        dev = self.device
        layer = self.layers[0]
        att = layer.self_attn
        h = att.num_heads
        d = self.model.d_model
        e = self._embed_tokens(ids_t[None], vals_t[None])[0]              # (L, d)
        a = layer.norm1(e) if layer.norm_first else e
        q, k, v = (_heads(t, h) for t in
                   F.linear(a, att.in_proj_weight, att.in_proj_bias).split(d, -1))  # (h, L, hd)
        qs = q * (d // h) ** -0.5
        S = (qs @ k.transpose(-1, -2)).double()
        c = S.amax(-1, keepdim=True)                                       # (h, L, 1)
        P = torch.exp(S - c)
        Z = P.sum(-1)                                                      # (h, L)
        o = ((P @ v.double()) / Z[..., None]).float()                      # (h, L, hd)
        pr = {"ids": ids_t, "vals": vals_t, "e": e, "qs": qs, "k": k, "v": v,
              "c": c.float(), "PT": P.float().transpose(1, 2).contiguous(), "Z": Z, "o": o}
        if rows_supported(layer, e.shape[0]):
            # the first layer's rows by the fused kernel (module docstring, step 2)
            Wo = att.out_proj.weight.view(d, h, d // h).permute(1, 2, 0)    # (h, hd, d)
            pr.update(Wo=Wo, Pv=torch.matmul(v, Wo), rows=feed_forward_state(
                layer, e + att.out_proj(_merge(o)), torch.matmul(o, Wo).transpose(0, 1),
                _MAX_RISKY))
        return pr

    def _batch(self, old: np.ndarray, new_ids: np.ndarray, new_vals: np.ndarray,
               pr: dict) -> torch.Tensor:
        """Embeddings of nb copies: prototype positions they lose ``old`` (nb, so) and tokens
        they gain ``new_ids``/``new_vals`` (nb, sn), -1 padded."""
        dev = self.device
        layer = self.layers[0]
        att = layer.self_attn
        h = att.num_heads
        d = self.model.d_model
        e_b, qs, k, v, c, Z, o_b = (pr[n] for n in ("e", "qs", "k", "v", "c", "Z", "o"))
        L = e_b.shape[0]
        nb, so = old.shape
        sn = new_ids.shape[1]
        mo = old >= 0
        removed = np.zeros((nb, L), dtype=bool)
        removed[np.nonzero(mo)[0], old[mo]] = True
        mn = new_ids >= 0
        old_t = torch.from_numpy(np.where(mo, old, 0)).to(dev)
        mo_t = torch.from_numpy(mo.astype(np.float32)).to(dev)
        mn_t = torch.from_numpy(mn).to(dev)
        removed_t = torch.from_numpy(removed).to(dev)

        e_n = self._embed_tokens(
            torch.from_numpy(np.where(mn, new_ids, self.tok.pad_id)).to(dev),
            torch.from_numpy(np.where(mn, new_vals, self.tok.pad_value).astype(np.float32)).to(dev))
        a_n = layer.norm1(e_n) if layer.norm_first else e_n
        qn, kn, vn = (_heads(t, h) for t in                                # (nb, h, sn, hd)
                      F.linear(a_n, att.in_proj_weight, att.in_proj_bias).split(d, -1))
        qn = qn * (d // h) ** -0.5
        # ---- 1. prototype rows: rank-Δ update of the softmax sums, as (h, copy, key, row)
        hd = d // h
        kn_all = kn.transpose(0, 1).reshape(h, nb * sn, hd)
        E_new = torch.matmul(kn_all, qs.transpose(1, 2)).sub_(c.transpose(1, 2)).exp_()
        E_new = E_new.view(h, nb, sn, L).mul_(mn_t[:, :, None])
        E_old = pr["PT"].index_select(1, old_t.reshape(-1)).view(h, nb, so, L)
        E_old = E_old.mul(-mo_t[:, :, None])
        E = torch.cat([E_new, E_old], 2)                                   # (h, nb, Δ, L)
        Zn = Z[:, None] + E.sum(2).double()                                # (h, nb, L)
        Zn = torch.where(removed_t, Z[:, None], Zn)      # removed rows: any finite value
        bad = (Zn < _MIN_Z_RATIO * Z[:, None]).any(2).any(0)
        # ---- new rows: full attention over the copy's keys, heads first
        s = torch.cat([torch.matmul(qn.transpose(0, 1).reshape(h, nb * sn, hd), k.transpose(-1, -2))
                       .view(h, nb, sn, L).masked_fill_(removed_t[:, None, :], float("-inf")),
                       torch.matmul(qn, kn.transpose(-1, -2)).transpose(0, 1)
                       .masked_fill_(~mn_t[:, None, :], float("-inf"))], -1)   # (h, nb, sn, L+sn)
        p = torch.softmax(s, -1)
        o_n = torch.matmul(p[..., :L].reshape(h, nb * sn, L), v).view(h, nb, sn, hd)
        o_n = o_n.transpose(0, 1) + torch.matmul(p[..., L:].transpose(0, 1), vn)  # (nb,h,sn,hd)
        y_n = self._finish(layer, e_n, att.out_proj(_merge(o_n)))          # (nb, sn, d)
        if "rows" in pr:
            # ---- 1. u' = u + Σ_h (Z/Z' - 1) W_o,h o_h + Σ_{h,j} (±E_j / Z') W_o,h v_j;
            # ---- 2. the first layer's rows in the fused kernel (scgpt_occlusion_rows)
            beta = (E / Zn[:, :, None].float()).permute(1, 3, 0, 2).reshape(nb, L, -1)
            Wv = torch.cat([torch.matmul(vn, pr["Wo"]),
                            pr["Pv"][:, old_t].transpose(0, 1)], 2)       # (nb, h, Δ, d)
            alpha = (Z[:, None] / Zn - 1).float().permute(2, 1, 0).contiguous()  # (L, nb, h)
            y = np.empty((nb, L, d), np.float32)
            prototype_rows(pr["rows"][0], alpha.numpy(), pr["rows"][1],
                           torch.bmm(beta, Wv.reshape(nb, -1, d)).numpy(), *pr["rows"][2:], y)
            y = torch.from_numpy(y)
        else:              # ---- 1.-2. in torch: o' then the layer in full
            V = torch.cat([vn, v[:, old_t].permute(1, 0, 2, 3)], 2)       # (nb, h, Δ, hd)
            o = torch.matmul(E.permute(1, 0, 3, 2), V).div_(Zn.transpose(0, 1).float()[..., None])
            o.add_(o_b * (Z[:, None] / Zn).transpose(0, 1).float()[..., None])
            y = self._finish(layer, e_b, att.out_proj(_merge(o)))          # (nb, L, d)
        # ---- 3. middle layers in full, the last layer for <cls> only
        cls = y[:, 0] if len(self.layers) == 1 else self._last_layers(y, y_n, removed_t, mn_t)
        cls = cls.float()
        if bad.any():
            idx = torch.nonzero(bad).ravel().cpu().numpy()
            cls[idx] = self._direct(pr["ids"], pr["vals"], old[idx], new_ids[idx],
                                    new_vals[idx]).float()
        return self._readout(cls)

    def _last_layers(self, y_b, y_n, removed_t, mn_t) -> torch.Tensor:
        """Layers 2.. on the first layer's rows: prototype rows ``y_b`` (nb, L, d) and new rows
        ``y_n`` (nb, sn, d); middle layers in full, the last for ``<cls>`` only."""
        if len(self.layers) == 2:
            return self._cls_layer(self.layers[-1], y_b.transpose(0, 1), removed_t, y_n, ~mn_t)
        y = torch.cat([y_b, y_n], 1)
        ignore = torch.cat([removed_t, ~mn_t], 1)
        for lay in self.layers[1:-1]:
            y = lay(y, src_key_padding_mask=ignore)
        return self._cls_layer(self.layers[-1], y.transpose(0, 1), ignore)

    # ------------------------------------------------------------------ last layer
    def _cls_query(self, layer, x0: torch.Tensor) -> torch.Tensor:
        """W_kᵀ q per head (nb, h, d) for the ``<cls>`` row ``x0`` (nb, d) entering ``layer``.

        Keys and values are never formed: with q the ``<cls>`` query of head h and a_j the
        attention input of row j, ``q·(W_k a_j + b_k) = (W_kᵀ q)·a_j + const`` and
        ``Σ_j p_j (W_v a_j + b_v) = W_v (Σ_j p_j a_j) + b_v``: 2·h·d per row instead of 2·d².
        """
        att = layer.self_attn
        h, d = att.num_heads, self.model.d_model
        a0 = layer.norm1(x0) if layer.norm_first else x0
        q = F.linear(a0, att.in_proj_weight[:d], att.in_proj_bias[:d])
        q = q.view(-1, h, d // h) * (d // h) ** -0.5
        Wk = att.in_proj_weight[d:2 * d].view(h, d // h, d)
        return torch.matmul(q.transpose(0, 1), Wk).transpose(0, 1).contiguous()

    def _cls_output(self, layer, x0: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """``layer``'s ``<cls>`` output from its input row ``x0`` and Σ_j p_j a_j per head."""
        att = layer.self_attn
        h, d = att.num_heads, self.model.d_model
        Wv, bv = att.in_proj_weight[2 * d:].view(h, d // h, d), att.in_proj_bias[2 * d:]
        o = torch.matmul(ctx.transpose(0, 1), Wv.transpose(1, 2)).transpose(0, 1)  # (nb,h,hd)
        return self._finish(layer, x0, att.out_proj((o + bv.view(h, d // h)).flatten(1)))

    def _cls_layer(self, layer, y, ignore, y_n=None, ignore_n=None) -> torch.Tensor:
        """``<cls>`` output of the last layer over input rows ``y`` ((L', nb, d), any strides)
        and, optionally, ``y_n`` ((nb, sn, d)); ``ignore``/``ignore_n`` mask removed rows."""
        a = (layer.norm1(y) if layer.norm_first else y).transpose(0, 1)    # (nb, L', d)
        r = self._cls_query(layer, y[0])
        s = [torch.matmul(r, a.transpose(1, 2)).masked_fill_(ignore[:, None, :], float("-inf"))]
        if y_n is not None:
            a_n = layer.norm1(y_n) if layer.norm_first else y_n
            s.append(torch.matmul(r, a_n.transpose(1, 2)).masked_fill_(ignore_n[:, None, :],
                                                                        float("-inf")))
        p = torch.softmax(torch.cat(s, -1), -1)
        ctx = torch.matmul(p[..., :a.shape[1]], a)                         # (nb, h, d)
        if y_n is not None:
            ctx = ctx + torch.matmul(p[..., a.shape[1]:], a_n)
        return self._cls_output(layer, y[0], ctx)

    def _direct(self, ids_b, vals_b, old, new_ids, new_vals) -> torch.Tensor:
        """CLS rows of copies by the unmodified model on their token sequences (arguments as
        in :meth:`_batch`, the prototype's tokens ``ids_b``/``vals_b``)."""
        ids_np, vals_np = ids_b.cpu().numpy(), vals_b.cpu().numpy()
        seqs = []
        for o, n_ids, n_vals in zip(old, new_ids, new_vals):
            keep = np.ones(len(ids_np), dtype=bool)
            keep[o[o >= 0]] = False
            n = n_ids >= 0
            seqs.append((np.concatenate([ids_np[keep], n_ids[n]]),
                         np.concatenate([vals_np[keep], n_vals[n]])))
        ids = np.full((len(seqs), max(len(i) for i, _ in seqs)), self.tok.pad_id, dtype=np.int64)
        vals = np.full(ids.shape, self.tok.pad_value, dtype=np.float32)
        for r, (i, v) in enumerate(seqs):
            ids[r, :len(i)], vals[r, :len(v)] = i, v
        ids_t = torch.from_numpy(ids).to(ids_b.device)
        return self.model._encode(ids_t, torch.from_numpy(vals).to(ids_b.device),
                                  src_key_padding_mask=ids_t.eq(self.tok.pad_id))[:, 0]

    @staticmethod
    def _finish(layer, x: torch.Tensor, sa: torch.Tensor) -> torch.Tensor:
        """Residual, norms and feed-forward of ``nn.TransformerEncoderLayer`` (eval mode)."""
        ff = lambda t: layer.linear2(layer.activation(layer.linear1(t)))  # noqa: E731
        if layer.norm_first:
            x = x + sa
            return x + ff(layer.norm2(x))
        x = layer.norm1(x + sa)
        return layer.norm2(x + ff(x))
