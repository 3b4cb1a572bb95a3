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
