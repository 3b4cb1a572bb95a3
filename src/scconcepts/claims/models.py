"""Claims of chapter 01: do the embeddings of each model carry cell-type information?

The book targets a 15-NN (5-fold) cell-type accuracy of at least :data:`KNN_TARGET` for the
embeddings of every model, the project-pretrained scGPT included; the paper has no such number
(its scGPT is the whole-human checkpoint), so the test is against the book's own target.

:func:`checkpoint_facts` measures what the text says about an scGPT checkpoint (parameters,
vocabulary, pretraining cells and time), so that chapter 01 and the intro glue these numbers
instead of typing them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from . import ABOVE, Claim, decide
from .scale import wilson_interval

__all__ = ["KNN_TARGET", "MIN_CELLS", "knn_accuracy", "checkpoint_facts"]

#: the book's target for the cell-type k-NN accuracy of a model's embeddings
KNN_TARGET = 0.80
#: fewer cells than this leave the accuracy untested
MIN_CELLS = 30


def knn_accuracy(model: str, label: str, accuracy: float, n_cells: int,
                 baseline: float | None = None) -> Claim:
    """The embeddings of ``model`` predict the cell type with k-NN accuracy ≥ :data:`KNN_TARGET`.

    Every cell is predicted once by the cross-validation, so n = ``n_cells`` and the interval is
    Wilson's; inconclusive when it contains the target or fewer than :data:`MIN_CELLS` cells.
    ``baseline``: the accuracy of PCA of log-normalised counts, quoted for scale."""
    interval = wilson_interval(accuracy * n_cells, n_cells)
    v, _ = decide(interval, (KNN_TARGET, ABOVE), n=n_cells, min_n=MIN_CELLS)
    target = f"the book's target of {KNN_TARGET:.2f}"
    conclusion = {
        "agrees": f"meets {target} (**agrees**)",
        "disagrees": f"misses {target} (**disagrees**)",
    }.get(v, f"**inconclusive** against {target}, which the interval contains"
          if n_cells >= MIN_CELLS else f"**inconclusive** ({n_cells} cells, {MIN_CELLS} needed)")
    base = f"; PCA of log-normalised counts: {baseline:.4f}" if baseline is not None else ""
    sentence = (f"**{label}** embeddings predict the cell type with accuracy {accuracy:.4f} "
                f"(95 % interval {interval[0]:.3f}–{interval[1]:.3f}, {n_cells:,} cells{base}): "
                f"{conclusion}.")
    return Claim(key=f"ch01_knn_{model}", value=float(accuracy), n=int(n_cells),
                 test=f"15-NN cell-type accuracy ≥ {KNN_TARGET} (Wilson interval above it)",
                 verdict=v, sentence=sentence, interval=interval, paper=None,
                 region=(KNN_TARGET, ABOVE), unit="cells", fmt=".3f")


_SPECIAL = re.compile(r"^<[^<>]+>$")


def checkpoint_facts(folder, net=None, prefix: str = "ch01_scgpt") -> dict:
    """What the book states about an scGPT checkpoint folder, as glue values.

    Parameters
    ----------
    folder
        Checkpoint folder in the whole-human format (``vocab.json``, ``best_model.pt``, and
        ``training_log.json`` when the project pretrained it).
    net
        The loaded model, to count its parameters when the training log does not (loaded from
        ``folder`` when None and needed).
    prefix
        Glue-key prefix.

    Returns
    -------
    dict
        ``<prefix>_params``: parameters as the Table 2 analogue prints them ("0.28M", from the
        log's ``n_params`` or the model); ``<prefix>_vocab``: genes in the vocabulary (special
        tokens such as ``<pad>`` left out); with a training log, ``<prefix>_cells``: cells of
        the pretraining datasets, ``<prefix>_cpu_hours``: pretraining wall time in hours,
        ``<prefix>_steps``: optimisation steps and ``<prefix>_runs``: pretraining runs (the
        log's ``stages``);
        with ``args.json``, ``<prefix>_bins``: expression bins.
    """
    folder = Path(folder)
    vocab = json.loads((folder / "vocab.json").read_text())
    log_path = folder / "training_log.json"
    log = json.loads(log_path.read_text()) if log_path.is_file() else {}
    n_params = log.get("n_params")
    if not n_params:
        if net is None:
            from ..models.scgpt import load_checkpoint

            net = load_checkpoint(folder, device="cpu")[0]
        n_params = sum(int(p.numel()) for p in net.parameters())
    out = {f"{prefix}_params": f"{int(n_params) / 1e6:.2f}M",
           f"{prefix}_vocab": sum(not _SPECIAL.match(str(t)) for t in vocab)}
    if log.get("datasets"):
        out[f"{prefix}_cells"] = int(sum(d["n_cells"] for d in log["datasets"].values()))
    if log.get("seconds"):
        out[f"{prefix}_cpu_hours"] = float(log["seconds"]) / 3600
    if log.get("steps"):
        out[f"{prefix}_steps"] = int(log["steps"])
    if log.get("stages"):                 # one record per pretraining run
        out[f"{prefix}_runs"] = len(log["stages"])
    if (folder / "args.json").is_file():
        args = json.loads((folder / "args.json").read_text())
        out[f"{prefix}_bins"] = int(args.get("n_bins", 51))
    return out
