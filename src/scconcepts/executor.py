"""Where the blocks of a long step run: in this process, or as tasks on a Dask cluster.

The expensive steps of the book (attribution, GSEA) are computed in blocks through the artefact
store (:meth:`scconcepts.store.ArtifactStore.blocks`). With no client the store runs them in this
process, as it always has. With a :class:`distributed.Client` attached to the store
(``store.client``), :func:`run_blocks` submits one task per block that is not on disk yet, and
each task (:func:`block_task`), on whichever worker process runs it:

* opens the same store (the folder is shared: one machine, or a shared file system),
* takes the block's inter-process lock, returns at once when the block is already there (a
  retried or duplicated task, another run), else computes it and writes it atomically with its
  checksum — so a task killed with its worker leaves at most a temporary that the next store
  sweeps, and a retry can never corrupt a finished block;

then the caller loads every block from disk. The block's ``compute`` callable is scattered to
the workers once (not shipped with every task). Dask, not a scheduler of our own: retries,
worker replacement and placement are :mod:`distributed`'s (``retries`` per task; a worker
that dies has its tasks rescheduled).

This is the first step of issue 16: the execution profile section, per-worker model loading and
GPU resources build on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["block_task", "run_blocks", "RETRIES"]

#: how often a block's task is retried after its worker died or it raised
RETRIES = 3


_STORES: dict[str, Any] = {}


def _store(root: str):
    """This worker process's store at ``root``, opened (probed and swept) once, not per task."""
    from .store import ArtifactStore

    if root not in _STORES:
        _STORES[root] = ArtifactStore(root)
    return _STORES[root]


def block_task(root: str, key: str, sub: np.ndarray, suffix: str,
               compute: Callable[[np.ndarray], Any], save: Callable[[Any, str], None],
               load: Callable[[str], Any]) -> str:
    """Compute and store one block of artefact ``key`` unless it is on disk (runs on a worker).

    Parameters
    ----------
    root
        The artefact store's folder (``ArtifactStore.root``), shared with the caller.
    key, sub, suffix
        The artefact, the block's items and the file suffix (the block's own key is derived
        from them, as in :meth:`~scconcepts.store.ArtifactStore.blocks`).
    compute, save, load
        As for :meth:`~scconcepts.store.ArtifactStore.blocks`.

    Returns
    -------
    str
        The block's key.
    """
    from . import trace

    store = _store(root)
    bkey, path = store.block_path(key, sub, suffix)
    with store.lock(bkey):
        if store._load(path, load) is None:  # the store's own check-then-write, under the lock
            with trace.timed_step(bkey, of=key):
                store._write(path, save, compute(sub), {"key": bkey, "of": key})
    return bkey


def run_blocks(store, client, key: str, items: np.ndarray, block: int,
               compute: Callable[[np.ndarray], Any], save: Callable[[Any, str], None],
               load: Callable[[str], Any], suffix: str, progress: str | None = None) -> list:
    """Every block of ``items`` computed on the cluster of ``client`` (missing ones only) and
    loaded from the store, in order.

    Raises
    ------
    RuntimeError
        A block is still not on disk after its task finished (its folder is not shared with
        the workers: give the cluster a store on a shared file system).
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    starts = list(range(0, len(items), max(1, int(block))))
    subs = [np.asarray(items[s:s + block]) for s in starts]
    paths = [store.block_path(key, sub, suffix)[1] for sub in subs]
    todo = [i for i, p in enumerate(paths) if not store.verify(p)]
    if todo:
        [fn] = client.scatter([compute], broadcast=True, hash=False)
        futures = [client.submit(block_task, str(store.root), key, subs[i], suffix, fn, save,
                                 load, pure=False, retries=RETRIES) for i in todo]
        with tqdm(total=len(futures), desc=progress, leave=False,
                  disable=progress is None or len(futures) < 2) as bar:
            for fut in as_completed(futures):
                fut.result()
                bar.update()
    parts = []
    for p in paths:
        part = store._load(Path(p), load)
        if part is None:
            raise RuntimeError(f"block {p} is missing after its task finished: the workers "
                               f"write to another folder than {store.root}; put the artefacts "
                               "folder on a file system every worker shares.")
        parts.append(part)
    return parts
