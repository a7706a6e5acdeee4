"""The package's import structure: no module imports upwards, and no import cycle.

docs/architecture.md draws the layers; this test reads every import statement of every module,
wherever it stands (module level, inside functions, under ``if TYPE_CHECKING``), and holds the
code to that drawing: a lazy import inside a function still makes the lower module depend on the
higher one, and a type-only import still couples them, so neither may point upwards or close a
cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import longline

SRC = Path(longline.__file__).parent

# Lower layers never import higher ones; a layer may import itself and anything below it.
LAYERS: dict[str, int] = {
    "core": 0,
    "plugins": 0,
    "transports": 1,
    "stores": 1,
    "processors": 1,
    "sessions": 1,
    "config": 2,
    "engine": 3,
    "delivery": 3,
    "api": 4,
    "ops": 5,
    "aws": 6,
    "testing": 6,
    "cli": 7,
    "__main__": 8,
}


def module_name(path: Path) -> str:
    parts = ["longline", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from package import name`` names a module or a name in the package:
            # both candidates are yielded and import_graph keeps the one that exists.
            yield from (f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for target in _imports(ast.parse(path.read_text("utf-8"))):
            if not target.startswith("longline"):
                continue
            # ``from longline.x import y`` may name a module y or a name in x.
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            # Importing a module imports its parent packages first anyway: not an edge.
            if target != name and not name.startswith(f"{target}."):
                targets.add(target)
        graph[name] = targets
    return graph


def layer(module: str) -> tuple[str, int | None]:
    top = module.split(".")[1] if "." in module else "longline"
    return top, LAYERS.get(top)


def test_every_package_has_a_layer() -> None:
    tops = {layer(m)[0] for m in import_graph()} - {"longline"}
    assert tops - set(LAYERS) - {"cost"} == set()


def test_no_module_imports_upwards() -> None:
    upward = []
    for module, targets in import_graph().items():
        top, rank = layer(module)
        for target in targets:
            ttop, trank = layer(target)
            if top == "cost" or ttop == "cost":
                # The pricing model is a package of its own: it imports nothing else of longline.
                if top == "cost" and ttop != "cost" and target != "longline":
                    upward.append(f"{module} -> {target}")
                continue
            if rank is None or trank is None or top == ttop:
                continue
            if trank > rank:
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_no_import_cycle() -> None:
    graph = import_graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert cycles == []


def test_every_module_imports_on_its_own() -> None:
    """Each module imports first, in a fresh set of longline modules: an import cycle that runs
    at import time (a registration called from a module body) fails here, whatever the order."""
    import subprocess
    import sys

    names = sorted(n for n in import_graph() if not n.endswith("__main__"))
    script = (
        "import importlib, sys\n"
        "bad = []\n"
        f"for name in {names!r}:\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] == 'longline']:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as e:\n"
        "        bad.append(f'{name}: {type(e).__name__}: {e}')\n"
        "print('\\n'.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_the_scan_sees_lazy_and_type_only_imports() -> None:
    """An import inside a function, a method or under ``if TYPE_CHECKING`` is an edge too."""
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from longline.ops.listen import Listen\n"
        "def f() -> None:\n"
        "    import longline.cli.group\n"
        "class C:\n"
        "    def m(self) -> None:\n"
        "        try:\n"
        "            from longline.api import App\n"
        "        except ImportError:\n"
        "            pass\n"
    )
    assert set(_imports(tree)) == {
        "typing.TYPE_CHECKING",
        "longline.ops.listen.Listen",
        "longline.cli.group",
        "longline.api.App",
    }
