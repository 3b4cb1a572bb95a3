"""Issue 12: a chapter re-executes only when what it read changed, chapters run side by side.

Two tiny chapters read different profile values through the real runner (papermill kernels,
traces, input records): an unchanged second run executes nothing, a changed parameter re-runs
exactly the chapter that read it, a changed notebook re-runs only itself, ``--force`` re-runs
all. Chapters run two at a time and the parallel results equal the serial ones.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from scconcepts import book as runner
from scconcepts import book_cache, trace
from scconcepts.config import load_config

ROOT = Path(__file__).resolve().parents[1]

HEADER = '# %% tags=["parameters"]\nprofile = "default"\nparams = {}\n\n'
READS_MIN_CELLS = HEADER + (
    "# %%\nfrom scconcepts.config import load_config\n"
    "cfg = load_config(profile, params)\nprint('min_cells', cfg.concepts.min_cells)\n")
READS_SAE_LR = HEADER + (
    "# %%\nfrom scconcepts.config import load_config\n"
    "cfg = load_config(profile, params)\nprint('lr', cfg.sae.lr, sorted(cfg.models))\n")


def _output(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))


@pytest.fixture()
def book(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    (nbs / "01_min_cells.py").write_text(READS_MIN_CELLS)
    (nbs / "02_lr.py").write_text(READS_SAE_LR)
    params = tmp_path / "params"
    params.mkdir()
    shutil.copy(ROOT / "params" / "default.yaml", params / "default.yaml")
    return {"notebooks": nbs, "params_dir": params, "out": tmp_path / "out", "root": ROOT,
            "overrides": [f"artifacts_dir={tmp_path / 'artifacts'}"]}


def _run(book, extra=(), **kw):
    runs = runner.execute(profile="default", notebooks=book["notebooks"],
                          params_dir=book["params_dir"], out=book["out"], root=book["root"],
                          overrides=[*book["overrides"], *extra], **kw)
    return sorted(r.source.stem for r in runs)


@pytest.mark.slow
def test_only_chapters_whose_inputs_changed_rerun(book):
    assert _run(book, jobs=2) == ["01_min_cells", "02_lr"]
    assert "min_cells 100" in _output(book["out"] / "01_min_cells.ipynb")
    record = json.loads(book_cache.fingerprint_path(book["out"], "01_min_cells").read_text())
    assert "concepts.min_cells" in record["params"] and "sae.lr" not in record["params"]
    assert _run(book, jobs=2) == []                                    # nothing changed
    assert _run(book, ["concepts.min_cells=25"]) == ["01_min_cells"]   # read by 01 only
    assert "min_cells 25" in _output(book["out"] / "01_min_cells.ipynb")
    assert _run(book, ["concepts.min_cells=25", "sae.lr=0.002"]) == ["02_lr"]
    assert _run(book, ["concepts.min_cells=25", "sae.lr=0.002", "models.scgpt=null"]) \
        == ["02_lr"]                                                  # 02 listed the models
    (book["notebooks"] / "01_min_cells.py").write_text(READS_MIN_CELLS + "print('edited')\n")
    assert _run(book, ["concepts.min_cells=25", "sae.lr=0.002", "models.scgpt=null"]) \
        == ["01_min_cells"]
    assert _run(book, ["concepts.min_cells=25", "sae.lr=0.002", "models.scgpt=null"],
                force=True) == ["01_min_cells", "02_lr"]


@pytest.mark.slow
def test_parallel_equals_serial(book, tmp_path):
    _run(book, jobs=2)
    parallel = {p.name: _output(p) for p in sorted(book["out"].glob("*.ipynb"))}
    book["out"] = tmp_path / "serial"
    _run(book, jobs=1)
    serial = {p.name: _output(p) for p in sorted(book["out"].glob("*.ipynb"))}
    assert parallel == serial and len(serial) == 2


def test_changed_input_file_is_detected(tmp_path, monkeypatch):
    data = tmp_path / "cells.h5ad"
    data.write_bytes(b"one")
    src = tmp_path / "01_x.py"
    src.write_text(READS_MIN_CELLS)
    out = tmp_path / "out"
    out.mkdir()
    (out / "01_x.ipynb").write_text("{}")
    cfg = load_config("default")
    monkeypatch.setenv(trace.ENV, str(book_cache.trace_path(out, "01_x")))
    trace.record("param", path="concepts.min_cells")
    trace.record("file", path=str(data), fingerprint=book_cache_fp(data))
    monkeypatch.delenv(trace.ENV)
    book_cache.write(out, src, "default", cfg)
    assert book_cache.is_fresh(out, src, "default", cfg) == (True, "")
    data.write_bytes(b"two")
    fresh, why = book_cache.is_fresh(out, src, "default", cfg)
    assert not fresh and "input file" in why
    data.unlink()
    assert "gone" in book_cache.is_fresh(out, src, "default", cfg)[1]


def book_cache_fp(path: Path) -> str:
    from scconcepts.store import file_fingerprint

    return file_fingerprint(path)


def test_untraced_profile_access_records_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv(trace.ENV, raising=False)
    cfg = load_config("default")
    assert cfg.concepts.min_cells == 100  # no trace file anywhere, no error
    log = tmp_path / "t.jsonl"
    monkeypatch.setenv(trace.ENV, str(log))
    cfg = load_config("default")
    _ = cfg.models["scvi"].c, cfg.table(["sae.lr"]), list(cfg.models)
    kinds = {(ln["kind"], ln.get("path")) for ln in trace.read(log)}
    assert ("param", "models.scvi.c") in kinds and ("param", "sae.lr") in kinds
    assert ("keys", "models") in kinds
    assert not any(p == "*" for _, p in kinds)  # cfg.table did not record the whole profile
