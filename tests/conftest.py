"""Shared session fixtures for the unit tests.

* ``kang_small``: a seeded, cell-type-stratified subsample (~400 cells) of the bundled Kang 2018
  control PBMCs, loaded and validated through :func:`scconcepts.data.load_dataset`;
* ``scvi_ref``: a tiny reference scVI trained on it (3 epochs) into a temporary folder, with its
  posterior-mean embeddings;
* ``sae_small``: a small Top-K SAE trained on those embeddings.

Everything runs on CPU with one thread: the unit-test suite is meant to stay fast.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

N_SMALL = 400


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
