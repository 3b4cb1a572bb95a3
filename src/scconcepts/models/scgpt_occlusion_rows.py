"""Fused kernel for the prototype rows of the scGPT occlusion fast path (numba, CPU).

Step 2 of :mod:`scconcepts.models.scgpt_occlusion` for a batch of copies, one pass over (row,
copy): the residual stream u' (from step 1's terms), the norm, the first layer's ReLU
feed-forward as the prototype's linearisation plus hinge corrections, and the layer's output.
The per-row matrix (I + M_l)ᵀ multiplies all copies of row l at once (BLAS); the rest stays in
cache instead of a dozen passes over (copies × rows × width) arrays. Norm statistics and the
distance to the hinges accumulate in float64. Also here: the prototype-only arguments of the
kernel (:func:`feed_forward_state`) and the worker threads the batches of copies run on
(:func:`workers`).
"""

from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba comes with scanpy
    njit = None

__all__ = ["workers", "rows_supported", "feed_forward_state", "prototype_rows"]

#: reassociation and contraction (vectorised sums), no assumption of finite values
_FAST = {"reassoc", "contract", "arcp", "nsz"}
#: largest per-row matrices (L·d² floats) kept for a prototype
_MAX_STATE_BYTES = 256 * 2 ** 20


class _Inline:
    """``submit`` runs the task at once (the serial executor)."""

    @staticmethod
    def submit(fn, *args) -> Future:
        f: Future = Future()
        f.set_result(fn(*args))
        return f


class _Inference:
    """A thread pool whose tasks run in inference mode (a thread-local setting)."""

    def __init__(self, ex: ThreadPoolExecutor):
        self.ex = ex

    def submit(self, fn, *args) -> Future:
        def task():
            with torch.inference_mode():
                return fn(*args)
        return self.ex.submit(task)


@contextmanager
def workers(device: torch.device, n: int | None = None):
    """Executor for independent tasks: on CPU, ``n`` (default ``torch.get_num_threads()``)
    worker threads running one intra-op thread each (the many small operations of a batch of
    copies scale better across batches than inside each operation, and a busy machine does
    not stall every operation on a thread barrier); otherwise the caller runs them."""
    threads = torch.get_num_threads()
    n = threads if n is None else n
    if device.type != "cpu" or n <= 1:
        yield _Inline()
        return
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(n) as ex:
            yield _Inference(ex)
    finally:
        torch.set_num_threads(threads)


def rows_supported(layer, L: int) -> bool:
    """Whether the kernel runs ``layer`` (CPU, ReLU, linearisation cheaper than the
    feed-forward and its L·d² state small enough); else the layer runs in torch in full."""
    act = layer.activation
    d, dh = layer.linear1.in_features, layer.linear1.out_features
    return (njit is not None and layer.linear1.weight.device.type == "cpu"
            and (act is F.relu or isinstance(act, torch.nn.ReLU)) and d <= dh
            and layer.linear1.bias is not None and layer.linear2.bias is not None
            and 4 * L * d * d <= _MAX_STATE_BYTES)


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)


def _ln(norm) -> np.ndarray:
    """(2, d): weight and bias of a LayerNorm (ones and zeros without an affine part)."""
    d = norm.normalized_shape[0]
    w = norm.weight if norm.weight is not None else torch.ones(d)
    b = norm.bias if norm.bias is not None else torch.zeros(d)
    return np.stack([_np(w), _np(b)])


def feed_forward_state(layer, u: torch.Tensor, Po: torch.Tensor, max_risky: int) -> tuple:
    """Arguments of :func:`prototype_rows` that depend on the prototype only: its residual
    stream ``u`` (L, d), W_o,h o_h ``Po`` (L, h, d), and the feed-forward around it."""
    ln_t = layer.norm2 if layer.norm_first else layer.norm1
    t = ln_t(u)                                                        # feed-forward input
    W1, b1, W2 = layer.linear1.weight, layer.linear1.bias, layer.linear2.weight
    z1 = F.linear(t, W1, b1)                                            # (L, d_hid)
    on = (z1 > 0).to(z1.dtype)
    margin = z1.abs() / W1.norm(dim=1)                  # distance of t to each unit's hinge
    msort, order = margin.sort(-1)
    top = order[:, :min(max_risky, W1.shape[0])]
    MT = torch.matmul(W1.t().contiguous()[None] * on[:, None, :], W2.t())   # M_lᵀ (L, d, d)
    c0 = layer.linear2(torch.relu(z1)) - torch.bmm(t[:, None], MT)[:, 0]   # f(t) - M t
    if not layer.norm_first:
        MT = MT + torch.eye(MT.shape[1], device=MT.device)                  # (I + M_l)ᵀ
    return tuple(_np(x) for x in (u, Po, t, c0, MT, msort * (1 - 1e-4), W1[top], b1[top],
                                  on.gather(1, top), W2.t()[top], W1, b1, W2,
                                  layer.linear2.bias)) + (
        _ln(ln_t), ln_t.eps, _ln(layer.norm2), layer.norm2.eps, not layer.norm_first)


def _jit(fn):
    return fn if njit is None else njit(nogil=True, fastmath=_FAST, cache=True)(fn)


@_jit
def _layer_norm(x, g, b, eps, out):
    d = x.shape[0]
    m = 0.0
    for i in range(d):
        m += x[i]
    m /= d
    v = 0.0
    for i in range(d):
        c = x[i] - m
        v += c * c
    r = 1.0 / math.sqrt(v / d + eps)
    for i in range(d):
        out[i] = (x[i] - m) * r * g[i] + b[i]


@_jit
def prototype_rows(u0, alpha, Po, B, t0, c0, NT, msort, W1r, b1r, onr, W2r, W1, b1, W2, b2,
                   ln_t, eps_t, ln_y, eps_y, post, y):
    """First-layer output ``y`` (nb, L, d) of the prototype rows for a batch of nb copies.

    Parameters
    ----------
    u0, alpha, Po, B
        Residual stream u' = u0 + Σ_h alpha_h Po_h + B (step 1): the prototype's (L, d),
        Z/Z' - 1 per row, copy and head (L, nb, h), W_o,h o_h (L, h, d) and the changed keys'
        term (nb, L, d).
    t0, c0, NT, msort, W1r, b1r, onr, W2r
        Feed-forward around the prototype (``ScGPTOcclusion._prototype``): its input,
        f(t0) - M t0, (I + M)ᵀ (post-norm) or Mᵀ, sorted hinge margins, and the K nearest hinges'
        W_1 rows, biases, signs and W_2 columns, per row (L, ...).
    W1, b1, W2, b2
        The feed-forward, for rows with more than K hinges within reach.
    ln_t, eps_t, ln_y, eps_y, post
        (2, d) weight and bias, eps, of the norm before the feed-forward and of the post-norm
        after it (``post``; pre-norm adds the residual u' instead).
    """
    L, nb, h = alpha.shape
    d = u0.shape[1]
    K = W1r.shape[1]
    dh = W1.shape[0]
    U = np.empty((nb, d), np.float32)
    T = np.empty((nb, d), np.float32)
    reach = np.empty(nb, np.int64)
    hid = np.empty(dh, np.float32)
    for l in range(L):
        for b in range(nb):
            u, t = U[b], T[b]
            for i in range(d):
                u[i] = u0[l, i] + B[b, l, i]
            for k in range(h):
                f = alpha[l, b, k]
                for i in range(d):
                    u[i] += f * Po[l, k, i]
            _layer_norm(u, ln_t[0], ln_t[1], eps_t, t)   # the norm, then the distance |t' - t|
            dist = 0.0
            for i in range(d):
                c = t[i] - t0[l, i]
                dist += c * c
            dist = math.sqrt(dist)
            n = 0                                # hinges within reach of t'
            while n < dh and msort[l, n] <= dist:
                n += 1
            reach[b] = n
        Wl = T @ NT[l]                           # (I +) M t', all copies at once
        for b in range(nb):
            u, t, w = U[b], T[b], Wl[b]
            n = reach[b]
            if n <= K:                           # f(t') = f(t) + M (t' - t) + hinge corrections
                for i in range(d):
                    w[i] += c0[l, i]
                for k in range(n):
                    z = b1r[l, k]
                    for i in range(d):
                        z += W1r[l, k, i] * t[i]
                    g = np.float32(max(z, 0.0) - onr[l, k] * z)
                    if g != 0.0:
                        for i in range(d):
                            w[i] += g * W2r[l, k, i]
            else:                                # the feed-forward in full
                for j in range(dh):
                    z = b1[j]
                    for i in range(d):
                        z += W1[j, i] * t[i]
                    hid[j] = max(z, 0.0)
                for o in range(d):
                    z = b2[o]
                    for j in range(dh):
                        z += W2[o, j] * hid[j]
                    w[o] = z + t[o] if post else z
            if post:
                _layer_norm(w, ln_y[0], ln_y[1], eps_y, y[b, l])
            else:
                for i in range(d):
                    y[b, l, i] = w[i] + u[i]
