"""The package's floors (docs/architecture.md), checked on the source: an AST walk over src/layersv.

* no import cycles between layersv modules;
* no upward imports: a module imports only from its own floor or the floors below;
* no function-level imports of layersv modules (lazy imports are kept only for heavy optional
  third-party packages, listed in docs/architecture.md).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "layersv"

# Highest first.  A module belongs to the first entry that is its name or a package above it.
FLOORS: list[tuple[str, ...]] = [
    ("layersv",),  # the package facade: re-exports only
    ("layersv.cli",),  # thin shell: one file per command group
    ("layersv.runs", "layersv.enrol", "layersv.quickstart", "layersv.export", "layersv.convert",
     "layersv.config_check"),  # the run floor and the applications
    ("layersv.train", "layersv.optim", "layersv.embed", "layersv.scoring", "layersv.analysis",
     "layersv.report"),  # the work: gradient loop, embeddings, scoring, analysis
    ("layersv.model", "layersv.heads", "layersv.registries", "layersv.model_table"),  # the model
    ("layersv.frontends", "layersv.backends"),  # the model's parts (neither imports the other)
    ("layersv.data", "layersv.synthetic"),  # audio, dataset folders, corpora, augmentation
    ("layersv.config", "layersv.utils", "layersv.checkpoint", "layersv.metrics", "layersv.distributed",
     "layersv.loggers", "layersv.whitening"),  # foundations
]
SIBLINGS_APART = [("layersv.frontends", "layersv.backends")]  # same floor, no imports between them


def _modules() -> dict[str, Path]:
    out = {}
    for p in SRC.rglob("*.py"):
        parts = list(p.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _target(mod: str, path: Path, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The layersv modules an import statement loads (the submodule when a name is one)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names if a.name.split(".")[0] == "layersv"]
    else:
        if node.level:
            pkg = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
            base = ".".join(pkg[: len(pkg) - node.level + 1] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        if base.split(".")[0] != "layersv":
            return []
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    out = []
    for n in names:
        while n not in MODULES and "." in n:
            n = n.rsplit(".", 1)[0]
        out.append(n)
    return out


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    inner = []
    for mod, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                targets = _target(mod, path, node)
                edges[mod] |= {t for t in targets if t != mod}
                if targets and id(node) not in top:
                    inner.append(f"{mod}:{node.lineno}: {ast.unparse(node)}")
    return edges, inner


def floor_of(mod: str) -> int:
    best = None
    for i, names in enumerate(FLOORS):
        for n in names:
            if (mod == n or mod.startswith(n + ".")) and (best is None or len(n) > best[1]):
                best = (i, len(n))
    assert best is not None, f"{mod} is on no floor: add it to FLOORS (and to docs/architecture.md)"
    return best[0]


def test_every_module_has_a_floor():
    for m in MODULES:
        floor_of(m)


def test_no_upward_imports():
    edges, _ = _graph()
    bad = [f"{m} (floor {floor_of(m)}) imports {t} (floor {floor_of(t)})"
           for m, ts in edges.items() for t in ts if floor_of(t) < floor_of(m)]
    for a, b in SIBLINGS_APART:
        bad += [f"{m} imports {t}" for m, ts in edges.items() for t in ts
                if (m.startswith(a) and t.startswith(b)) or (m.startswith(b) and t.startswith(a))]
    assert not bad, "upward imports:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    edges, _ = _graph()
    # a package's __init__ re-exporting its submodules is not a cycle with them: drop package → child edges
    edges = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in edges.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t, stack + [t])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_function_level_imports_of_layersv_modules():
    _, inner = _graph()
    assert not inner, "imports inside functions (move them to the module top):\n" + "\n".join(inner)


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path):
    """The helpers above on a made-up graph: they do find what they look for."""
    assert floor_of("layersv.cli.run") < floor_of("layersv.runs.fit") < floor_of("layersv.train")
    assert floor_of("layersv.model") < floor_of("layersv.backends.stats") < floor_of("layersv.utils")
    tree = ast.parse("from ..model import load_model\nfrom . import folder\n")
    got = [_target("layersv.runs.fit", SRC / "runs" / "fit.py", n) for n in tree.body]
    assert got == [["layersv.model"], ["layersv.runs.folder"]]
