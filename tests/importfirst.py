"""Import each module of a package first, in a fresh state: `python importfirst.py PACKAGE PART PARTS`.

Run by tests/test_layering.py in PARTS processes at once, each taking every PARTS-th module from
PART. Prints "<modules> modules, <n> in import cycles" and one line per module that failed, and
exits 1 if any did.

An import that only one order survives (a feature reaching the hub half-loaded) needs a cycle:
a first import meets a partly executed module only inside a cycle of the import graph, and what
happens inside a cycle depends only on the module it is entered by. The modules loaded before
that are finished ones that no module of the cycle imports back (else they would be in it), and
the modules the cycle imports from outside it import nothing of it either, so whether they are
loaded before or on the way changes nothing inside the cycle. So, for each cycle, what it imports
from outside is loaded once, and then each of its modules is imported first with the cycle
forgotten (out of sys.modules and off its packages); the modules in no cycle are imported once,
all in one state. The graph is grimp's static one, which holds every import statement, also
those inside functions: more edges than run, so more modules count as being in a cycle, never
fewer. A package's module depends on its package (`__init__` runs first), which grimp does not
count as an import, so that edge is added here.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import traceback

import grimp


def import_graph(package: str) -> dict[str, set[str]]:
    graph = grimp.build_graph(package, cache_dir=None)
    inside = {m for m in graph.modules if m == package or m.startswith(package + ".")}
    edges = {m: graph.find_modules_directly_imported_by(m) & inside for m in inside}
    for m in inside:
        if "." in m:
            edges[m].add(m.rpartition(".")[0])
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components that hold a cycle (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges[v]:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(edges) + 100))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


def reachable(edges: dict[str, set[str]], start: list[str]) -> set[str]:
    seen = set(start)
    todo = list(start)
    while todo:
        for w in edges[todo.pop()] - seen:
            seen.add(w)
            todo.append(w)
    return seen


def fresh(package: str) -> None:
    for loaded in [k for k in sys.modules if k == package or k.startswith(package + ".")]:
        del sys.modules[loaded]


def forget(modules: list[str]) -> None:
    """As if `modules` had never been imported: out of sys.modules and off their packages."""
    for name in modules:
        sys.modules.pop(name, None)
        parent, _, child = name.rpartition(".")
        if parent in sys.modules and hasattr(sys.modules[parent], child):
            delattr(sys.modules[parent], child)


def try_import(name: str, failed: list[str]) -> None:
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc(limit=1).strip().splitlines()[-1])


def main(package: str, part: int, parts: int) -> int:
    root = importlib.import_module(package)
    names = sorted(m.name for m in pkgutil.walk_packages(root.__path__, package + "."))
    edges = import_graph(package)
    missing = set(names) - set(edges)
    if missing:  # a module the graph does not know would be checked by nobody
        print(f"not in the import graph: {sorted(missing)}")
        return 1
    components = cycles(edges)
    entries = [(component, name) for component in components for name in component]
    failed: list[str] = []
    for component in components:
        mine = [name for c, name in entries[part::parts] if c is component]
        if not mine:
            continue
        # What the cycle imports from outside it is loaded once, as it would be when a first
        # import entered the cycle: finished modules that import nothing of the cycle back.
        fresh(package)
        for name in sorted(reachable(edges, component) - set(component)):
            try_import(name, failed)
        for name in mine:
            forget(component)
            try_import(name, failed)
    if part == 0:
        fresh(package)
        in_a_cycle = {name for component in components for name in component}
        for name in names:
            if name not in in_a_cycle:
                try_import(name, failed)
    print(f"{len(names)} modules, {len(entries)} in import cycles")
    print("\n".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
