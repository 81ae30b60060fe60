import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_passes():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed; install the dev extra: pip install -e '.[dev]'")
    result = subprocess.run([ruff, "check", "src", "tests", "benchmarks"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_module_imports_in_a_circle():
    """No circle among shelfwise's modules, a package and its own modules included, through any
    import: at module level, inside a function or under TYPE_CHECKING (grimp's graph, the one
    `lint-imports` checks the contracts of pyproject.toml on; its acyclic_siblings contract sees
    circles between siblings only). Files are cut by job, not by a line count: ruff's C901 and
    PLR0915 keep each function small."""
    import grimp

    graph = grimp.build_graph("shelfwise", cache_dir=None)
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for other in sorted(graph.find_modules_directly_imported_by(name)):
            if state.get(other) == 1:
                pytest.fail("import circle: " + " -> ".join([*stack[stack.index(other) :], other]))
            if other not in state:
                walk(other)
        stack.pop()
        state[name] = 2

    for name in sorted(graph.modules):
        if name not in state:
            walk(name)
    assert len(graph.modules) == len(list((ROOT / "src" / "shelfwise").rglob("*.py"))), "a folder lacks __init__.py"


def test_the_architecture_contracts_hold():
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if lint_imports is None:
        pytest.fail("import-linter is not installed; install the dev extra: pip install -e '.[dev]'")
    result = subprocess.run([lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
