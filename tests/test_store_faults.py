"""The artefact store under faults (issue 15, items 3-5): corrupt artefacts of every kind are
detected, logged and recomputed; a writer killed by SIGKILL leaves only a temporary that the next
run deletes; an unwritable or full artefacts folder fails with a message naming the folder and
the space needed, and keeps nothing partial.

The full-disk and read-only cases mount a small tmpfs (a real ``ENOSPC`` / ``EROFS``); where
mounting is not permitted (not root) the read-only case falls back to ``chmod`` and the full
disk case is skipped with the reason.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scconcepts.store import ArtifactStore, StoreError

ROOT = Path(__file__).resolve().parents[1]


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:  # flip one byte in the middle: same size, different content
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["flip", "truncate"])
@pytest.mark.parametrize("kind", ["npy", "parquet", "block", "folder"])
def test_a_damaged_artefact_is_detected_logged_and_recomputed(tmp_path, caplog, kind, how):
    calls = []
    value = np.arange(40.0).reshape(8, 5)

    def run(store):
        key = store.key(kind, {"n": 8})
        if kind == "npy":
            return store.cached(key, ".npy", lambda: calls.append(1) or value,
                                ArtifactStore.save_npy, ArtifactStore.load_npy), \
                store.path(key, ".npy")
        if kind == "parquet":
            frame = pd.DataFrame(value, columns=list("abcde"))
            out = store.cached(key, ".parquet", lambda: calls.append(1) or frame,
                               ArtifactStore.save_parquet, ArtifactStore.load_parquet)
            return out.to_numpy(), store.path(key, ".parquet")
        if kind == "block":
            parts = store.blocks(key, np.arange(8), 4, lambda s: calls.append(1) or value[s],
                                 ArtifactStore.save_npy, ArtifactStore.load_npy, ".npy")
            block = sorted((store.root / "blocks" / key).glob("*.npy"))[0]
            return np.concatenate(parts), block

        def build(folder):
            calls.append(1)
            np.save(folder / "model.npy", value)

        folder = store.folder(key, build, marker="model.npy")
        return np.load(folder / "model.npy"), folder / "model.npy"

    got, path = run(ArtifactStore(tmp_path))
    np.testing.assert_array_equal(got, value)
    first = len(calls)
    _damage(path, how)
    with caplog.at_level("WARNING", logger="scconcepts.store"):
        got, path = run(ArtifactStore(tmp_path))  # a new run: no in-process memo
    np.testing.assert_array_equal(got, value)
    assert len(calls) > first, "the damaged artefact was used instead of recomputed"
    assert "corrupt" in caplog.text or "integrity" in caplog.text, caplog.text
    assert ArtifactStore(tmp_path).verify(path)


KILLED_WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from scconcepts.store import ArtifactStore

    store = ArtifactStore(sys.argv[1])

    def slow_save(value, path):
        with open(path, "wb") as fh:
            fh.write(b"half an artefact")
            fh.flush()
            print("writing", flush=True)
            time.sleep(60)                      # SIGKILLed here, mid-write

    store.cached(store.key("slow", {}), ".npy", lambda: np.arange(3), slow_save,
                 ArtifactStore.load_npy)
""")


def test_a_writer_killed_mid_write_leaves_nothing_the_next_run_keeps(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    key = ArtifactStore.key("slow", {})
    temps = list((tmp_path / "slow").glob(f".{key}*"))
    assert len(temps) == 1
    # while the writer lives, a second run leaves its temporary alone (it holds the lock)
    ArtifactStore(tmp_path)
    assert temps[0].exists()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert temps[0].exists()                    # SIGKILL runs no cleanup
    store = ArtifactStore(tmp_path)             # the next run sweeps it
    assert not temps[0].exists()
    assert not store.path(key, ".npy").exists()
    np.testing.assert_array_equal(
        store.cached(key, ".npy", lambda: np.arange(3), ArtifactStore.save_npy,
                     ArtifactStore.load_npy), np.arange(3))
    assert sorted(p.name for p in (tmp_path / "slow").iterdir()) == [f"{key}.npy",
                                                                      f"{key}.npy.json"]


def _mount_tmpfs(folder: Path, options: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                         capture_output=True)
    return res.returncode == 0


def _umount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def full_disk(tmp_path):
    folder = tmp_path / "small"
    if not _mount_tmpfs(folder, "size=1m"):
        pytest.skip("mounting a 1 MB tmpfs needs root (CAP_SYS_ADMIN); run as root to test "
                    "a full disk")
    yield folder
    _umount(folder)


@pytest.fixture
def read_only(tmp_path):
    folder = tmp_path / "ro"
    if _mount_tmpfs(folder, "ro,size=1m"):
        yield folder
        _umount(folder)
        return
    folder.chmod(0o555)                        # not root: permissions do the same
    yield folder
    folder.chmod(0o755)


def test_a_full_artefacts_folder_names_folder_and_space_and_keeps_nothing(full_disk):
    store = ArtifactStore(full_disk / "store")
    big = np.ones(600_000)                     # 4.8 MB on a 1 MB disk
    key = store.key("embedding", {"n": 1})
    with pytest.raises(StoreError) as err:
        store.cached(key, ".npy", lambda: big, ArtifactStore.save_npy, ArtifactStore.load_npy)
    msg = str(err.value)
    assert str(full_disk / "store") in msg and "is full" in msg
    assert "needs about 4.6 MB" in msg and "free" in msg and "artifacts_dir" in msg
    assert not list((full_disk / "store" / "embedding").iterdir())   # no temp, no partial file
    with pytest.raises(StoreError, match="is full"):                  # a folder artefact too
        store.folder(store.key("model", {}), lambda d: np.save(d / "w.npy", big), "w.npy")
    assert not list((full_disk / "store" / "model").iterdir())
    small = store.cached(store.key("embedding", {"n": 2}), ".npy", lambda: np.arange(3.0),
                         ArtifactStore.save_npy, ArtifactStore.load_npy)
    np.testing.assert_array_equal(small, np.arange(3.0))             # the store still works


def test_an_unwritable_artefacts_folder_fails_before_any_kernel_starts(read_only):
    with pytest.raises(StoreError) as err:
        ArtifactStore(read_only / "default")
    assert str(read_only / "default") in str(err.value) and "not writable" in str(err.value)
    proc = subprocess.run(
        [sys.executable, "-m", "scconcepts.book", "execute", "--profile", "smoke", "--only",
         "01", "--out", str(read_only.parent / "out"), "--root", str(ROOT),
         "--set", f"artifacts_dir={read_only}"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 3                # InputError: nothing was started
    assert "not writable" in proc.stderr and str(read_only / "smoke") in proc.stderr
    assert "executing" not in proc.stderr      # no kernel was started


# --------------------------------------------------------------------------------------------
# corrupt inputs: a clear error, and the file is never rewritten
# --------------------------------------------------------------------------------------------


@pytest.fixture
def data_copy(tmp_path, monkeypatch):
    """A copy of the bundled data folder (``$SCCONCEPTS_DATA``), caches cleared."""
    import shutil

    from scconcepts import data

    folder = tmp_path / "data"
    shutil.copytree(data.data_dir(), folder)
    monkeypatch.setenv("SCCONCEPTS_DATA", str(folder))
    data._VERIFIED.clear()
    data._load_gene_sets_cached.cache_clear()
    yield folder
    data._VERIFIED.clear()
    data._load_gene_sets_cached.cache_clear()


@pytest.mark.parametrize("how", ["flip", "truncate"])
@pytest.mark.parametrize("what", ["dataset", "gene sets", "gene table"])
def test_a_corrupt_bundled_input_stops_with_a_clear_error_and_is_kept(data_copy, what, how):
    from scconcepts import data

    rel, load = {"dataset": ("scrna/kang2018_pbmc_ifnb.h5ad",
                             lambda: data.load_dataset("kang2018_pbmc_ifnb")),
                 "gene sets": ("genesets/PanglaoDB_2020_human.gmt",
                               lambda: data.load_gene_sets("PanglaoDB_2020_human")),
                 "gene table": ("genes/human_gene_info.tsv.gz", data.load_gene_info)}[what]
    if what == "gene table":
        data.load_gene_info.cache_clear()
    path = data_copy / rel
    _damage(path, how)
    damaged = path.read_bytes()
    with pytest.raises(data.DataValidationError, match="corrupt") as err:
        load()
    assert str(path) in str(err.value) and "git checkout -- data/" + rel in str(err.value)
    assert path.read_bytes() == damaged        # never rewritten
    data.load_gene_info.cache_clear()


def test_corrupt_user_inputs_stop_with_a_clear_error_and_are_kept(tmp_path):
    from scconcepts import data

    h5ad = tmp_path / "mine.h5ad"
    h5ad.write_bytes((data.data_dir() / "scrna/kang2018_pbmc_ifnb.h5ad").read_bytes()[:200_000])
    gmt = tmp_path / "mine.gmt"
    gmt.write_bytes(b"SET\tdesc\tCD3E\tCD4\n" + bytes(range(256)) * 4)
    before = {p: p.read_bytes() for p in (h5ad, gmt)}
    with pytest.raises(data.DataValidationError, match="complete .h5ad"):
        data.load_dataset(h5ad)
    with pytest.raises(data.DataValidationError, match="not a text GMT file"):
        data.read_gmt(gmt)
    assert {p: p.read_bytes() for p in (h5ad, gmt)} == before
