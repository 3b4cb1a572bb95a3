"""Token differences of perturbed copies of a cell, for scGPT occlusion (step 0 of
:mod:`scconcepts.models.scgpt_occlusion`).

A copy of a prototype cell with one gene's count replaced (a → b) is re-binned and re-tokenised
like any cell (``scgpt_tokens._Tokenizer``). The incremental forward pass only needs how its
tokens differ from the prototype's: the prototype positions it loses (the gene itself, genes
whose bin moved) and the (gene, bin) tokens it gains.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cell_tokens", "token_differences", "token_differences_loop"]


def cell_tokens(tok, x: np.ndarray):
    """Columns kept in the sequence (non-zero, priority subset if too long), ids and values."""
    nz = np.flatnonzero(x)
    ids, vals = tok.cell(nz, x[nz])
    if len(nz) > tok.max_len - 1:  # the tokenizer kept a priority subset
        keep = np.sort(np.argsort(-tok.priority[nz], kind="stable")[: tok.max_len - 1])
        nz = nz[keep]
    return nz, ids, vals


def token_differences_loop(tok, x_p, nz_b, vals_b, genes, values):
    """Token differences of each copy, by tokenising every copy (any cell length)."""
    m = len(tok.gene_ids)
    L = len(vals_b)
    base_bin = np.full(m, np.nan)
    base_bin[nz_b] = vals_b[1:]
    base_pos = np.full(m, -1, dtype=np.int64)
    base_pos[nz_b] = np.arange(1, L)
    out = []
    for g, val in zip(genes, values):
        x = x_p.copy()
        x[g] = val
        nz, ids, vals = cell_tokens(tok, x)
        b = vals[1:]
        new = base_bin[nz] != b                       # NaN (absent) compares unequal
        var_bin = np.full(m, np.nan)
        var_bin[nz] = b
        old = base_pos[nz_b[var_bin[nz_b] != vals_b[1:]]]
        out.append((np.sort(old), nz[new], b[new].astype(np.float32)))
    return out


def token_differences(tok, x_p, nz_b, vals_b, genes, values):
    """Token differences of each copy: (removed prototype positions, new genes, their bins).

    A copy's bins are a function of its multiset of non-zero values, which differs from the
    prototype's by one value: old count ``a`` → new count ``b``. The copy's binning is
    therefore computed once per distinct (a, b), through the tokenizer itself, and each copy
    only looks up which genes changed bin. Cells that the tokenizer may truncate
    (``max_len``) take the per-copy loop.
    """
    if np.count_nonzero(x_p) + 1 > tok.max_len - 1:
        return token_differences_loop(tok, x_p, nz_b, vals_b, genes, values)
    xb = x_p[nz_b]                                    # prototype values (gene order)
    bb = np.asarray(vals_b[1:], dtype=np.float32)     # and bins
    lv, inv = np.unique(xb, return_inverse=True)      # value levels of the prototype
    lbin = np.empty(len(lv), dtype=np.float32)
    lbin[inv] = bb
    pos = np.full(len(tok.gene_ids), -1, dtype=np.int64)
    pos[nz_b] = np.arange(len(nz_b))
    a_all = x_p[genes]
    out: list = [None] * len(genes)
    maps: dict[tuple[float, float], tuple] = {}
    for v in range(len(genes)):
        g, a, b = int(genes[v]), float(a_all[v]), float(values[v])
        if a == b:
            out[v] = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
            continue
        mp = maps.get((a, b))
        if mp is None:
            if a > 0:
                idx = int(np.flatnonzero(xb == a)[0])
                vc = np.delete(xb, idx) if b == 0 else np.concatenate([np.delete(xb, idx), [b]])
            else:
                vc = np.concatenate([xb, [b]])
            _, vbins = tok.cell(np.arange(len(vc)), vc)
            vbins = vbins[1:]
            cl, ci = np.unique(vc, return_index=True)
            k = np.searchsorted(cl, lv).clip(max=len(cl) - 1)
            present = cl[k] == lv
            nbin = np.where(present, vbins[ci[k]], np.nan).astype(np.float32)
            moved = np.flatnonzero(present & (nbin != lbin))   # levels that changed bin
            rebin = np.flatnonzero(np.isin(inv, moved))         # prototype genes on them
            b_bin = np.float32(vbins[ci[np.searchsorted(cl, b)]]) if b > 0 else None
            mp = maps[(a, b)] = (rebin, nbin, b_bin)
        rebin, nbin, b_bin = mp
        kg = pos[g]
        if kg >= 0:
            rebin = rebin[rebin != kg]
        old = rebin + 1
        new_g = nz_b[rebin]
        new_b = nbin[inv[rebin]]
        same = kg >= 0 and b_bin is not None and b_bin == bb[kg]
        if kg >= 0 and not same:
            old = np.sort(np.concatenate([old, [kg + 1]]))
        if b_bin is not None and not same:
            new_g = np.concatenate([new_g, [g]])
            new_b = np.concatenate([new_b, [b_bin]])
        out[v] = (old, new_g, new_b.astype(np.float32))
    return out
