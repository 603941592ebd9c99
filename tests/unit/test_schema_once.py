"""One definition of each shared name (DESIGN.md, "schema package"): the
default port, the swarm's error kinds, end reasons and patterns, and the
documents' schema names live in services/ioschema only.  Read from the
source of lab/ and services/: neither an assignment of one of those names
nor one of their literal values (outside docstrings) may appear elsewhere."""

from __future__ import annotations

import ast
from pathlib import Path

import ioschema

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "services" / "ioschema"
# every upper-case name the package defines: constants, schema names, the tuples both sides read
NAMES = tuple(n for n in dir(ioschema) if n.isupper())
TUPLES = [v for n in NAMES if isinstance(v := getattr(ioschema, n), tuple) and len(v) > 1
          and all(isinstance(e, str) for e in v)]
SCHEMA_PREFIXES = ("iolab.swarm/", "iolab.compare/", "iolab.checks/")


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body \
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            found.add(id(body[0].value))
    return found


def copies(path: Path) -> list[str]:
    """Each place in ``path`` that defines a shared name or writes its value out."""
    tree = ast.parse(path.read_text(), str(path))
    docs, found = _docstrings(tree), []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found += [f"{path}:{node.lineno}: defines {t.id}" for t in targets
                      if isinstance(t, ast.Name) and t.id in NAMES]
        elif isinstance(node, ast.Constant) and id(node) not in docs:
            v = node.value
            if (type(v) is int and v == ioschema.DEFAULT_PORT) or (isinstance(v, str) and (
                    str(ioschema.DEFAULT_PORT) in v or any(p in v for p in SCHEMA_PREFIXES))):
                found.append(f"{path}:{node.lineno}: the literal {v!r}")
        elif isinstance(node, ast.Tuple) and all(isinstance(e, ast.Constant) for e in node.elts) and node.elts:
            values = tuple(e.value for e in node.elts)
            if values in TUPLES:
                found.append(f"{path}:{node.lineno}: a copy of {values!r}")
    return found


def test_shared_names_are_defined_once() -> None:
    files = [f for d in ("lab", "services") for f in (ROOT / d).rglob("*.py") if SCHEMA_DIR not in f.parents]
    assert len(files) > 60, "the sources were not found"
    offenders = [line for f in files for line in copies(f)]
    assert not offenders, "a shared name defined or copied outside services/ioschema:\n" + "\n".join(offenders)


def test_the_check_itself_finds_copies(tmp_path: Path) -> None:
    f = tmp_path / "copy.py"
    f.write_text('"""12345 in a docstring is prose."""\nDEFAULT_PORT = 8080\nx = "server:12345"\n'
                 'y = ("signal", "count", "all-closed", "duration")\nz = {"schema": "iolab.checks/2"}\n')
    assert [line.split(": ", 1)[1] for line in copies(f)] == [
        "defines DEFAULT_PORT", "the literal 'server:12345'",
        "a copy of ('signal', 'count', 'all-closed', 'duration')", "the literal 'iolab.checks/2'"]
