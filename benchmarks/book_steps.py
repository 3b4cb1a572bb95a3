"""Wall time and CPU use of every cached step of a book run, from one run (issue 12).

Executes the chapters of a profile from scratch (a fresh artefact folder, ``--force``) through
the book runner, samples the memory of the whole process tree, then reads the traces the
kernels wrote (:mod:`scconcepts.trace`: one line per computed artefact with its own wall and
CPU seconds, nested inputs subtracted) and prints

1. one row per computed step (chapter, step, key, wall s, CPU s, cores busy = CPU / wall),
2. the same summed per step kind (dataset loads, scVI training, embeddings, UMAPs, SAEs,
   attribution blocks, GSEA blocks, ...),
3. per chapter: kernel wall time, time in cached steps, the rest (figures, tables, in-memory
   work), the kernel's peak RSS, and the run's total wall time, summed kernel time, peak RSS of the largest process and
   of the whole tree.

Usage::

    python benchmarks/book_steps.py [--profile default] [--jobs 2] [--only 02,03]
    python benchmarks/book_steps.py --from-traces book/_executed   # tabulate a finished run

The last line is ``total_wall_s=<x> kernel_s=<y> steps_s=<z> peak_rss_gb=<tree> peak_rss_max_process_gb=<one>``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

from scconcepts import trace

ROOT = Path(__file__).resolve().parents[1]
KIND_NAMES = {
    "dataset": "dataset load (in memory)", "scvi": "scVI training", "embedding": "embeddings",
    "umap": "UMAP", "sae": "SAE training", "pca": "PCA model fit", "gsea": "GSEA (assembled)",
    "attribution": "attribution (assembled)", "dgea": "DGEA comparison",
}


class TreeMemory(threading.Thread):
    """Samples the RSS of a process and all its descendants every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_tree = self.peak_one = 0
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self.stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                rss = []
                for p in procs:
                    try:
                        rss.append(p.memory_info().rss)
                    except psutil.Error:
                        pass
                self.peak_tree = max(self.peak_tree, sum(rss))
                self.peak_one = max(self.peak_one, max(rss, default=0))
            except psutil.Error:
                pass
            self.stop.wait(self.interval)


def step_table(traces: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per computed step, one row per chapter) from ``.<stem>.trace.jsonl`` files."""
    rows, chapters = [], []
    for path in sorted(Path(traces).glob(".*.trace.jsonl")):
        chapter = path.name[1:].split(".trace")[0]
        lines = trace.read(path)
        steps = [ln for ln in lines if ln.get("kind") == "step"]
        for ln in steps:
            kind = ln["step"]
            if kind == "block":  # a resumable block of a longer step: name it by its parent
                kind = f"{str(ln.get('of', 'block')).split('-', 1)[0]} block"
            rows.append({"chapter": chapter, "step": KIND_NAMES.get(kind, kind),
                         "key": ln["key"], "wall_s": ln["wall_s"], "cpu_s": ln["cpu_s"]})
        rss = [ln["maxrss_mb"] for ln in lines if ln.get("kind") == "rss"]
        chapters.append({"chapter": chapter, "steps_s": sum(s["wall_s"] for s in steps),
                         "n_steps": len(steps), "peak_rss_gb": max(rss) / 1024 if rss else None,
                         "artifacts_read": sum(ln.get("kind") == "artifact" for ln in lines)})
    steps = pd.DataFrame(rows, columns=["chapter", "step", "key", "wall_s", "cpu_s"])
    steps["cores_busy"] = (steps["cpu_s"] / steps["wall_s"].clip(lower=1e-3)).round(2)
    return steps, pd.DataFrame(chapters)


def kernel_seconds(executed: Path) -> dict[str, float]:
    """Wall seconds of each executed notebook (papermill's metadata)."""
    import nbformat

    out = {}
    for nb_path in sorted(Path(executed).glob("[0-9][0-9]_*.ipynb")):
        if nb_path.name.endswith(".failed.ipynb"):
            continue
        nb = nbformat.read(nb_path, as_version=4)
        out[nb_path.stem] = float(nb.metadata.get("papermill", {}).get("duration") or 0.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--jobs", type=int, default=None, help="chapters side by side (runner default)")
    ap.add_argument("--only", default=None, help="chapters, e.g. 01,02")
    ap.add_argument("--from-traces", type=Path, default=None,
                    help="tabulate the traces of a finished run in this folder instead")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()

    pd.set_option("display.width", 160, "display.max_rows", 500, "display.max_colwidth", 40)
    total = peak_tree = peak_one = float("nan")
    if args.from_traces is None:
        tmp = Path(tempfile.mkdtemp(prefix="book-steps-"))
        executed = tmp / "executed"
        cmd = [sys.executable, "-m", "scconcepts.book", "execute", "--profile", args.profile,
               "--out", str(executed), "--force", "--set", f"artifacts_dir={tmp / 'artifacts'}"]
        cmd += ["--jobs", str(args.jobs)] if args.jobs else []
        cmd += ["--only", args.only] if args.only else []
        for o in args.overrides:
            cmd += ["--set", o]
        print("running:", " ".join(cmd), flush=True)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT)
        mem = TreeMemory(proc.pid)
        mem.start()
        rc = proc.wait()
        mem.stop.set()
        mem.join()
        total = time.perf_counter() - t0
        peak_tree, peak_one = mem.peak_tree / 2**30, mem.peak_one / 2**30
        if rc != 0:
            sys.exit(f"book run failed (exit {rc}); traces in {executed}")
    else:
        executed = args.from_traces

    steps, chapters = step_table(executed)
    kernels = kernel_seconds(executed)
    chapters["kernel_s"] = chapters["chapter"].map(kernels).fillna(0.0)
    chapters["other_s"] = chapters["kernel_s"] - chapters["steps_s"]
    print("\n== every computed step ==")
    print(steps.round(2).to_string(index=False))
    print("\n== per step kind ==")
    kinds = steps.groupby("step").agg(n=("key", "size"), wall_s=("wall_s", "sum"),
                                      cpu_s=("cpu_s", "sum")).sort_values("wall_s", ascending=False)
    kinds["cores_busy"] = (kinds["cpu_s"] / kinds["wall_s"].clip(lower=1e-3)).round(2)
    print(kinds.round(1).to_string())
    print("\n== per chapter ==")
    print(chapters.round(1).to_string(index=False))
    print(f"\ntotal_wall_s={total:.1f} kernel_s={chapters['kernel_s'].sum():.1f} "
          f"steps_s={steps['wall_s'].sum():.1f} peak_rss_gb={peak_tree:.2f} "
          f"peak_rss_max_process_gb={peak_one:.2f}")


if __name__ == "__main__":
    main()
