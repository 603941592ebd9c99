"""One boundary with Docker: no module of the lab outside lab/engine/ imports
the Docker SDK (DESIGN.md, "One boundary").  Read from the source, so an
import hidden in a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

LAB = Path(__file__).resolve().parents[2] / "lab"
ENGINE = LAB / "engine"


def sdk_imports(path: Path) -> list[str]:
    """Every `import docker...` / `from docker... import` in a file, with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
        found += [f"{path}:{node.lineno}: {n}" for n in names if n == "docker" or n.startswith("docker.")]
    return found


def test_no_module_outside_the_engine_package_imports_docker() -> None:
    outside = [f for f in LAB.rglob("*.py") if ENGINE not in f.parents]
    assert len(outside) > 30, "the lab's modules were not found"
    offenders = [line for f in outside for line in sdk_imports(f)]
    assert not offenders, "the Docker SDK is imported outside lab/engine/:\n" + "\n".join(offenders)


def test_the_check_itself_finds_an_sdk_import(tmp_path: Path) -> None:
    f = LAB / "engine" / "local.py"  # the engine package does import it: the check must see that
    assert any(": docker" in line for line in sdk_imports(f))
    hidden = tmp_path / "hidden.py"  # an import inside a function counts; a relative one is not the SDK
    hidden.write_text("def f():\n    from docker.types import Ulimit\n    import docker.errors as e\n"
                      "    from .docker import x\n    import dockerish\n")
    assert [line.split(": ", 1)[1] for line in sdk_imports(hidden)] == ["docker.types", "docker.errors"]
