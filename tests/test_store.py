"""The content-addressed artefact store: keys, integrity checks, resumable blocks."""

from __future__ import annotations

import numpy as np
import pytest

from scconcepts.store import ArtifactStore, file_fingerprint


def test_keys_chain_parameters_and_inputs():
    k = ArtifactStore.key("sae", {"c": 10, "k": 2}, ["embedding-aa"])
    assert k.startswith("sae-") and len(k) == len("sae-") + 16
    assert k == ArtifactStore.key("sae", {"k": 2, "c": 10}, ["embedding-aa"])  # order-free
    assert k != ArtifactStore.key("sae", {"c": 10, "k": 3}, ["embedding-aa"])
    assert k != ArtifactStore.key("sae", {"c": 10, "k": 2}, ["embedding-bb"])
    assert k != ArtifactStore.key("umap", {"c": 10, "k": 2}, ["embedding-aa"])


def test_cached_computes_once_and_recomputes_a_corrupt_file(tmp_path, caplog):
    store = ArtifactStore(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return np.arange(5.0)

    key = store.key("x", {"a": 1})
    args = (".npy", compute, ArtifactStore.save_npy, ArtifactStore.load_npy)
    np.testing.assert_array_equal(store.cached(key, *args), np.arange(5.0))
    path = store.path(key, ".npy")
    assert path.exists() and path.with_name(path.name + ".json").exists()
    assert len(calls) == 1
    ArtifactStore(tmp_path).cached(key, *args)          # a new process: loads the file
    assert len(calls) == 1
    path.write_bytes(path.read_bytes()[:-8])            # truncated, as by a crash or a full disk
    with caplog.at_level("WARNING"):
        np.testing.assert_array_equal(ArtifactStore(tmp_path).cached(key, *args), np.arange(5.0))
    assert len(calls) == 2 and "integrity" in caplog.text
    assert store.verify(path)


def test_blocks_resume_after_a_kill(tmp_path):
    store = ArtifactStore(tmp_path)
    key = store.key("attribution", {"u": 1})
    seen = []

    class Killed(RuntimeError):
        pass

    def compute(sub):
        seen.append(sub.tolist())
        if len(seen) == 2 and kill:
            raise Killed
        return sub * 10

    kill = True
    with pytest.raises(Killed):
        store.blocks(key, np.arange(7), 3, compute, ArtifactStore.save_npy,
                     ArtifactStore.load_npy, ".npy")
    kill, seen[:] = False, []
    parts = store.blocks(key, np.arange(7), 3, compute, ArtifactStore.save_npy,
                         ArtifactStore.load_npy, ".npy")
    assert seen == [[3, 4, 5], [6]]                     # the finished block was kept
    np.testing.assert_array_equal(np.concatenate(parts), np.arange(7) * 10)
    store.drop_blocks(key)
    assert not (tmp_path / "blocks" / key).exists()


def test_folder_artefacts_are_atomic(tmp_path):
    store = ArtifactStore(tmp_path)
    key = store.key("model", {"x": 1})

    def broken(tmp):
        (tmp / "model.pt").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        store.folder(key, broken, "model.pt")
    assert not store.path(key).exists()
    path = store.folder(key, lambda tmp: (tmp / "model.pt").write_text("ok"), "model.pt")
    assert (path / "model.pt").read_text() == "ok"
    assert store.folder(key, lambda tmp: pytest.fail("rebuilt"), "model.pt") == path


def test_file_fingerprint_follows_the_bytes(tmp_path):
    f = tmp_path / "a.h5ad"
    f.write_bytes(b"one")
    a = file_fingerprint(f)
    f.write_bytes(b"two!")
    assert file_fingerprint(f) != a


def _share_blocks(root, barrier, log_dir):
    """One of two runs of the same blocked artefact (a process of the test below)."""
    import os
    import time

    store = ArtifactStore(root)
    key = store.key("attribution", {"shared": 1})

    def compute(sub):
        (log_dir / f"{sub[0]}-{os.getpid()}").touch()
        time.sleep(0.3)
        return sub * 10

    barrier.wait()
    out = store.blocked(key, ".npy", np.arange(8), 1, compute, np.concatenate,
                        ArtifactStore.save_npy, ArtifactStore.load_npy)
    np.save(log_dir / f"result-{os.getpid()}.npy", out)


def test_two_runs_share_the_blocks_of_one_artefact(tmp_path):
    """Two processes asking for the same blocked artefact at once: every block is computed
    exactly once, both runs compute some of them, and both get the whole correct result."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_share_blocks, args=(tmp_path / "store", barrier, log_dir))
             for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    computed = [f.name.split("-") for f in log_dir.iterdir() if not f.name.startswith("result")]
    assert sorted(int(b) for b, _ in computed) == list(range(8))   # each block once
    assert len({pid for _, pid in computed}) == 2                  # the work was shared
    results = sorted(log_dir.glob("result-*.npy"))
    assert len(results) == 2
    for r in results:
        np.testing.assert_array_equal(np.load(r), np.arange(8) * 10)
    assert not (tmp_path / "store" / "blocks").exists() or not any(
        (tmp_path / "store" / "blocks").iterdir())                 # blocks dropped


def test_blocks_defer_to_a_run_that_assembled_the_artefact(tmp_path):
    """A missing block while the whole artefact is finished: return None (load the whole)."""
    store = ArtifactStore(tmp_path)
    key = store.key("gsea", {"u": 2})
    calls = []
    out = store.blocks(key, np.arange(4), 2, lambda s: calls.append(s) or s,
                       ArtifactStore.save_npy, ArtifactStore.load_npy, ".npy",
                       finished=lambda: True)
    assert out is None and calls == []


def test_an_unlocked_look_never_deletes_a_file_being_written(tmp_path):
    """Another run renames its data file before it writes the sidecar: a look without the lock
    skips such a file (it may be half-published); only a look under the lock deletes it."""
    store = ArtifactStore(tmp_path)
    key = store.key("embedding", {"x": 1})
    path = store.path(key, ".npy")
    path.parent.mkdir(parents=True)
    ArtifactStore.save_npy(np.arange(3), str(path))                  # data, no sidecar yet
    assert store._load(path, ArtifactStore.load_npy, locked=False) is None
    assert path.exists()
    assert store._load(path, ArtifactStore.load_npy) is None         # under the lock: corrupt
    assert not path.exists()
