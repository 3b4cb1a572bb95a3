"""When an executed chapter can be reused: what it read, and whether any of it changed.

While a chapter executes, its kernel records in a trace (:mod:`scconcepts.trace`) the profile
values it read, the input files it hashed and the artefacts it used. After success the runner
writes ``<out>/.<stem>.inputs.json``:

* ``notebook`` — SHA-1 of the notebook source (``notebooks/<stem>.py``);
* ``package`` — SHA-1 of every file of the installed ``scconcepts`` package (code, viewer
  assets, reference tables), so any change of the code re-runs every chapter;
* ``environment`` — Python and the versions of the numerical libraries;
* ``profile`` — the profile name (it names the artefact folder);
* ``params`` — for every profile path the chapter read, a digest of its value;
* ``keys`` — for every mapping of sections it iterated (``models``), the names in it;
* ``files`` — the content fingerprint of every input file it hashed (datasets, checkpoints).

The chapter is *fresh*, and its executed notebook is reused without starting a kernel, when
all of these are equal under the new profile (:func:`is_fresh`). A changed parameter that the
chapter never read does not re-run it; one that it read does, and so does a changed dataset
file, checkpoint, notebook, package file or library version. The artefacts a chapter read are
keyed by exactly these inputs (:mod:`scconcepts.store`), so equal inputs mean equal artefact
keys.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from . import trace
from .store import content_key
from .utils import atomic_write

__all__ = ["fingerprint_path", "trace_path", "package_digest", "environment", "snapshot",
           "write", "is_fresh"]

#: libraries whose version changes numerical results
LIBRARIES = ("numpy", "scipy", "pandas", "torch", "scanpy", "anndata", "scvi-tools",
             "scikit-learn", "gseapy", "umap-learn", "pynndescent", "matplotlib")

#: profile keys that do not change any result (where artefacts live): not compared
NOT_RESULTS = frozenset({"artifacts_dir"})

_PACKAGE_DIGEST: str | None = None


def fingerprint_path(out_dir: Path, stem: str) -> Path:
    return Path(out_dir) / f".{stem}.inputs.json"


def trace_path(out_dir: Path, stem: str) -> Path:
    return Path(out_dir) / f".{stem}.trace.jsonl"


def package_digest() -> str:
    """SHA-1 over the relative paths and bytes of every file of the ``scconcepts`` package."""
    global _PACKAGE_DIGEST
    if _PACKAGE_DIGEST is None:
        root = Path(__file__).resolve().parent
        h = hashlib.sha1()
        for p in sorted(root.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc":
                h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
        _PACKAGE_DIGEST = h.hexdigest()
    return _PACKAGE_DIGEST


def environment() -> dict[str, str]:
    """Python and library versions (a new version may change numbers, so chapters re-run)."""
    env = {"python": platform.python_version(), "implementation": sys.implementation.name}
    for lib in LIBRARIES:
        try:
            env[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            env[lib] = "absent"
    return env


def _value_digest(cfg, path: str) -> str:
    from pydantic import BaseModel

    with trace.paused():
        value = cfg.model_dump() if path == "*" else cfg.get(path)
        if isinstance(value, BaseModel):
            value = value.model_dump()
    return content_key(value)[:16]


def _keys(cfg, path: str) -> list[str]:
    with trace.paused():
        return sorted(cfg.get(path))


def snapshot(source: Path, profile: str, cfg, lines: list[dict]) -> dict[str, Any]:
    """The inputs of one executed chapter (see the module docstring), from its trace ``lines``."""
    params = sorted({ln["path"] for ln in lines if ln.get("kind") == "param"} - NOT_RESULTS)
    keys = sorted({ln["path"] for ln in lines if ln.get("kind") == "keys"})
    files = {ln["path"]: ln["fingerprint"] for ln in lines if ln.get("kind") == "file"}
    return {
        "notebook": hashlib.sha1(Path(source).read_bytes()).hexdigest(),
        "package": package_digest(),
        "environment": environment(),
        "profile": profile,
        "params": {p: _value_digest(cfg, p) for p in params},
        "keys": {p: _keys(cfg, p) for p in keys},
        "files": files,
        "artifacts": sorted({ln["key"] for ln in lines if ln.get("kind") == "artifact"}),
    }


def write(out_dir: Path, source: Path, profile: str, cfg) -> dict[str, Any]:
    """Write ``.<stem>.inputs.json`` from the chapter's trace (after a successful run)."""
    stem = Path(source).stem
    snap = snapshot(source, profile, cfg, trace.read(trace_path(out_dir, stem)))
    atomic_write(fingerprint_path(out_dir, stem),
                 lambda tmp: Path(tmp).write_text(json.dumps(snap, indent=1, sort_keys=True)))
    return snap


def is_fresh(out_dir: Path, source: Path, profile: str, cfg) -> tuple[bool, str]:
    """(True, "") when ``<out_dir>/<stem>.ipynb`` can be reused, else (False, the reason)."""
    from .store import file_fingerprint

    stem = Path(source).stem
    executed = Path(out_dir) / f"{stem}.ipynb"
    fp = fingerprint_path(out_dir, stem)
    if not executed.is_file():
        return False, "not executed yet"
    if not fp.is_file():
        return False, "no record of its inputs"
    try:
        old = json.loads(fp.read_text())
    except ValueError:
        return False, "its input record is unreadable"
    if old.get("notebook") != hashlib.sha1(Path(source).read_bytes()).hexdigest():
        return False, "notebook source changed"
    if old.get("package") != package_digest():
        return False, "scconcepts package changed"
    if old.get("environment") != environment():
        return False, "library versions changed"
    if old.get("profile") != profile:
        return False, f"profile changed ({old.get('profile')} -> {profile})"
    for path, digest in (old.get("params") or {}).items():
        try:
            now = _value_digest(cfg, path)
        except (AttributeError, KeyError, TypeError):
            return False, f"parameter {path} no longer exists"
        if now != digest:
            return False, f"parameter {path} changed"
    for path, names in (old.get("keys") or {}).items():
        try:
            if _keys(cfg, path) != names:
                return False, f"the entries of {path} changed"
        except (AttributeError, KeyError, TypeError):
            return False, f"{path} no longer exists"
    for path, digest in (old.get("files") or {}).items():
        try:
            if file_fingerprint(path) != digest:
                return False, f"input file {path} changed"
        except OSError:
            return False, f"input file {path} is gone"
    return True, ""
