"""The packages import one way: `vla_async` (the light core) imports none of the others; `policy_server` and
`robot_client` import `sim` only inside a registry entry (a policy backend); no two packages import each other,
directly or around a longer loop. Every import counts, including lazy ones inside functions and TYPE_CHECKING
blocks; registries name other packages' code as "module:attr" strings instead (vla_async.registry)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("vla_async", "policy_server", "robot_client", "sim")
REGISTRY_ENTRIES = ("policy_server/backends/",)  # backends registered by name may use sim


def imported_packages(source: str) -> set[str]:
    """Top-level names of every absolute import in `source`."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def import_violations(files: dict[str, str]) -> list[str]:
    """Broken rules in `files` (repository-relative path -> source)."""
    problems, edges = [], set()
    for path, source in sorted(files.items()):
        own = path.split("/")[0]
        for other in sorted(imported_packages(source) & set(PACKAGES) - {own}):
            edges.add((own, other))
            if own == "vla_async":
                problems.append(f"{path}: the core imports {other}")
            elif other == "sim" and own in ("policy_server", "robot_client") and not path.startswith(REGISTRY_ENTRIES):
                problems.append(f"{path}: {own} imports sim outside a registry entry")
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in _cycles(edges)]
    return problems


def _cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """One cycle through each package that lies on one (depth-first search from every package)."""
    found = []
    for start in PACKAGES:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for a, b in sorted(edges):
                if a != node:
                    continue
                if b == start:
                    found.append([*path, b])
                    stack.clear()
                    break
                if b not in path:
                    stack.append((b, [*path, b]))
    return found


def _tree() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text() for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def test_the_packages_import_one_way():
    files = _tree()
    assert len(files) > 50
    assert import_violations(files) == []


def test_the_check_catches_each_kind_of_violation():
    planted = {
        "vla_async/x.py": "def f():\n    from sim.tasks import layout\n",
        "robot_client/y.py": "import sim\n",
        "policy_server/backends/ok.py": "from sim.experts import ExpertPolicy\n",
        "policy_server/z.py": "from robot_client import loop\n",
        "robot_client/w.py": "from policy_server import server\n",
    }
    problems = import_violations(planted)
    assert "vla_async/x.py: the core imports sim" in problems
    assert "robot_client/y.py: robot_client imports sim outside a registry entry" in problems
    assert not any("backends/ok.py" in p for p in problems)
    assert any(p.startswith("import cycle: policy_server -> robot_client -> policy_server") for p in problems)
    assert import_violations({"sim/a.py": "import robot_client.loop\n", "robot_client/b.py": "import vla_async\n"}) == []
