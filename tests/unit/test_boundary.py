"""The lab's boundaries, read from the source with ast (DESIGN.md, "Layers"),
so an import hidden in a function counts too:

- one boundary with Docker: no module outside lab/engine/ imports the Docker SDK;
- verbs parse, call the library and print: no verb imports another verb
  (the argument helpers, verbs/_*.py, are not verbs);
- nothing is loaded by path: no module under lab/ loads a file as code
  (importlib's file locations and loaders, runpy, imp, exec or compile, a
  folder put on sys.path); a module is imported by its name.

Each check is run against an offender of its own, so it cannot pass by
finding nothing."""

from __future__ import annotations

import ast
from pathlib import Path

LAB = Path(__file__).resolve().parents[2] / "lab"
ENGINE = LAB / "engine"
VERBS = LAB / "verbs"


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


def verb_imports(path: Path, verbs: set[str]) -> list[str]:
    """Each import in a verb's module (``path``, in lab/verbs/) of another
    verb among ``verbs``, relative or absolute, with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = {0: node.module or "", 1: "lab.verbs", 2: "lab"}.get(node.level, "")
            if node.level == 1 and node.module:
                base = f"lab.verbs.{node.module}"
            elif node.level == 2 and node.module:
                base = f"lab.{node.module}"
            modules = [base] + [f"{base}.{a.name}" for a in node.names]
        hits = {m.split(".")[2] for m in modules if m.startswith("lab.verbs.") and m.count(".") >= 2}
        found += [f"{path}:{node.lineno}: imports the verb {v}" for v in sorted(hits & (verbs - {path.stem}))]
    return found


def the_verbs() -> set[str]:
    return {f.stem for f in VERBS.glob("*.py") if not f.stem.startswith("_")}


def test_no_verb_imports_another_verb() -> None:
    verbs = the_verbs()
    assert {"check", "compare", "up", "down"} <= verbs, "the verbs were not found"
    offenders = [line for v in sorted(verbs) for line in verb_imports(VERBS / f"{v}.py", verbs)]
    assert not offenders, "a verb imports another (move what both need into the library):\n" + "\n".join(offenders)


def test_the_check_itself_finds_a_verb_importing_a_verb(tmp_path: Path) -> None:
    verb = tmp_path / "compare.py"
    verb.write_text("from . import _args, check\nfrom .up import server_command\nfrom ..checks import run_model\n"
                    "def run():\n    from lab.verbs import models\n    import lab.verbs.down\n"
                    "    from lab.verbs._args import number\n")
    assert [line.split(": ", 1)[1] for line in verb_imports(verb, the_verbs())] == [
        "imports the verb check", "imports the verb up", "imports the verb models", "imports the verb down"]


PATH_LOADERS = {"spec_from_file_location", "SourceFileLoader", "SourcelessFileLoader", "ExtensionFileLoader",
                "FileLoader", "load_source", "load_compiled", "run_path", "run_module", "zipimporter"}
PATH_MODULES = {"runpy", "imp", "zipimport", "importlib.machinery"}


def loads_by_path(path: Path) -> list[str]:
    """Each place in ``path`` that loads a file as code, or could."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        where = f"{path}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [f"{where}: imports {a.name}" for a in node.names if a.name in PATH_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            if node.module in PATH_MODULES:
                found.append(f"{where}: imports from {node.module}")
            found += [f"{where}: imports {a.name}" for a in node.names if a.name in PATH_LOADERS]
        elif isinstance(node, (ast.Name, ast.Attribute)):
            name = node.id if isinstance(node, ast.Name) else node.attr
            if name in PATH_LOADERS:
                found.append(f"{where}: uses {name}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("exec", "compile"):
            found.append(f"{where}: calls {node.func.id}")
        if isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name) \
                and node.value.id == "sys":
            found.append(f"{where}: touches sys.path")
    return found


def test_no_module_loads_a_file_by_path() -> None:
    files = list(LAB.rglob("*.py"))
    assert len(files) > 30, "the lab's modules were not found"
    offenders = [line for f in files for line in loads_by_path(f)]
    assert not offenders, "code loaded by path (import it by its name):\n" + "\n".join(offenders)


def test_the_check_itself_finds_code_loaded_by_path(tmp_path: Path) -> None:
    f = tmp_path / "loader.py"
    f.write_text("import importlib.util\nimport runpy\nimport sys\n"
                 "from importlib.machinery import SourceFileLoader\n"
                 "def a(p):\n    spec = importlib.util.spec_from_file_location('m', p)\n"
                 "def b(p):\n    exec(open(p).read())\n"
                 "def c(p):\n    sys.path.insert(0, p)\n"
                 "def d(p):\n    return runpy.run_path(p)\n"
                 "def fine(name):\n    return importlib.import_module(name)\n")
    got = sorted(line.split(": ", 1)[1] for line in loads_by_path(f))
    assert got == sorted(["imports runpy", "imports from importlib.machinery", "imports SourceFileLoader",
                          "uses spec_from_file_location", "calls exec", "touches sys.path", "uses run_path"]), got
