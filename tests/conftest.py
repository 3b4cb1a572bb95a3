"""Shared session fixtures for the unit tests.

* ``kang_small``: a seeded, cell-type-stratified subsample (~400 cells) of the bundled Kang 2018
  control PBMCs, loaded and validated through :func:`scconcepts.data.load_dataset`;
* ``scvi_ref``: a tiny reference scVI trained on it (3 epochs) into a temporary folder, with its
  posterior-mean embeddings;
* ``sae_small``: a small Top-K SAE trained on those embeddings;
* ``smoke_book`` / ``smoke_site``: every chapter executed with the smoke profile and the book
  built strictly, once per test session however many xdist workers run (``_once``; used by
  ``test_book.py``, ``test_browser.py`` and ``test_reproduction.py``).

Everything runs on CPU with one thread: the unit-test suite is meant to stay fast.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
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


# --------------------------------------------------------------------------------------------
# the smoke book, executed and built once per session (tests/test_book.py, tests/test_browser.py)
# --------------------------------------------------------------------------------------------

BOOK_ROOT = Path(__file__).resolve().parents[1]
BOOK_NOTEBOOKS = Path(os.environ.get("SCCONCEPTS_BOOK_NOTEBOOKS", BOOK_ROOT / "notebooks"))
BOOK_PARAMS = Path(os.environ.get("SCCONCEPTS_BOOK_PARAMS", BOOK_ROOT / "params"))
BOOK_PROFILE = "smoke"


#: fixtures that need the smoke book
SMOKE_FIXTURES = {"smoke_book", "smoke_site", "site", "executed"}


def _needs_smoke(item) -> bool:
    return bool(SMOKE_FIXTURES & set(getattr(item, "fixturenames", ())))


def pytest_collection_modifyitems(config, items):
    """Tests that need the smoke book last (stable order otherwise): the xdist workers run the
    unit tests while the book executes in the background (:func:`_smoke_in_background`).
    ``make test`` distributes whole files (``--dist loadfile``): the browser tests build on one
    another's state (exports, saved files) in file order."""
    items.sort(key=_needs_smoke)


def _shared(tmp_path_factory) -> Path:
    """The session's temporary folder shared by every xdist worker (their parent)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _once(tmp_path_factory, name: str, make):
    """``make(folder)`` once per test session, however many xdist workers ask: the first
    worker runs it under a file lock in the session's shared temporary folder, the others wait
    and read its JSON result (the pattern of pytest-xdist's documentation, "Making session-
    scoped fixtures execute only once"). ``make`` returns a JSON-able dict."""
    import json

    from filelock import FileLock

    shared = _shared(tmp_path_factory)
    folder, result = shared / name, shared / f"{name}.json"
    with FileLock(str(shared / f"{name}.lock")):
        if not result.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            result.write_text(json.dumps(make(folder)))
    return json.loads(result.read_text())


def _smoke_folder(tmp_path_factory, start: bool):
    """The smoke run's folder; with ``start``, launch the runner's CLI there once per session
    (every chapter, smoke profile, ``--jobs 2 --keep-going``, artefacts in the folder) as a
    background process writing ``log`` and then ``rc``. Returns (folder, process or None)."""
    from filelock import FileLock

    shared = _shared(tmp_path_factory)
    tmp = shared / "smoke"
    proc = None
    with FileLock(str(shared / "smoke.lock")):
        if start and not tmp.exists():
            tmp.mkdir()
            cmd = [
                sys.executable, "-m", "scconcepts.book", "execute", "--profile", BOOK_PROFILE,
                "--out", str(tmp / "executed"), "--notebooks", str(BOOK_NOTEBOOKS),
                "--params-dir", str(BOOK_PARAMS), "--root", str(BOOK_ROOT),
                "--set", f"artifacts_dir={tmp / 'artifacts'}", "--jobs", "2", "--keep-going",
            ]
            script = ('"$@" > "$LOG" 2>&1; echo $? > "$RC.tmp" && mv "$RC.tmp" "$RC"')
            proc = subprocess.Popen(["bash", "-c", script, "smoke", *cmd], cwd=BOOK_ROOT,
                                    env={**os.environ, "LOG": str(tmp / "log"),
                                         "RC": str(tmp / "rc")},
                                    start_new_session=True)
            (tmp / "started").write_text(str(time.time()))
    return tmp, proc


@pytest.fixture(scope="session", autouse=True)
def _smoke_in_background(request, tmp_path_factory):
    """Start the smoke book at the session's first test when any selected test needs it, so it
    runs while the unit tests do. At the end of this worker's session the book is waited for
    (another worker may still need it), or killed when the session stops on a failure."""
    if not any(_needs_smoke(it) for it in request.session.items):
        yield
        return
    _, proc = _smoke_folder(tmp_path_factory, start=True)
    yield
    if proc is not None and proc.poll() is None:
        if request.session.shouldfail or request.session.shouldstop:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory):
    """Every notebook executed with the smoke profile by the runner's CLI in one call, two
    chapters side by side (``--jobs 2``) and ``--keep-going``, so that each failing chapter
    reports its own failure; once per session, started in the background
    (:func:`_smoke_in_background`) and waited for here. Artifacts go to a temporary folder, so
    the run proves the chapters work from scratch.

    Returns a namespace: ``out`` (executed notebooks), ``errors`` ({stem: log tail}),
    ``artifacts`` (the ``artifacts_dir`` used), ``params`` (the validated profile used),
    ``seconds`` (wall time of the run, from its start to its end).
    """
    from scconcepts import book as runner
    from scconcepts.config import load_config

    sources = sorted(BOOK_NOTEBOOKS.glob(runner.NOTEBOOK_GLOB))
    tmp, _ = _smoke_folder(tmp_path_factory, start=True)
    deadline = time.time() + 3600
    while not (tmp / "rc").is_file():
        if time.time() > deadline:
            pytest.fail(f"the smoke book in {tmp} did not finish within an hour; see {tmp}/log")
        time.sleep(0.5)
    seconds = (tmp / "rc").stat().st_mtime - float((tmp / "started").read_text())
    log = (tmp / "log").read_text(errors="replace")
    out, artifacts = tmp / "executed", tmp / "artifacts"
    errors: dict[str, str] = {}
    for src in sources:
        if not (out / f"{src.stem}.ipynb").is_file():
            lines = [ln for ln in log.splitlines() if src.stem in ln or src.name in ln]
            errors[src.stem] = "\n".join(lines[-20:]) + "\n--- log tail ---\n" + log[-3000:]
    profile = load_config(BOOK_PROFILE, {"artifacts_dir": str(artifacts)},
                          params_dir=BOOK_PARAMS)
    return SimpleNamespace(out=out, errors=errors, artifacts=artifacts, params=profile,
                           sources=sources, seconds=seconds)


@pytest.fixture(scope="session")
def smoke_site(smoke_book, tmp_path_factory):
    """A copy of the book sources with the smoke-executed chapters, built strictly (once per
    session, shared by the xdist workers)."""
    from scconcepts import book as runner

    if smoke_book.errors:
        pytest.fail(f"not built: notebooks failed to execute: {', '.join(smoke_book.errors)}")

    def make(src):
        if not runner.mathjax_vendored(BOOK_ROOT):
            runner.vendor_mathjax(BOOK_ROOT)
        shutil.copy2(BOOK_ROOT / "_config.yml", src / "_config.yml")
        shutil.copy2(BOOK_ROOT / "_toc.yml", src / "_toc.yml")
        shutil.copytree(BOOK_ROOT / "book", src / "book",
                        ignore=shutil.ignore_patterns("_executed", "_build",
                                                      ".ipynb_checkpoints"))
        (src / "book" / "_executed").mkdir()
        for nb in smoke_book.out.glob("*.ipynb"):
            if not nb.name.endswith(".failed.ipynb"):
                shutil.copy2(nb, src / "book" / "_executed" / nb.name)
        proc = subprocess.run(
            [sys.executable, "-m", "scconcepts.book", "build", "--strict", "--root", str(src)],
            cwd=src, capture_output=True, text=True,
        )
        return {"root": str(src), "returncode": proc.returncode, "stdout": proc.stdout,
                "stderr": proc.stderr, "args": proc.args}

    done = _once(tmp_path_factory, "site", make)
    proc = subprocess.CompletedProcess(done["args"], done["returncode"], done["stdout"],
                                       done["stderr"])
    root = Path(done["root"])
    return {"root": root, "html": root / "_build" / "html", "proc": proc}


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="session")
def chromium():
    """Factory of headless Chromium drivers (Debian's ``chromium`` + ``chromium-driver``, which
    ``.ci/run`` installs), one way for every browser test: ``chromium(width, height,
    downloads=None)`` returns a selenium driver with the browser console captured
    (``get_log("browser")``) and, with ``downloads``, file downloads allowed into that folder
    (``driver.downloads``). The caller quits it."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Chromium and its driver are needed: apt-get install chromium chromium-driver "
                    "(.ci/run does it).")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    def make(width: int = 1400, height: int = 1000, downloads: Path | None = None):
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    f"--window-size={width},{height}", "--no-first-run", "--disable-extensions",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-default-apps"):
            opts.add_argument(arg)
        if downloads is not None:
            opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                                   "download.prompt_for_download": False})
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # an explicit driver path: selenium-manager never tries to download one
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        if downloads is not None:
            driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                                   {"behavior": "allow", "downloadPath": str(downloads)})
        driver.downloads = downloads
        return driver

    return make
