"""Small shared helpers: seeding, device choice, atomic writes, parameter hashing."""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

__all__ = ["seed_everything", "resolve_device", "atomic_write", "param_key"]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(device: str | None = None) -> torch.device:
    """``None``/``"auto"`` → CUDA when available, else CPU; otherwise ``torch.device(device)``."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def atomic_write(path: str | os.PathLike, writer: Callable[[str], None]) -> Path:
    """Write a file atomically: ``writer(tmp_path)`` then ``os.replace`` onto ``path``.

    A crash mid-write leaves the previous file (or none), never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600 files; artefacts are ordinary files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def param_key(params: dict) -> str:
    """Short stable hash of a JSON-serialisable parameter dict (cache keys)."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:10]
