"""Attribution sharded by unit range (:func:`shard_units`, :func:`run_shard`,
:func:`merge_shards`); see the module docstring of :mod:`scconcepts.scale`, which re-exports
these names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

__all__ = ["shard_units", "shard_path", "run_shard", "merge_shards", "merge_shard_set",
           "empty_attribution"]


# --------------------------------------------------------------------------------------------
# attribution sharding


def shard_units(units: Sequence[int], shard: int, n_shards: int) -> np.ndarray:
    """Contiguous range ``shard`` (0-based) of ``n_shards`` balanced ranges of sorted ``units``.

    Parameters
    ----------
    units
        Unit indices (concepts or neurons) to attribute; duplicates are removed.
    shard, n_shards
        Which range, of how many (papermill parameters ``attribution_shard_index`` and
        ``attribution_shard_count``). Sizes differ by at most one unit.

    Returns
    -------
    numpy.ndarray
        int64, sorted; empty when there are fewer units than shards.

    Raises
    ------
    ValueError
        If ``n_shards < 1`` or ``shard`` is not in ``0..n_shards-1``.
    """
    if int(n_shards) < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    if not 0 <= int(shard) < int(n_shards):
        raise ValueError(f"shard must be in 0..{int(n_shards) - 1}, got {shard}")
    u = np.unique(np.asarray(list(units), dtype=np.int64))
    return np.array_split(u, int(n_shards))[int(shard)]


def shard_path(folder: str | os.PathLike, tag: str, shard: int, n_shards: int) -> Path:
    """``<folder>/<tag>_shard<iii>of<nnn>.npz``: where shard ``shard`` of ``tag`` is saved."""
    return Path(folder) / f"{tag}_shard{int(shard):03d}of{int(n_shards):03d}.npz"


def run_shard(compute: Callable[[np.ndarray], "object"], units: Sequence[int], shard: int,
              n_shards: int, folder: str | os.PathLike, tag: str):
    """Attribute the units of one shard (or load them if that shard is already saved).

    Parameters
    ----------
    compute
        ``compute(units_of_shard) -> AttributionResult`` (e.g. a closure over
        :func:`scconcepts.attribution.attribute_units`).
    units, shard, n_shards
        See :func:`shard_units`.
    folder, tag
        Where shard files go (:func:`shard_path`); ``tag`` names the model, SAE and parameters.

    Returns
    -------
    AttributionResult
        The shard's result, saved atomically to :func:`shard_path`.
    """
    from .attribution import AttributionResult

    path = shard_path(folder, tag, shard, n_shards)
    if path.exists():
        return AttributionResult.load(path)
    sub = shard_units(units, shard, n_shards)
    res = compute(sub)
    if not np.array_equal(np.sort(np.asarray(res.units)), sub):
        raise ValueError(f"compute returned units {res.units[:5]}... for shard {shard}; expected "
                         f"the shard's {len(sub)} units.")
    res.save(path)
    return res


def merge_shards(folder: str | os.PathLike, tag: str, n_shards: int,
                 units: Sequence[int] | None = None, out_path: str | os.PathLike | None = None):
    """Concatenate the ``n_shards`` shard results of ``tag`` and check that nothing is missing.

    Parameters
    ----------
    folder, tag, n_shards
        As given to :func:`run_shard`.
    units
        The full set of units that was split; when given, the merged units must equal it.
    out_path
        If given, the merged result is saved there (atomically).

    Returns
    -------
    AttributionResult
        Rows sorted by unit index.

    Raises
    ------
    FileNotFoundError
        If shard files are missing; the message lists their indices and the parameter to rerun
        each (``--set attribution_shard_index=i``).
    ValueError
        If a unit appears in two shards, or the merged units differ from ``units``.
    """
    from .attribution import AttributionResult

    paths = [shard_path(folder, tag, i, n_shards) for i in range(int(n_shards))]
    missing = [i for i, p in enumerate(paths) if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {n_shards} attribution shard(s) of {tag!r} are missing in "
            f"{folder}: {missing}. Run each with the same profile and --set "
            f"attribution_shard_count={n_shards} --set attribution_shard_index=<i>, then merge.")
    parts = [AttributionResult.load(p) for p in paths]
    parts = [p for p in parts if len(p.units)]
    if not parts:
        raise ValueError(f"All {n_shards} shards of {tag!r} are empty.")
    res = AttributionResult.concat(parts)
    order = np.argsort(res.units, kind="stable")
    for k in ("units", "scores", "per_prototype", "prototypes", "counterfactuals",
              "prototype_activation"):
        setattr(res, k, getattr(res, k)[order])
    if len(np.unique(res.units)) != len(res.units):
        dup = res.units[np.r_[False, np.diff(res.units) == 0]]
        raise ValueError(f"units {dup[:10].tolist()} appear in more than one shard of {tag!r}; "
                         "the shards were made with different unit lists.")
    if units is not None:
        want = np.unique(np.asarray(list(units), dtype=np.int64))
        if not np.array_equal(want, res.units):
            lacking = np.setdiff1d(want, res.units)[:10].tolist()
            extra = np.setdiff1d(res.units, want)[:10].tolist()
            raise ValueError(f"merged shards of {tag!r} do not cover the requested units "
                             f"(missing e.g. {lacking}, unexpected e.g. {extra}).")
    if out_path is not None:
        res.save(out_path)
    return res


def empty_attribution(kind: str, genes, n_p: int, n_c: int):
    """An :class:`~scconcepts.attribution.AttributionResult` with no unit (an empty shard)."""
    from .attribution import AttributionResult

    m = len(genes)
    return AttributionResult(
        units=np.zeros(0, dtype=np.int64), genes=np.asarray(genes, dtype=str),
        scores=np.zeros((0, m), np.float32), per_prototype=np.zeros((0, n_p, m), np.float32),
        prototypes=np.zeros((0, n_p), np.int64), counterfactuals=np.zeros((0, n_p, n_c), np.int64),
        prototype_activation=np.zeros((0, n_p), np.float32), kind=kind)


def merge_shard_set(folder: str | os.PathLike, key: str, units: Sequence[int],
                    require: bool = False):
    """Merge the complete set of shards ``<key>_shard<i>of<n>.npz`` in ``folder``.

    Returns the merged :class:`~scconcepts.attribution.AttributionResult` with rows in the
    order of ``units`` (as an unsharded run returns them), or None when no shard exists and
    ``require`` is False.

    Raises
    ------
    FileNotFoundError
        When no shard exists (``require``) or the set is incomplete (names the missing indices
        and how to run them).
    """
    folder = Path(folder)
    units = np.asarray(units, dtype=int)
    found: dict[int, list[int]] = {}
    prefix = f"{key}_shard"
    for p in folder.glob(f"{prefix}*of*.npz"):
        i, _, n = p.stem[len(prefix):].partition("of")
        if i.isdigit() and n.isdigit():
            found.setdefault(int(n), []).append(int(i))
    if not found:
        if not require:
            return None
        raise FileNotFoundError(
            f"No attribution shards of {key} in {folder}. Run the shards first: --set "
            "scale.attribution_shard_count=<n> --set scale.attribution_shard_index=<i> for "
            "i = 0..n-1 (README 'Run at paper scale').")
    complete = [n for n, idx in found.items() if len(set(idx)) == n]
    n = max(complete) if complete else max(found, key=lambda m: len(found[m]))
    try:
        merged = merge_shards(folder, key, n, units=units)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"{err} Or delete {folder}/{prefix}*of{n:03d}.npz to compute this attribution "
            "without sharding.") from None
    rows = np.searchsorted(merged.units, units)
    for field in ("units", "scores", "per_prototype", "prototypes", "counterfactuals",
                  "prototype_activation"):
        setattr(merged, field, getattr(merged, field)[rows])
    return merged
