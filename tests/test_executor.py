"""Blocks of a step on a Dask cluster (issue 16, first step; :mod:`scconcepts.executor`): a
``distributed.LocalCluster`` of two worker processes computes the missing blocks through the
shared artefact store, with the same result as the local run; a repeated run computes nothing;
a worker killed mid-run is replaced and its blocks retried, with nothing partial left."""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import distributed
import numpy as np
import pytest

from scconcepts.store import ArtifactStore

pytestmark = pytest.mark.slow

ITEMS = np.arange(12)


class SlowSquare:
    """A block computation that logs every call (one line per block) and takes ``seconds``."""

    def __init__(self, log: Path, seconds: float = 0.0):
        self.log, self.seconds = str(log), seconds

    def _line(self, text: str) -> None:
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, (text + "\n").encode())
        os.close(fd)

    def __call__(self, sub: np.ndarray) -> np.ndarray:
        items = ",".join(map(str, sub))
        self._line("start " + items)
        time.sleep(self.seconds)
        self._line(items)
        return np.asarray(sub, dtype=np.float64) ** 2


def _calls(log: Path, what: str = "done") -> list[str]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [ln[6:] for ln in lines if ln.startswith("start ")] if what == "start" else \
        [ln for ln in lines if not ln.startswith("start ")]


@pytest.fixture(scope="module")
def client():
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def _run(store, compute):
    return store.blocks(store.key("gsea", {"u": 1}), ITEMS, 2, compute, ArtifactStore.save_npy,
                        ArtifactStore.load_npy, ".npy")


def _no_partial(store) -> list[str]:
    bad = [str(p) for p in (store.root / "blocks").rglob(".*")]
    bad += [str(p) for p in (store.root / "blocks").rglob("*.npy") if not store.verify(p)]
    return bad


def test_a_cluster_computes_each_missing_block_once_with_the_local_result(client, tmp_path):
    local = np.concatenate(_run(ArtifactStore(tmp_path / "local"), SlowSquare(tmp_path / "l")))
    store = ArtifactStore(tmp_path / "dask")
    store.client = client
    log = tmp_path / "calls"
    got = np.concatenate(_run(store, SlowSquare(log)))
    np.testing.assert_array_equal(got, local)
    assert sorted(_calls(log)) == sorted(f"{i},{i + 1}" for i in range(0, 12, 2))
    again = np.concatenate(_run(store, SlowSquare(log)))       # finished blocks are skipped
    np.testing.assert_array_equal(again, local)
    assert len(_calls(log)) == 6
    assert not _no_partial(store)


def test_a_worker_killed_mid_run_is_replaced_and_its_blocks_retried(client, tmp_path):
    store = ArtifactStore(tmp_path / "dask")
    store.client = client
    log = tmp_path / "calls"
    with ThreadPoolExecutor(1) as pool:                        # the caller waits meanwhile
        fut = pool.submit(_run, store, SlowSquare(log, seconds=1.0))
        while not _calls(log):                                 # the first block has landed
            time.sleep(0.1)
        victim = sorted(client.scheduler_info()["workers"])[0]
        client.run(os._exit, 1, workers=[victim], on_error="ignore")  # dies mid-block
        parts = fut.result(timeout=300)
    np.testing.assert_array_equal(np.concatenate(parts), ITEMS.astype(float) ** 2)
    started, done = _calls(log, "start"), _calls(log)
    assert sorted(done) == sorted(set(done)) and len(done) == 6   # each block stored once
    assert len(started) > len(done), "no block was interrupted by the kill"
    assert not _no_partial(store)
    client.wait_for_workers(2, timeout=120)                    # the nanny replaced it
