"""The whole smoke book under faults (issue 15): killed at random moments, two runs on one
artefacts folder, and another torch thread count.

Each test compares against the session's uninterrupted smoke run (``smoke_book``: every
chapter, ``--jobs 2``, a fresh artefacts folder):

* **kill anywhere** — the same command is SIGKILLed (the runner, its chapter workers and their
  kernels together) at ten seeded random moments spread over the run and restarted each time;
  the final artefacts and glued values are bit-identical to the uninterrupted run's, no
  temporary or partial file survives, and nothing finished before a kill is computed again;
* **concurrency** — two runs of chapter 01 start together on one empty artefacts folder: every
  artefact is computed by exactly one of them and both glue the uninterrupted run's values;
* **determinism across threads** — the book with ``torch_threads=2`` glues every number within
  :data:`REL_TOL` of the one-thread run and every verdict identically (the README's
  determinism contract).

These are the long tests of ``make test`` (each re-executes part or all of the smoke book).
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

#: kills of the kill-anywhere test (the issue asks for at least ten)
N_KILLS = 10
#: relative tolerance of a glued number across torch thread counts (the determinism contract)
REL_TOL = 0.02
#: absolute tolerance, for numbers near zero (differences, correlations, p-values)
ABS_TOL = 0.02


def _cmd(art: Path, out: Path, *extra: str, only: str | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "scconcepts.book", "execute", "--profile", "smoke",
           "--out", str(out), "--root", str(ROOT), "--set", f"artifacts_dir={art}",
           "--jobs", "2", *extra]
    return cmd + (["--only", only, "--jobs", "1"] if only else [])


def glued(path: Path) -> dict[str, str]:
    """Name → text of every value a notebook glues."""
    nb = nbformat.read(path, as_version=4)
    out = {}
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            name = o.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                data = o.get("data", {})
                out[name] = data.get("text/markdown") or data.get("text/plain", "")
    return out


def _book_glued(out: Path) -> dict[str, str]:
    return {f"{nb.stem}:{k}": v for nb in sorted(out.glob("[0-9][0-9]_*.ipynb"))
            if not nb.name.endswith(".failed.ipynb") for k, v in glued(nb).items()}


def _artefacts(art: Path) -> dict[str, str]:
    """Relative path → SHA-256 of every file of an artefacts folder except the lock files."""
    out = {}
    for p in sorted(art.rglob("*")):
        rel = p.relative_to(art)
        if p.is_file() and ".locks" not in rel.parts:
            out[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _used(out: Path) -> set[str | None]:
    """Keys of the artefacts the executed chapters in ``out`` used (their input records)."""
    return {None} | {key for rec in out.glob(".*.inputs.json")
                     for key in json.loads(rec.read_text()).get("artifacts", [])}


def _key_of(rel: str) -> str | None:
    """The artefact key of a file of the store (``<profile>/<step>/<key>...``), or None for a
    chapter's own files (the viewer pages), which count as used."""
    parts = Path(rel).parts
    return None if parts[1] == "viewer" else parts[2].split(".", 1)[0]


#: what scvi-tools writes into a saved model besides the model: a random registry id and the
#: time of training (``attr_dict``); everything else of an scVI model.pt must be identical
SCVI_VOLATILE = {"_scvi_uuid", "run_name_"}


def _same_content(a: Path, b: Path) -> bool:
    """Files whose bytes differ but whose content is identical: an scVI ``model.pt`` (the
    weights and every attribute but :data:`SCVI_VOLATILE`) and its checksum sidecar."""
    import torch

    if a.name == "model.pt.json":
        x, y = json.loads(a.read_text()), json.loads(b.read_text())
        return {k: v for k, v in x.items() if k not in ("sha256", "bytes")} == \
            {k: v for k, v in y.items() if k not in ("sha256", "bytes")} \
            and _same_content(a.with_suffix(""), b.with_suffix(""))
    if a.name != "model.pt" or a.parent.parent.name != "scvi":
        return False

    def flat(obj, prefix=""):
        if isinstance(obj, dict):
            return {k2: v2 for k, v in obj.items() if k not in SCVI_VOLATILE
                    for k2, v2 in flat(v, f"{prefix}/{k}").items()}
        if isinstance(obj, torch.Tensor):
            obj = obj.numpy()
        return {prefix: pickle.dumps(obj)}

    x, y = (flat(torch.load(f, weights_only=False, map_location="cpu")) for f in (a, b))
    return x == y


def _kill_tree(pid: int) -> int:
    """SIGSTOP the process tree of ``pid`` (so nothing new is spawned), then SIGKILL all of it:
    a power cut for the runner, its chapter workers and their kernels. Returns how many."""
    import psutil

    stopped: dict[int, psutil.Process] = {}
    for _ in range(5):
        try:
            procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            procs = []
        new = [p for p in procs if p.pid not in stopped]
        if not new:
            break
        for p in new:
            try:
                p.suspend()
                stopped[p.pid] = p
            except psutil.NoSuchProcess:
                pass
    for p in stopped.values():
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(list(stopped.values()), timeout=60)
    return len(stopped)


def _finished(art: Path, out: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every finished artefact (its checksum verifies) and every finished
    chapter's input record: none of them may be rewritten by a later run."""
    from scconcepts.store import ArtifactStore

    done = {}
    for side in art.rglob("*.json"):
        data = side.with_name(side.name[:-len(".json")])
        rel = data.relative_to(art)
        if {".locks", "blocks"} & set(rel.parts) or not data.is_file():
            continue
        try:
            meta = json.loads(side.read_text())
        except ValueError:
            continue
        if "sha256" in meta and ArtifactStore.verify(data):
            st = data.stat()
            done[str(rel)] = (st.st_ino, st.st_mtime_ns)
    for rec in out.glob(".*.inputs.json"):
        st = rec.stat()
        done[f"out/{rec.name}"] = (st.st_ino, st.st_mtime_ns)
    return done


def _still(art: Path, out: Path, before: dict[str, tuple[int, int]]) -> list[str]:
    rewritten = []
    for rel, ident in before.items():
        p = out / rel[4:] if rel.startswith("out/") else art / rel
        if not p.exists() or (p.stat().st_ino, p.stat().st_mtime_ns) != ident:
            rewritten.append(rel)
    return rewritten


def _leftovers(art: Path, out: Path) -> list[str]:
    """Temporary or partial files: hidden names in the store (but the lock folder), blocks not
    dropped, data files without a valid checksum; running or failed notebooks."""
    from scconcepts.store import ArtifactStore

    bad = []
    store = art / "smoke"  # <artifacts_dir>/<profile>
    for p in store.rglob("*"):
        rel = p.relative_to(store)
        if rel.parts[0] == ".locks":
            continue
        if any(part.startswith(".") for part in rel.parts) or (rel.parts[0] == "blocks"
                                                               and p.is_file()):
            bad.append(str(rel))
        elif p.is_file() and not p.name.endswith(".json") and p.parent.parent == store \
                and rel.parts[0] != "viewer" and not ArtifactStore.verify(p):
            bad.append(f"{rel} (checksum)")
    bad += [p.name for p in out.iterdir() if p.name.endswith((".running.ipynb", ".failed.ipynb"))]
    return bad


def test_a_book_killed_anywhere_resumes_to_the_same_results(smoke_book, tmp_path):
    if smoke_book.errors:
        pytest.skip("the smoke book failed; see test_notebook_executes_with_smoke_profile")
    art, out, log = tmp_path / "artifacts", tmp_path / "executed", tmp_path / "log"
    cmd = _cmd(art, out)
    rng = np.random.default_rng(15)
    # 60 % of the uninterrupted run's wall time, cut into N_KILLS + 1 stretches of random
    # length: the kills fall over the whole run even if this run is faster than that one
    # (restarts re-execute the killed chapters' cells, so the book is still unfinished then)
    cuts = np.diff(np.sort(rng.uniform(0, 0.6 * smoke_book.seconds, N_KILLS + 1)),
                   prepend=0.0)
    kills, rewritten = [], []
    for delay in cuts[:N_KILLS]:
        art.mkdir(exist_ok=True)
        out.mkdir(exist_ok=True)
        before = _finished(art, out)
        with open(log, "a") as fh:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        try:
            proc.wait(timeout=max(5.0, float(delay)))
            break  # finished before this kill: the rest of the book was short
        except subprocess.TimeoutExpired:
            kills.append((round(float(delay), 1), _kill_tree(proc.pid)))
        rewritten += _still(art, out, before)
    before = _finished(art, out)
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    rewritten += _still(art, out, before)
    assert len(kills) >= N_KILLS, f"only {len(kills)} kills: {kills}"
    assert all(n >= 1 for _, n in kills)
    assert not rewritten, f"finished work was computed again after a kill: {rewritten}"
    assert not _leftovers(art, out), _leftovers(art, out)
    ref = _book_glued(smoke_book.out)
    got = _book_glued(out)
    assert got.keys() == ref.keys()
    differ = [k for k in ref if got[k] != ref[k]]
    assert not differ, f"{len(differ)} glued values differ, e.g. {differ[:5]}"
    # the reference folder also holds what later tests added (a third model): compare the
    # artefacts the uninterrupted book itself used
    used = _used(smoke_book.out)
    ref_art = {k: v for k, v in _artefacts(smoke_book.artifacts).items() if _key_of(k) in used}
    got_art = _artefacts(art)
    assert got_art.keys() == ref_art.keys(), sorted(set(got_art) ^ set(ref_art))[:10]
    differ = [k for k in ref_art if got_art[k] != ref_art[k]
              and not _same_content(smoke_book.artifacts / k, art / k)]
    assert not differ, f"artefacts differ from the uninterrupted run's: {differ[:10]}"
    print(f"kills (delay s, processes): {kills}; last run {time.time() - t0:.0f} s")


def test_two_runs_of_one_chapter_on_one_store_compute_each_artefact_once(smoke_book, tmp_path):
    from scconcepts import book_cache, trace

    if smoke_book.errors:
        pytest.skip("the smoke book failed; see test_notebook_executes_with_smoke_profile")
    art = tmp_path / "artifacts"
    procs = [subprocess.Popen(_cmd(art, tmp_path / f"out{i}", only="01"), cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in (1, 2)]
    logs = [p.communicate()[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [t[-3000:] for t in logs]
    stem = "01_data_and_models"
    computed = []
    for i in (1, 2):
        lines = trace.read(book_cache.trace_path(tmp_path / f"out{i}", stem))
        computed.append({ln["key"] for ln in lines if ln.get("kind") == "step"
                         and not ln.get("memo")})
    assert computed[0] | computed[1], "nothing was computed"
    twice = computed[0] & computed[1]
    assert not twice, f"computed by both runs: {sorted(twice)}"
    ref = glued(smoke_book.out / f"{stem}.ipynb")
    for i in (1, 2):
        assert glued(tmp_path / f"out{i}" / f"{stem}.ipynb") == ref
    assert not _leftovers(art, tmp_path / "out1")


_NUMBER = re.compile(r"[-+−]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+−]?\d+)?")


def _numbers(text: str) -> tuple[list[str], list[float]]:
    """The text with its numbers cut out, and the numbers (thousands separators, "−")."""
    nums = [float(m.replace(",", "").replace("−", "-")) for m in _NUMBER.findall(text)]
    return _NUMBER.split(text), nums


def close(a: str, b: str, rel: float = REL_TOL, abs_: float = ABS_TOL) -> bool:
    """Same words, and every number within the tolerance (relative or absolute)."""
    (wa, na), (wb, nb) = _numbers(a), _numbers(b)
    return wa == wb and len(na) == len(nb) and all(
        math.isclose(x, y, rel_tol=rel, abs_tol=abs_) for x, y in zip(na, nb))


def test_close_compares_numbers_within_the_tolerance():
    assert close("R² 0.873 (n = 1,500)", "R² 0.881 (n = 1,500)")
    assert not close("R² 0.873", "R² 0.95")
    assert not close("**agrees** with the paper", "**disagrees** with the paper")
    assert close("p < 0.004", "p < 0.004") and not close("65 % vs 90 %", "70 % vs 75 %")


def test_another_thread_count_keeps_every_verdict_and_every_number_within_tolerance(
        smoke_book, tmp_path):
    if smoke_book.errors:
        pytest.skip("the smoke book failed; see test_notebook_executes_with_smoke_profile")
    out = tmp_path / "executed"
    proc = subprocess.run(_cmd(tmp_path / "artifacts", out, "--set",
                               "torch_threads=2"), cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    ref, got = _book_glued(smoke_book.out), _book_glued(out)
    assert got.keys() == ref.keys()
    verdicts = [k for k in ref if k.endswith("_agree")]
    assert verdicts
    flipped = {k: (ref[k], got[k]) for k in verdicts if ref[k] != got[k]}
    assert not flipped, f"verdicts flipped with the thread count: {flipped}"
    far = {k: (ref[k][:80], got[k][:80]) for k in ref if not close(ref[k], got[k])}
    assert not far, f"{len(far)} glued values moved beyond the tolerance: {list(far.items())[:5]}"
