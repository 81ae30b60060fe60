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


def _imports(path: Path, package: str) -> set[str]:
    """The shelfwise modules a module imports when it is run (not those under `TYPE_CHECKING`)."""
    import ast

    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names if alias.name.startswith("shelfwise"))
            elif isinstance(child, ast.ImportFrom) and child.module and child.module.startswith("shelfwise"):
                found.add(child.module)
                found.update(f"{child.module}.{alias.name}" for alias in child.names)
            elif not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):  # imports inside functions run late
                visit(child)

    visit(tree)
    return found


def test_no_module_imports_in_a_circle():
    # Files are cut by job, not by a line count: ruff's C901 and PLR0915 keep each function small.
    source = ROOT / "src"
    modules = {}
    for path in source.rglob("*.py"):
        name = ".".join(path.relative_to(source).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph = {name: {m for m in _imports(path, name) if m in modules and m != name} for name, path in modules.items()}
    # a package's __init__ importing its own modules is not a circle of modules: leave those edges out
    graph = {name: {m for m in edges if not m.startswith(name + ".")} for name, edges in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for other in sorted(graph[name]):
            if state.get(other) == 1:
                cycle = [*stack[stack.index(other) :], other]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if other not in state:
                walk(other)
        stack.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name)
