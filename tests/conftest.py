"""Shared session fixtures for the unit tests.

* ``kang_small``: a seeded, cell-type-stratified subsample (~400 cells) of the bundled Kang 2018
  control PBMCs, loaded and validated through :func:`scconcepts.data.load_dataset`;
* ``scvi_ref``: a tiny reference scVI trained on it (3 epochs) into a temporary folder, with its
  posterior-mean embeddings;
* ``sae_small``: a small Top-K SAE trained on those embeddings;
* ``smoke_book`` / ``smoke_site``: every chapter executed with the smoke profile and the book
  built strictly, once per session (used by ``test_book.py`` and ``test_browser.py``).

Everything runs on CPU with one thread: the unit-test suite is meant to stay fast.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

N_SMALL = 400

#: fixtures of the one smoke book of the session: their tests share one xdist worker
SMOKE_FIXTURES = {"smoke_book", "smoke_site", "site", "executed"}


def pytest_collection_modifyitems(config, items):
    """Tests that use the smoke book run on one xdist worker (``--dist loadgroup``), so the
    book is executed once per session, however many workers there are."""
    for item in items:
        if SMOKE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("smoke_book"))


def stratified_subsample(adata, n: int, key: str, seed: int):
    """Seeded subsample of about ``n`` cells, proportional per ``obs[key]`` label (≥ 3 each)."""
    rng = np.random.default_rng(seed)
    groups = adata.obs.groupby(key, observed=True).indices
    frac = n / adata.n_obs
    idx = np.concatenate([rng.choice(ix, max(3, int(round(len(ix) * frac))), replace=False)
                          for _, ix in sorted(groups.items())])
    return adata[np.sort(idx)].copy()


@pytest.fixture(scope="session")
def kang_full():
    from scconcepts.data import load_dataset

    return load_dataset("kang2018_pbmc_ctrl", required_obs=("cell_type", "donor_id"))


@pytest.fixture(scope="session")
def kang_small(kang_full):
    return stratified_subsample(kang_full, N_SMALL, "cell_type", seed=0)


@pytest.fixture(scope="session")
def scvi_ref(kang_small, tmp_path_factory):
    from scconcepts.models import scvi as ms

    save_dir = tmp_path_factory.mktemp("scvi") / "reference"
    model = ms.train_reference(kang_small, save_dir, max_epochs=3, seed=0, accelerator="cpu")
    z = ms.embed(model)
    return SimpleNamespace(model=model, save_dir=save_dir, adata=kang_small, z=z)


@pytest.fixture(scope="session")
def sae_small(scvi_ref):
    from scconcepts.sae import SAEConfig, encode, train_sae

    config = SAEConfig(d=scvi_ref.z.shape[1], c=32, k=4, lr=1e-3, epochs=20, batch_size=64,
                       seed=0)
    sae, _ = train_sae(scvi_ref.z, config, device="cpu", progress=False)
    return SimpleNamespace(sae=sae, config=config, codes=encode(sae, scvi_ref.z))


# --------------------------------------------------------------------------------------------
# the smoke book, executed and built once per session (tests/test_book.py, tests/test_browser.py)
# --------------------------------------------------------------------------------------------

BOOK_ROOT = Path(__file__).resolve().parents[1]
BOOK_NOTEBOOKS = Path(os.environ.get("SCCONCEPTS_BOOK_NOTEBOOKS", BOOK_ROOT / "notebooks"))
BOOK_PARAMS = Path(os.environ.get("SCCONCEPTS_BOOK_PARAMS", BOOK_ROOT / "params"))
BOOK_PROFILE = "smoke"


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory):
    """Execute every notebook (smoke profile) with the runner's CLI in one call, two chapters
    side by side (``--jobs 2``) and ``--keep-going``, so that each failing chapter reports its
    own failure. Artifacts go to a temporary folder, so the run proves the chapters work from
    scratch.

    Returns a namespace: ``out`` (executed notebooks), ``errors`` ({stem: log tail}),
    ``artifacts`` (the ``artifacts_dir`` used), ``params`` (the validated profile used),
    ``seconds`` (wall time of the run).
    """
    import time

    from scconcepts import book as runner
    from scconcepts.config import load_config

    sources = sorted(BOOK_NOTEBOOKS.glob(runner.NOTEBOOK_GLOB))
    tmp = tmp_path_factory.mktemp("smoke")
    out = tmp / "executed"
    artifacts = tmp / "artifacts"
    profile = load_config(BOOK_PROFILE, {"artifacts_dir": str(artifacts)},
                          params_dir=BOOK_PARAMS)
    cmd = [
        sys.executable, "-m", "scconcepts.book", "execute", "--profile", BOOK_PROFILE,
        "--out", str(out), "--notebooks", str(BOOK_NOTEBOOKS), "--params-dir", str(BOOK_PARAMS),
        "--root", str(BOOK_ROOT), "--set", f"artifacts_dir={artifacts}", "--jobs", "2",
        "--keep-going",
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=BOOK_ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    log = proc.stdout + proc.stderr
    errors: dict[str, str] = {}
    for src in sources:
        if not (out / f"{src.stem}.ipynb").is_file():
            lines = [ln for ln in log.splitlines() if src.stem in ln or src.name in ln]
            errors[src.stem] = "\n".join(lines[-20:]) + "\n--- log tail ---\n" + log[-3000:]
    return SimpleNamespace(out=out, errors=errors, artifacts=artifacts, params=profile,
                           sources=sources, seconds=seconds)


@pytest.fixture(scope="session")
def smoke_site(smoke_book, tmp_path_factory):
    """A copy of the book sources with the smoke-executed chapters, built strictly."""
    from scconcepts import book as runner

    if smoke_book.errors:
        pytest.fail(f"not built: notebooks failed to execute: {', '.join(smoke_book.errors)}")
    if not runner.mathjax_vendored(BOOK_ROOT):
        runner.vendor_mathjax(BOOK_ROOT)
    src = tmp_path_factory.mktemp("site")
    shutil.copy2(BOOK_ROOT / "_config.yml", src / "_config.yml")
    shutil.copy2(BOOK_ROOT / "_toc.yml", src / "_toc.yml")
    shutil.copytree(BOOK_ROOT / "book", src / "book",
                    ignore=shutil.ignore_patterns("_executed", "_build", ".ipynb_checkpoints"))
    (src / "book" / "_executed").mkdir()
    for nb in smoke_book.out.glob("*.ipynb"):
        if not nb.name.endswith(".failed.ipynb"):
            shutil.copy2(nb, src / "book" / "_executed" / nb.name)
    proc = subprocess.run(
        [sys.executable, "-m", "scconcepts.book", "build", "--strict", "--root", str(src)],
        cwd=src, capture_output=True, text=True,
    )
    html = src / "_build" / "html"
    return {"root": src, "html": html, "proc": proc}
