"""No import cycles in ``bau``, ``analysis`` and ``app``: statically, over every import statement (function-level
and ``TYPE_CHECKING`` ones included), and by importing every module on its own.

The static graph has an edge from a module to each module it imports and to each package above that module
that is not also above the importer (importing ``bau.runs.lock`` runs ``bau/runs/__init__.py`` first, which
imports the rest of ``bau.runs``). So a subpackage whose ``__init__`` re-exports its modules may import
another subpackage only if that one never imports it back: the stages form a stack.
"""
import ast
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("bau", "analysis", "app")
# Streamlit page scripts: they draw a page when run and are run by Streamlit (tests/test_app.py), never imported.
PAGE_SCRIPTS = ("app.main", "app.views.")


def module_files():
    """``{dotted module name: file path}`` of every module of ``PACKAGES``."""
    found = {}
    for pkg in PACKAGES:
        for root, dirs, files in os.walk(os.path.join(REPO, pkg)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for f in files:
                if f.endswith(".py"):
                    rel = os.path.relpath(os.path.join(root, f), REPO)[:-3].split(os.sep)
                    name = ".".join(rel[:-1] if rel[-1] == "__init__" else rel)
                    found[name] = os.path.join(root, f)
    return found


def ancestors(name):
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imported_modules(name, path, known):
    """The modules of ``known`` that ``name`` (at ``path``) imports anywhere in its code."""
    is_package = path.endswith("__init__.py")
    targets = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            targets.add(module)
            targets.update(f"{module}.{a.name}" for a in node.names)  # "from pkg import module"
    return {t for t in targets if t in known}


def import_graph():
    """``{module: set of modules importing it runs}`` over ``PACKAGES`` (see the module docstring)."""
    files = module_files()
    graph = {}
    for name, path in files.items():
        edges = set()
        for target in imported_modules(name, path, files):
            edges.add(target)
            edges.update(p for p in ancestors(target) if p not in ancestors(name) and p in files)
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycle(graph):
    """One import cycle of ``graph`` as a list of modules (first == last), or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


@pytest.mark.unit
def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert len(graph) > 80 and "bau.core.config" in graph and "analysis.figure1" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.unit
def test_the_cycle_finder_sees_function_level_imports_and_package_inits():
    # a function-level import back into the importer's package is a cycle through the package's __init__
    graph = {"low": {"low.reader"}, "low.reader": {"high.writer", "high"}, "high": {"high.writer"},
             "high.writer": {"low.lock", "low"}, "low.lock": set()}
    cycle = find_cycle(graph)
    assert cycle[0] == cycle[-1] and {"low", "high"} <= set(cycle)
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    # the real graph records function-level imports: bau.cli imports the app launcher inside a function
    assert "bau.app_launcher" in import_graph()["bau.cli"]


@pytest.mark.unit
def test_the_config_layer_imports_no_stage():
    """The config declares its choices itself; the modules that implement them import it, not the reverse."""
    graph = import_graph()
    for name in ("bau.core.config", "bau.core.errors", "bau.core.atomic", "bau.core.registry", "bau.core.device"):
        assert all(t.startswith("bau.core") for t in graph[name]), (name, graph[name])


@pytest.mark.integration
def test_every_module_imports_on_its_own():
    """Each module imported into an interpreter where no module of ``PACKAGES`` is loaded yet."""
    names = sorted(n for n in module_files() if not n.startswith(PAGE_SCRIPTS))
    script = (
        "import importlib, sys, traceback\n"
        f"names, packages = {names!r}, {PACKAGES!r}\n"
        "failed = []\n"
        "for name in names:\n"
        "    for m in [m for m in sys.modules if m.split('.')[0] in packages]:\n"
        "        del sys.modules[m]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception:\n"
        "        failed.append(name + ': ' + traceback.format_exc().strip().splitlines()[-1])\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n"
    )
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
