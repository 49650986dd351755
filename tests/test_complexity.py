"""The readability bar: no function in the core (`vla_async`) above cyclomatic complexity 12 (radon's count)."""

from __future__ import annotations

from pathlib import Path

from radon.complexity import cc_visit

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 12
NOT_YET: set[str] = set()  # files allowed over the limit while being split (none now)


def over_limit(source: str, limit: int = LIMIT) -> list[str]:
    """Functions and methods in `source` whose complexity is above `limit`, as 'name (complexity)'."""
    # radon lists functions and methods (classes too, which carry their methods' total: skipped)
    return [f"{b.fullname} ({b.complexity})" for b in cc_visit(source) if not hasattr(b, "methods") and b.complexity > limit]


def test_no_core_function_is_above_the_limit():
    problems = {}
    for path in sorted((ROOT / "vla_async").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        if rel not in NOT_YET and (found := over_limit(path.read_text())):
            problems[rel] = found
    assert problems == {}


def test_the_check_sees_a_complex_function():
    branches = "".join(f"    if x == {i}:\n        return {i}\n" for i in range(13))
    assert over_limit(f"def f(x):\n{branches}    return -1\n") == ["f (14)"]
    assert over_limit("class A:\n    def g(self, x):\n" + branches.replace("    ", "        ") + "        return -1\n") \
        == ["A.g (14)"]
