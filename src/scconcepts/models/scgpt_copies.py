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


def _padded(diffs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[(old, new_g, new_b)] → the padded arrays of :func:`token_differences`."""
    n = len(diffs)
    so = max([len(o) for o, _, _ in diffs] + [1])
    sn = max([len(g) for _, g, _ in diffs] + [1])
    old = np.full((n, so), -1, dtype=np.int64)
    new_g = np.full((n, sn), -1, dtype=np.int64)
    new_b = np.zeros((n, sn), dtype=np.float32)
    for v, (o, g, b) in enumerate(diffs):
        k = np.argsort(g, kind="stable")
        old[v, :len(o)], new_g[v, :len(g)], new_b[v, :len(g)] = np.sort(o), g[k], b[k]
    return old, new_g, new_b


def token_differences_loop(tok, x_p, nz_b, vals_b, genes, values):
    """:func:`token_differences` by tokenising every copy (any cell length)."""
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
        out.append((old, nz[new], b[new].astype(np.float32)))
    return _padded(out)


def token_differences(tok, x_p, nz_b, vals_b, genes, values):
    """How each copy ``x_p`` with ``x[genes[v]] = values[v]`` differs from the prototype's tokens.

    A copy's bins are a function of its multiset of non-zero values, which differs from the
    prototype's by one value: old count ``a`` → new count ``b``. The copy's binning is therefore
    computed once per distinct (a, b), through the tokenizer itself; the occluded gene's own
    token is then looked up for all copies at once, and only copies whose (a, b) moves other
    genes' bins take a per-copy step. Cells that the tokenizer may truncate (``max_len``) take
    the per-copy loop.

    Parameters
    ----------
    tok
        The tokenizer (``scgpt_tokens._Tokenizer``).
    x_p, nz_b, vals_b
        Prototype counts (m,), and its kept columns and token values (:func:`cell_tokens`).
    genes, values
        Column and new count of each copy, shapes (n,).

    Returns
    -------
    old : ndarray of int64, shape (n, s_o)
        Sequence positions (1..L-1) of the prototype tokens the copy loses, ascending, -1 padded.
    new_g : ndarray of int64, shape (n, s_n)
        Columns of the tokens the copy gains, ascending, -1 padded.
    new_b : ndarray of float32, shape (n, s_n)
        Their bins (0 where padded).
    """
    if np.count_nonzero(x_p) + 1 > tok.max_len - 1:
        return token_differences_loop(tok, x_p, nz_b, vals_b, genes, values)
    genes = np.asarray(genes, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    xb = x_p[nz_b]                                    # prototype values (gene order)
    bb = np.asarray(vals_b[1:], dtype=np.float32)     # and bins
    lv, inv = np.unique(xb, return_inverse=True)      # value levels of the prototype
    lbin = np.empty(len(lv), dtype=np.float32)
    lbin[inv] = bb
    pos = np.full(len(tok.gene_ids), -1, dtype=np.int64)
    pos[nz_b] = np.arange(len(nz_b))
    a_all = x_p[genes]
    live = a_all != values
    ab, pair = np.unique(np.stack([a_all, values], 1), axis=0, return_inverse=True)
    pair = pair.ravel()
    b_bin = np.full(len(ab), np.nan, dtype=np.float32)   # bin of the new count (NaN: b = 0)
    rebins: list = []                                     # other genes that move bin, per (a, b)
    for i, (a, b) in enumerate(ab):
        if a == b:
            rebins.append(None)
            continue
        if a > 0:
            idx = int(np.flatnonzero(xb == a)[0])
            vc = np.delete(xb, idx) if b == 0 else np.concatenate([np.delete(xb, idx), [b]])
        else:
            vc = np.concatenate([xb, [b]])
        if vc.size == 0:                          # the copy has no gene left
            rebins.append(None)
            continue
        _, vbins = tok.cell(np.arange(len(vc)), vc)
        vbins = vbins[1:]
        cl, ci = np.unique(vc, return_index=True)
        k = np.searchsorted(cl, lv).clip(max=len(cl) - 1)
        present = cl[k] == lv
        nbin = np.where(present, vbins[ci[k]], np.nan).astype(np.float32)
        moved = np.flatnonzero(present & (nbin != lbin))       # levels that changed bin
        rebin = np.flatnonzero(np.isin(inv, moved))             # prototype genes on them
        if b > 0:
            b_bin[i] = vbins[ci[np.searchsorted(cl, b)]]
        rebins.append((rebin, nbin[inv[rebin]]) if rebin.size else None)
    # the occluded gene's own token, all copies at once
    kg = pos[genes]
    bv = b_bin[pair]
    own_bin = np.full(len(genes), np.nan, dtype=np.float32)
    own_bin[kg >= 0] = bb[kg[kg >= 0]]
    same = bv == own_bin                                    # same bin: its token is unchanged
    own_old = np.where(live & (kg >= 0) & ~same, kg + 1, -1)
    own_new = np.where(live & ~np.isnan(bv) & ~same, genes, -1)
    general = [v for v in np.flatnonzero(live) if rebins[pair[v]] is not None]
    if not general:
        return (own_old[:, None], own_new[:, None],
                np.where(own_new >= 0, bv, 0).astype(np.float32)[:, None])
    rows = []
    for v in general:                          # copies that also move other genes' bins
        rebin, nb_ = rebins[pair[v]]
        keep = rebin != kg[v]
        o, g, b = rebin[keep] + 1, nz_b[rebin[keep]], nb_[keep]
        if own_old[v] >= 0:
            o = np.append(o, own_old[v])
        if own_new[v] >= 0:
            g, b = np.append(g, own_new[v]), np.append(b, bv[v])
        rows.append((o, g, b))
    old_g, new_gg, new_bg = _padded(rows)
    old = np.full((len(genes), old_g.shape[1]), -1, dtype=np.int64)
    new_g = np.full((len(genes), new_gg.shape[1]), -1, dtype=np.int64)
    new_b = np.zeros(new_g.shape, dtype=np.float32)
    old[:, 0], new_g[:, 0] = own_old, own_new
    new_b[:, 0] = np.where(own_new >= 0, bv, 0)
    old[general], new_g[general], new_b[general] = old_g, new_gg, new_bg
    return old, new_g, new_b
