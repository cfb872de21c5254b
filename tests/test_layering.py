"""The package's layers: services know nothing of the CLI or of HTTP requests, the cache's
machinery (``alignwork/cache/``) knows nothing of services, blueprints or commands, and no module
imports its way back to itself."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "alignwork"
FORBIDDEN_IN_SERVICES = ("click", "flask.cli", "alignwork.commands", "alignwork.blueprints",
                         "flask.request", "flask.g")
CACHE = "alignwork.cache"
FORBIDDEN_IN_CACHE = ("alignwork.services", "alignwork.blueprints", "alignwork.commands")

# Run in a fresh interpreter: record every import made *by a module of alignwork.services*
# (Flask itself imports click, so what is loaded says nothing; who asked for it does).
_PROBE = r"""
import builtins, importlib, json, pkgutil, sys
sys.path.insert(0, sys.argv[1])
asked = []
real_import = builtins.__import__

def recording_import(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__", "")
    if importer.startswith("alignwork.services"):
        absolute = name
        if level:
            package = (globals or {}).get("__package__") or ""
            base = package.rsplit(".", level - 1)[0] if level > 1 else package
            absolute = f"{base}.{name}" if name else base
        asked.extend([absolute] + [f"{absolute}.{item}" for item in (fromlist or ())])
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = recording_import
import alignwork.services as services
for module in pkgutil.walk_packages(services.__path__, "alignwork.services."):
    importlib.import_module(module.name)
print(json.dumps(sorted(set(asked))))
"""


def test_services_import_neither_the_cli_nor_request_state():
    result = subprocess.run([sys.executable, "-c", _PROBE, str(ROOT)], capture_output=True, text=True,
                            check=True, cwd=ROOT)
    asked = json.loads(result.stdout.strip().splitlines()[-1])
    assert any(name.startswith("alignwork.services.") for name in asked)  # the probe saw them
    offending = [name for name in asked
                 if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN_IN_SERVICES)]
    assert offending == []


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")
            if "migrations" not in path.relative_to(PACKAGE).parts}


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every alignwork module ``name`` imports, at any depth of the file (function-level too)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in modules else base)
    return {target for target in found if target in modules and target != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


def _reaching(graph: dict[str, set[str]], start: str, forbidden: tuple[str, ...]) -> list[str]:
    """The modules under ``forbidden`` that ``start`` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return sorted(name for name in seen if _within(name, forbidden))


def test_the_cache_imports_no_service_blueprint_or_command():
    """What is cached, and when it is fresh, is the services' business; the cache's room holds
    settings, key names and backends, and reaches no service, blueprint or command, not even
    through another module or behind a function-level import."""
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    room = [name for name in modules if _within(name, (CACHE,))]
    assert len(room) > 5 and graph[f"{CACHE}.redis_backends"]  # the walk found the room's imports
    offending = {name: found for name in room if (found := _reaching(graph, name, FORBIDDEN_IN_CACHE))}
    assert offending == {}


SERVICES = "alignwork.services"
CHANGES = f"{SERVICES}.changes"
STATS = f"{SERVICES}.stats"


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_services_are_split_along_the_two_ways_data_travels():
    """``stats`` (the read side) may use ``changes`` (freshness), which may use ``tenants``; never
    back. No module of ``changes`` imports a module whose path mentions stats, even through
    another module."""
    graph = _graph()
    changes = [name for name in graph if _within(name, (CHANGES,))]
    assert {f"{CHANGES}.{m}" for m in ("record", "generations", "session_hooks", "listener")} <= set(changes)
    assert any(_within(target, (CHANGES,)) for name in graph if _within(name, (STATS,)) for target in graph[name])
    offending = {name: found for name in changes
                 if (found := [t for t in _reaching(graph, name, (SERVICES,)) if "stats" in t])}
    assert offending == {}
    for module in (f"{SERVICES}.tenants", f"{SERVICES}.exceptions"):
        assert _reaching(graph, module, (CHANGES, STATS)) == []


def test_no_service_imports_its_own_package_back_through_its_init():
    """A services package's ``__init__`` may re-export, but its own modules import their
    siblings directly, so the ``__init__`` never sits in the middle of a cycle-in-waiting."""
    graph, modules = _graph(), _modules()
    offending = sorted(f"{name} -> {target}" for name, targets in graph.items() for target in targets
                       if _within(name, (SERVICES,)) and modules[target].name == "__init__.py"
                       and name.startswith(target + ".") and modules[name].name != "__init__.py")
    assert offending == []


def test_the_reach_finder_follows_imports_through_other_modules():
    graph = {"c.a": {"x"}, "x": {"s.y"}, "s.y": set(), "c.b": set()}
    assert _reaching(graph, "c.a", ("s",)) == ["s.y"]
    assert _reaching(graph, "c.b", ("s",)) == []


def test_no_import_cycles_in_the_package():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert sum(map(len, graph.values())) > 50  # the walk really read the imports
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
