"""Package layout (issue 11): no module over 500 lines, no import cycle between the modules of
``src/scconcepts`` (top-level imports only), no model-name dispatch outside ``models/``, no
parameter named ``pipe``.

Run ``python tests/test_layout.py`` to print the module import graph's cycles and the largest
modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "scconcepts"
MAX_LINES = 500
#: Vendored stand-in (a copy of torchtext's pure-Python vocabulary), exempt from the line limit.
LINE_LIMIT_EXEMPT = {"scconcepts/models/_torchtext_stub.py"}


def _modules() -> dict[str, Path]:
    """Dotted module name → file, for every ``.py`` file of the package."""
    out = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _top_level_imports(body: list[ast.stmt]):
    """Import statements executed when the module is imported: the module body, and the bodies
    of top-level ``try``/``if`` blocks (except ``if TYPE_CHECKING:``); not those in functions."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody,
                          *[h.body for h in node.handlers]):
                yield from _top_level_imports(block)
        elif isinstance(node, ast.If) and not _is_type_checking(node.test):
            yield from _top_level_imports(node.body)
            yield from _top_level_imports(node.orelse)


def import_graph() -> dict[str, set[str]]:
    """Module → package modules it imports at import time (``import`` / ``from`` statements at
    top level, relative ones resolved; ``from pkg import name`` points to ``pkg.name`` when that
    is a module, else to ``pkg``)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        package = name if is_pkg else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in _top_level_imports(ast.parse(path.read_text(encoding="utf-8")).body):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod
                           for a in node.names]
            for t in targets:
                # ``import a.b.c`` binds a module inside the package: keep the longest known prefix
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    edges.add(t)
        graph[name] = edges
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def module_lines() -> dict[str, int]:
    """``scconcepts/...py`` → number of lines."""
    return {str(p.relative_to(SRC)): len(p.read_text(encoding="utf-8").splitlines())
            for p in _modules().values()}


# ------------------------------------------------------------------------------ tests


def test_graph_sees_the_package():
    graph = import_graph()
    assert "scconcepts.data" in graph and "scconcepts.data.census" in graph
    assert "scconcepts.data" in graph["scconcepts.data.census"]       # from . import ...
    assert "scconcepts.data.cache" in graph["scconcepts.data.census"]  # from .cache import ...
    assert "scconcepts.utils" in graph["scconcepts.scale"]             # from .utils import ...


def test_cycle_finder_finds_a_cycle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    cycles = find_cycles(import_graph())
    assert not cycles, f"top-level import cycles between modules: {cycles}"


def test_no_module_over_500_lines():
    too_long = {k: n for k, n in module_lines().items()
                if n > MAX_LINES and k not in LINE_LIMIT_EXEMPT}
    assert not too_long, f"modules over {MAX_LINES} lines (split them by concern): {too_long}"


def test_no_model_name_dispatch_outside_models():
    hits = []
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        if (SRC / PACKAGE / "models") in path.parents:
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if 'model == "' in line:
                hits.append(f"{path.relative_to(SRC)}:{i}: {line.strip()}")
    assert not hits, ("model-specific branches belong in scconcepts.models (adapters): "
                      + "; ".join(hits))


def test_no_parameter_named_pipe():
    hits = []
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                a = node.args
                names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
                names += [x.arg for x in (a.vararg, a.kwarg) if x is not None]
                if "pipe" in names:
                    hits.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not hits, f"parameters named 'pipe' (call it 'wf' / 'workflow'): {hits}"


NOTEBOOKS = SRC.parent / "notebooks"
MAX_CELL_LINES = 15


def test_notebooks_read_like_chapters():
    """Code cells of at most 15 lines, no function definitions, no prose built in f-strings
    (conclusions are markdown with glued claims, :mod:`scconcepts.claims`)."""
    import re

    import jupytext

    problems = []
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py")):
        nb = jupytext.read(path)
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            src = cell.source
            n = len(src.splitlines())
            if n > MAX_CELL_LINES:
                problems.append(f"{path.name} cell {i}: {n} lines")
            if re.search(r"^\s*(async\s+)?def\s", src, re.M):
                problems.append(f"{path.name} cell {i}: defines a function")
            if re.search(r"Markdown\(\s*f[\"']", src):
                problems.append(f"{path.name} cell {i}: builds prose with Markdown(f...)")
    assert not problems, "; ".join(problems)


if __name__ == "__main__":
    g = import_graph()
    print(f"{len(g)} modules, {sum(map(len, g.values()))} top-level import edges")
    print("cycles:", find_cycles(g) or "none")
    for k, n in sorted(module_lines().items(), key=lambda kv: -kv[1])[:10]:
        print(f"{n:5d}  {k}")
