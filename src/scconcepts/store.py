"""One content-addressed artefact store: every cached result of the book goes through it.

An artefact's key is a hash of its step name, its own parameters and the keys of its inputs
(:meth:`ArtifactStore.key`), so a change anywhere upstream (a dataset's bytes, a subsample, a
seed, a model's weights, an SAE parameter) gives every downstream artefact a new key and it is
recomputed; nothing else is. Datasets are keyed by content (the file's bytes plus how it was
subsampled), fitted models by their recipe and training data, downloaded models by their weights.

Files live at ``<root>/<step>/<key><suffix>`` and are written atomically (temporary file +
``os.replace``), each with a sidecar ``<file>.json`` holding its SHA-256 and the recipe that
made it (step, parameters, input keys). On load the checksum is verified; a corrupt or truncated
file is logged, deleted and recomputed. Long steps run in blocks (:meth:`ArtifactStore.blocks`):
finished blocks are kept, so an interrupted run resumes where it stopped.

Several runs may share one store (two terminals, the runner's parallel chapters, a cluster
array): an artefact is computed under a file lock of its key (``<root>/.locks/<key>.lock``,
:mod:`filelock`), so a second run waits for the first and then loads its result instead of
computing it again. A run killed at any moment leaves at most temporaries, which the next run
deletes (:meth:`ArtifactStore.sweep`); an unwritable or full folder raises :class:`StoreError`
naming the folder and the space needed, with nothing partial kept. Every load and computation
is recorded in the chapter's trace (:mod:`scconcepts.trace`), with its wall and CPU time.

No other code builds cache paths; the Census download cache (:mod:`scconcepts.data.census`)
holds inputs, and :mod:`scconcepts.scale`'s chunk store lives in a folder this store names.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import trace
from .store_space import StoreError, _nbytes, prepare_root, storage_problem
from .utils import atomic_write

__all__ = ["ArtifactStore", "StoreError", "file_fingerprint", "content_key", "prepare_root"]

log = logging.getLogger("scconcepts.store")


def _json_default(o: Any):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "model_dump"):
        return o.model_dump()
    if hasattr(o, "__dict__"):
        return o.__dict__
    raise TypeError(f"cannot hash {type(o).__name__} in a cache key")


def content_key(*parts: Any) -> str:
    """SHA-1 (hex) of a JSON rendering of ``parts`` (sorted keys; numpy values as Python)."""
    blob = json.dumps(parts, sort_keys=True, default=_json_default).encode()
    return hashlib.sha1(blob).hexdigest()


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


_FINGERPRINTS: dict[tuple[str, int, int], str] = {}


def file_fingerprint(path: str | os.PathLike) -> str:
    """SHA-1 of a file's bytes (16 hex digits), memoised per (path, size, mtime) in-process."""
    path = Path(path).resolve()
    st = path.stat()
    memo = (str(path), st.st_size, st.st_mtime_ns)
    if memo not in _FINGERPRINTS:
        with open(path, "rb") as fh:
            _FINGERPRINTS[memo] = hashlib.file_digest(fh, "sha1").hexdigest()[:16]
    trace.record("file", path=str(path), fingerprint=_FINGERPRINTS[memo])
    return _FINGERPRINTS[memo]


#: an artefact key, ``<step>-<16 hex>`` (:meth:`ArtifactStore.key`)
_KEY = re.compile(r"^[^.]+-[0-9a-f]{16}$")


class ArtifactStore:
    """Content-addressed cache under ``root`` (``artifacts/<profile>/``).

    Parameters
    ----------
    root
        Folder of the store (created, and proven writable).

    Attributes
    ----------
    client
        None (blocks run in this process) or a :class:`distributed.Client` whose cluster
        computes the blocks of :meth:`blocks` (:mod:`scconcepts.executor`).

    Raises
    ------
    StoreError
        ``root`` cannot be created or written.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = prepare_root(root)
        self._memo: dict[str, Any] = {}
        self._locks: dict[str, Any] = {}
        self.client = None  # a distributed.Client: blocks run on its cluster (executor.py)
        self.sweep()

    # ------------------------------------------------------------------ keys and paths
    @staticmethod
    def key(step: str, params: Mapping[str, Any] | None = None,
            inputs: Sequence[str] = ()) -> str:
        """``<step>-<16 hex>``: hash of the step, its parameters and its inputs' keys."""
        digest = content_key(step, dict(params or {}), [str(i) for i in inputs])
        return f"{step}-{digest[:16]}"

    def path(self, key: str, suffix: str = "") -> Path:
        step = key.split("-", 1)[0]
        return self.root / step / f"{key}{suffix}"

    def lock(self, key: str):
        """Inter-process lock of artefact ``key`` (:class:`filelock.FileLock`, re-entrant)."""
        from filelock import FileLock

        if key not in self._locks:
            folder = self.root / ".locks"
            folder.mkdir(parents=True, exist_ok=True)
            self._locks[key] = FileLock(str(folder / f"{key}.lock"))
        return self._locks[key]

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """In-process cache of a value by its key (no file)."""
        if key not in self._memo:
            with trace.timed_step(key, memo=True):
                self._memo[key] = compute()
        return self._memo[key]

    # ------------------------------------------------------------------ temporary files
    def sweep(self) -> int:
        """Delete the temporary files and folders of writers that died (SIGKILL, power loss).

        Every artefact is written under its key's lock to a temporary name (``.<key>...``)
        renamed when complete. A temporary whose key's lock is free has no live writer (the
        system releases a dead process's lock): it is deleted; one whose lock is held belongs
        to a run writing it now and is left. Returns the number deleted.
        """
        from filelock import Timeout

        n = 0
        folders = [d for d in self.root.iterdir() if d.is_dir() and d.name not in (".locks",)]
        blocks = self.root / "blocks"
        if blocks.is_dir():
            folders += [d for d in blocks.iterdir() if d.is_dir()]
        for folder in folders:
            try:  # another run may drop a folder of blocks meanwhile
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                continue
            for entry in entries:
                key = entry.name[1:].split(".", 1)[0]
                if not entry.name.startswith(".") or not _KEY.match(key):
                    continue  # not the temporary of an artefact (e.g. a chapter's own file)
                lock = self.lock(key)
                try:
                    lock.acquire(timeout=0)
                except Timeout:
                    continue  # a live run is writing it
                try:
                    log.info("removing %s, left by a run that was killed", entry.path)
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.remove(entry.path)
                    n += 1
                except FileNotFoundError:
                    pass
                finally:
                    lock.release()
        return n

    # ------------------------------------------------------------------ files
    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(path.name + ".json")

    def _write(self, path: Path, save: Callable[[Any, str], None], value: Any,
               recipe: dict) -> None:
        try:
            atomic_write(path, lambda tmp: save(value, tmp))
            meta = {**recipe, "sha256": _sha256(path), "bytes": path.stat().st_size}
            atomic_write(self._sidecar(path),
                         lambda tmp: Path(tmp).write_text(json.dumps(meta,
                                                                     default=_json_default)))
        except Exception as err:
            # no data file without its checksum: a failed sidecar takes the data file with it
            path.unlink(missing_ok=True)
            problem = storage_problem(self.root, err, str(recipe.get("key", path.name)),
                                      _nbytes(value))
            if problem is None:
                raise
            raise problem from err

    @staticmethod
    def verify(path: Path) -> bool:
        """True when ``path`` and its sidecar exist and the checksum matches."""
        side = ArtifactStore._sidecar(path)
        try:  # (a file another run deletes meanwhile, e.g. a dropped block, is not intact)
            meta = json.loads(side.read_text())
            return meta.get("bytes") == path.stat().st_size and meta.get("sha256") == _sha256(path)
        except (OSError, ValueError, AttributeError):
            return False

    def exists(self, key: str, suffix: str = "") -> bool:
        return self.verify(self.path(key, suffix))

    def _discard(self, path: Path, why: str) -> None:
        log.warning("artefact %s %s: deleted, recomputing", path, why)
        path.unlink(missing_ok=True)
        self._sidecar(path).unlink(missing_ok=True)

    def cached(self, key: str, suffix: str, compute: Callable[[], Any],
               save: Callable[[Any, str], None], load: Callable[[str], Any],
               recipe: Mapping[str, Any] | None = None, memo: bool = True) -> Any:
        """Load artefact ``key`` if present and intact, else ``compute()`` and save it.

        ``save(value, path)`` writes to a temporary path (renamed after), ``load(path)`` reads.
        A file that fails its checksum or cannot be loaded is deleted and recomputed.
        """
        if memo and key in self._memo:
            return self._memo[key]
        path = self.path(key, suffix)
        value = self._load(path, load, locked=False)
        if value is None:
            with self.lock(key):
                value = self._load(path, load)  # another run may have made it meanwhile
                if value is None:
                    with trace.timed_step(key):
                        value = compute()
                        self._write(path, save, value, {"key": key, **dict(recipe or {})})
        trace.record("artifact", key=key)
        if memo:
            self._memo[key] = value
        return value

    def _load(self, path: Path, load: Callable[[str], Any], locked: bool = True) -> Any:
        """The artefact at ``path`` if present, intact and readable, else None.

        ``locked``: the caller holds the artefact's lock, so a file that fails its check is
        corrupt and deleted. Without the lock it may be one another run is writing (data file
        renamed, sidecar not yet): then it is only skipped, never deleted.
        """
        if not path.exists():
            return None
        if not self.verify(path):
            if locked:
                self._discard(path, "failed its integrity check")
            return None
        try:
            return load(str(path))
        except Exception as exc:  # noqa: BLE001 - any reader error means unusable
            if locked:
                self._discard(path, f"could not be read ({type(exc).__name__}: {exc})")
            return None

    def folder(self, key: str, build: Callable[[Path], None], marker: str,
               recipe: Mapping[str, Any] | None = None) -> Path:
        """A folder artefact (e.g. a saved scVI model): ``build(tmp_folder)`` then rename.

        ``marker`` names the file inside whose checksum the sidecar keeps.
        """
        path = self.path(key)
        trace.record("artifact", key=key)
        if path.is_dir() and self.verify(path / marker):
            return path
        with self.lock(key):
            return self._build_folder(path, key, build, marker, recipe)

    def _build_folder(self, path: Path, key: str, build: Callable[[Path], None], marker: str,
                      recipe: Mapping[str, Any] | None) -> Path:
        if path.is_dir() and self.verify(path / marker):  # another run finished it meanwhile
            return path
        with trace.timed_step(key):
            return self._build_new_folder(path, key, build, marker, recipe)

    def _build_new_folder(self, path: Path, key: str, build: Callable[[Path], None],
                          marker: str, recipe: Mapping[str, Any] | None) -> Path:
        if path.exists():
            log.warning("artefact folder %s incomplete or corrupt: rebuilding", path)
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
        try:
            build(tmp)
            meta = {"key": key, **dict(recipe or {}), "sha256": _sha256(tmp / marker),
                    "bytes": (tmp / marker).stat().st_size}
            (tmp / (marker + ".json")).write_text(json.dumps(meta, default=_json_default))
            try:
                os.replace(tmp, path)
            except OSError:  # another run finished the same artefact first: use it
                if not (path.is_dir() and self.verify(path / marker)):
                    raise
        except Exception as err:
            problem = storage_problem(self.root, err, key, None)
            if problem is None:
                raise
            raise problem from err
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return path

    def blocks(self, key: str, items: np.ndarray, block: int, compute: Callable[[np.ndarray], Any],
               save: Callable[[Any, str], None], load: Callable[[str], Any],
               suffix: str, progress: str | None = None,
               finished: Callable[[], bool] | None = None) -> list | None:
        """Run ``compute(sub)`` over blocks of ``items``, each finished block kept on disk.

        Blocks live in ``<root>/blocks/<key>/``; an interrupted run loads the finished ones.
        Call :meth:`drop_blocks` once the assembled result is saved.

        Runs that share the store share the work: a block whose lock another run holds is put
        back at the end of the queue and the next free block is computed instead; only when
        nothing else is left does a run wait for it (then load it). Two chapters that need the
        same attribution at the same time thus each compute about half of its blocks.

        Returns None when a block is missing while ``finished()`` is true: another run has
        assembled the whole artefact (and may have dropped the blocks), so load that instead.
        """
        from collections import deque

        from filelock import Timeout
        from tqdm.auto import tqdm

        if self.client is not None:  # a Dask cluster computes the blocks (scconcepts.executor)
            from .executor import run_blocks

            return run_blocks(self, self.client, key, items, block, compute, save, load,
                              suffix, progress)
        starts = list(range(0, len(items), max(1, int(block))))
        queue, deferred, parts = deque(starts), set(), {}
        with tqdm(total=len(starts), desc=progress, leave=False,
                  disable=progress is None or len(starts) < 2) as bar:
            while queue:
                start = queue.popleft()
                sub = np.asarray(items[start:start + block])
                bkey, path = self.block_path(key, sub, suffix)
                part = self._load(path, load, locked=False)
                if part is None:
                    lock = self.lock(bkey)
                    try:  # a block another run is computing: do the others first
                        lock.acquire(timeout=-1 if start in deferred else 0)
                    except Timeout:
                        deferred.add(start)
                        queue.append(start)
                        continue
                    try:
                        part = self._load(path, load)
                        if part is None:
                            if finished is not None and finished():
                                return None
                            with trace.timed_step(bkey, of=key):
                                part = compute(sub)
                                self._write(path, save, part, {"key": bkey, "of": key})
                    finally:
                        lock.release()
                parts[start] = part
                bar.update()
        return [parts[s] for s in starts]

    def blocked(self, key: str, suffix: str, items: np.ndarray, block: int,
                compute: Callable[[np.ndarray], Any], combine: Callable[[list], Any],
                save: Callable[[Any, str], None], load: Callable[[str], Any],
                recipe: Mapping[str, Any] | None = None, progress: str | None = None) -> Any:
        """Artefact ``key`` assembled by ``combine`` from :meth:`blocks` of ``items`` (cached).

        Unless the whole artefact is on disk, its blocks are computed first, outside the key's
        lock, so that other runs on the store share them (:meth:`blocks`); the whole is then
        saved (or loaded, when another run assembled it meanwhile, or recomputed from blocks,
        when it is corrupt) through :meth:`cached`, and the blocks dropped. Parts and the whole
        use the same ``save``/``load``.
        """
        if key in self._memo:
            return self._memo[key]
        path = self.path(key, suffix)
        parts = None  # None after blocks(): another run assembled the whole meanwhile
        if not path.exists():
            parts = self.blocks(key, items, block, compute, save, load, suffix, progress,
                                finished=lambda: self.verify(path))

        def assemble():
            return combine(parts if parts is not None else self.blocks(
                key, items, block, compute, save, load, suffix, progress))

        value = self.cached(key, suffix, assemble, save, load, recipe)
        self.drop_blocks(key)
        return value

    def block_path(self, key: str, sub: np.ndarray, suffix: str) -> tuple[str, Path]:
        """(key, file) of the block of artefact ``key`` holding items ``sub``."""
        bkey = self.key("block", {"items": np.asarray(sub).tolist()}, [key])
        return bkey, self.root / "blocks" / key / f"{bkey}{suffix}"

    def drop_blocks(self, key: str) -> None:
        shutil.rmtree(self.root / "blocks" / key, ignore_errors=True)

    # ------------------------------------------------------------------ savers
    @staticmethod
    def save_npy(value: np.ndarray, path: str) -> None:
        with open(path, "wb") as fh:
            np.save(fh, value)

    @staticmethod
    def load_npy(path: str) -> np.ndarray:
        return np.load(path)

    @staticmethod
    def save_parquet(value, path: str) -> None:
        value.to_parquet(path)

    @staticmethod
    def load_parquet(path: str):
        import pandas as pd

        return pd.read_parquet(path)
