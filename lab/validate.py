"""A small JSON Schema reader (draft 2020-12, the keywords in KEYWORDS): the
first place a document leaves its schema, as `field: what is wrong`.

    violation(doc, schema)        # None, or "summary.replies: -1 should be at least 0"
    accepts(schema)(doc)          # True or False, compiled once: for many small documents

Why not the jsonschema package: it is a dev dependency (the tests hold these
schemas and this reading to it), and this is a few milliseconds for a
document where it takes a tenth of a second.  The lab's report schemas
(lab/report/schema.py) and the swarm's evidence (services/ioschema/schemas.py,
read by lab/measure/evidence.py) are both read here.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Callable

Schema = dict[str, Any]

KEYWORDS = {"$schema", "$id", "title", "type", "minimum", "exclusiveMinimum", "enum", "const", "pattern",
            "required", "properties", "additionalProperties", "propertyNames", "items", "prefixItems",
            "minItems", "maxItems", "if", "then", "not", "anyOf", "allOf"}
JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None, "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, float) and v.is_integer())}


def violation(doc: Any, schema: Schema) -> str | None:
    """The first place ``doc`` leaves ``schema``, in one line (`field: what`), or None."""
    found = first_error(doc, schema, "")
    return None if found is None else f"{found[0] or 'the document'}: {found[1]}"


def first_non_finite(value: Any, where: str = "") -> tuple[str, float] | None:
    """The first NaN or infinity in a parsed document (Python's json reads
    NaN, Infinity and 1e999 as floats), with where it is."""
    if isinstance(value, float) and not math.isfinite(value):
        return where, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = first_non_finite(item, join(where, key))
        if found is not None:
            return found
    return None


def first_error(value: Any, schema: Schema, where: str) -> tuple[str, str] | None:
    """(field, what is wrong) for the first place ``value`` leaves ``schema``."""
    types = schema.get("type")
    if types is not None and not any(JSON_TYPES[t](value) for t in _listed(types)):
        return where, f"{shown(value)} should be {_types(types)}"
    said = _scalar_error(value, schema)
    if said:
        return where, f"{shown(value)} {said}"
    if isinstance(value, dict):
        found = _object_error(value, schema, where)
    elif isinstance(value, list):
        found = _array_error(value, schema, where)
    else:
        found = None
    return found or _combined_error(value, schema, where)


def _combined_error(value: Any, schema: Schema, where: str) -> tuple[str, str] | None:
    """anyOf, allOf, not, if/then."""
    if "anyOf" in schema:
        errors = [first_error(value, sub, where) for sub in schema["anyOf"]]
        if all(errors):  # the deepest says most (a count below 0, not "should be null")
            return max(errors, key=lambda e: len(e[0]))  # type: ignore[arg-type,index,return-value]
    for sub in schema.get("allOf", ()):
        found = first_error(value, sub, where)
        if found:
            return found
    if "not" in schema and first_error(value, schema["not"], where) is None:
        return where, f"{shown(value)} is not allowed here"
    if "if" in schema and first_error(value, schema["if"], where) is None:
        return first_error(value, schema.get("then", {}), where)
    return None


def _same(value: Any, allowed: Any) -> bool:
    return value == allowed and isinstance(value, bool) == isinstance(allowed, bool)


def _scalar_error(value: Any, schema: Schema) -> str | None:
    if "const" in schema and not _same(value, schema["const"]):
        return f"should be {json.dumps(schema['const'])}"
    if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
        return f"should be one of {', '.join(map(json.dumps, schema['enum']))}"
    if JSON_TYPES["number"](value):
        if not math.isfinite(value):  # Python's json reads NaN and Infinity; JSON has neither
            return "is not a finite number"
        if "minimum" in schema and value < schema["minimum"]:
            return f"should be at least {schema['minimum']}"
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            return f"should be above {schema['exclusiveMinimum']}"
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        return f"should match {schema['pattern']}"
    return None


def _object_error(value: dict[str, Any], schema: Schema, where: str) -> tuple[str, str] | None:
    for key in schema.get("required", ()):
        if key not in value:
            return join(where, key), "missing"
    properties, rest, names = schema.get("properties", {}), schema.get("additionalProperties"), \
        schema.get("propertyNames")
    for key, item in value.items():
        if names is not None and _scalar_error(key, names):
            return join(where, key), f"{shown(key)} is no name here: {_scalar_error(key, names)}"
        sub = properties.get(key, rest)
        found = first_error(item, sub, join(where, key)) if isinstance(sub, dict) else None
        if found:
            return found
    return None


def _array_error(value: list[Any], schema: Schema, where: str) -> tuple[str, str] | None:
    if len(value) < schema.get("minItems", 0):
        return where, f"{shown(value)} should have at least {schema['minItems']} items"
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        return where, f"{shown(value)} should have at most {schema['maxItems']} items"
    prefix, rest = schema.get("prefixItems", []), schema.get("items")
    for i, item in enumerate(value):
        sub = prefix[i] if i < len(prefix) else rest
        found = first_error(item, sub, join(where, i)) if isinstance(sub, dict) else None
        if found:
            return found
    return None


def keywords(schema: Any) -> set[str]:
    """Every keyword a schema uses (the tests hold them to KEYWORDS)."""
    if not isinstance(schema, dict):
        return set()
    found = set(schema)
    for key, sub in schema.items():
        if key == "properties":
            found |= set().union(*(keywords(v) for v in sub.values()))
        elif key in ("additionalProperties", "propertyNames", "items", "if", "then", "not"):
            found |= keywords(sub)
        elif key in ("prefixItems", "anyOf", "allOf"):
            found |= set().union(*(keywords(v) for v in sub))
    return found


def _listed(types: Any) -> list[str]:
    return types if isinstance(types, list) else [types]


def shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _types(value: Any) -> str:
    words = {"integer": "a whole number", "number": "a number", "string": "text", "object": "a mapping",
             "array": "a list", "boolean": "true or false", "null": "null"}
    return " or ".join(words.get(n, n) for n in _listed(value))


def join(where: str, key: Any) -> str:
    return f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}" if where else str(key)


# -- compiled: a yes or no, fast, for many small documents (a trace's events) --------

def accepts(schema: Schema) -> Callable[[Any], bool]:
    """A predicate equal to ``first_error(v, schema, "") is None``, built once
    (every keyword in KEYWORDS becomes a closure, the commonest figures one
    comparison each): ten times faster than reading the schema each time,
    for the many events of a trace and the many records of a results.json.
    Only a False needs first_error's words."""
    general = _general(schema)
    quick = _quick(schema)
    return general if quick is None else lambda v: quick(v) or general(v)


def _quick(schema: Schema) -> Callable[[Any], bool] | None:
    """A test that says yes, in one comparison, to the usual values of a
    count, a time or a text (a no goes on to the general test)."""
    kind, low = schema.get("type"), schema.get("minimum", -math.inf)
    if set(schema) - {"type", "minimum"}:
        return None
    if kind == "integer":
        return lambda v: type(v) is int and v >= low
    if kind == "number":
        return lambda v: (type(v) is float or type(v) is int) and low <= v < math.inf
    if kind == "string" and low == -math.inf:
        return lambda v: type(v) is str
    return None


def _general(schema: Schema) -> Callable[[Any], bool]:
    checks = [_typed(schema)] if "type" in schema else []
    checks += _scalar_checks(schema)
    if {"required", "properties", "additionalProperties", "propertyNames"} & set(schema):
        checks.append(_fields(schema))
    if {"items", "prefixItems", "minItems", "maxItems"} & set(schema):
        checks.append(_elements(schema))
    checks += _combined_checks(schema)
    return _all(checks)


def _all(checks: list[Callable[[Any], bool]]) -> Callable[[Any], bool]:
    if len(checks) <= 2:  # the usual: a type and its fields; no generator to make per value
        first, second = (checks + [lambda v: True] * 2)[:2]
        return lambda v: first(v) and second(v)
    return lambda v: all(c(v) for c in checks)


def _scalar_checks(schema: Schema) -> list[Callable[[Any], bool]]:
    checks: list[Callable[[Any], bool]] = []
    number = JSON_TYPES["number"]
    if "minimum" in schema:
        low = schema["minimum"]
        checks.append(lambda v: not number(v) or v >= low)
    if "exclusiveMinimum" in schema:
        above = schema["exclusiveMinimum"]
        checks.append(lambda v: not number(v) or v > above)
    if "enum" in schema or "const" in schema:
        allowed = schema["enum"] if "enum" in schema else [schema["const"]]
        checks.append(lambda v: any(_same(v, a) for a in allowed))
    if "pattern" in schema:
        search = re.compile(schema["pattern"]).search
        checks.append(lambda v: not isinstance(v, str) or search(v) is not None)
    return checks


def _combined_checks(schema: Schema) -> list[Callable[[Any], bool]]:
    checks: list[Callable[[Any], bool]] = []
    if "anyOf" in schema:
        forms = [accepts(sub) for sub in schema["anyOf"]]
        checks.append(lambda v: any(f(v) for f in forms))
    if "allOf" in schema:
        parts = [accepts(sub) for sub in schema["allOf"]]
        checks.append(lambda v: all(f(v) for f in parts))
    if "not" in schema:
        refused = accepts(schema["not"])
        checks.append(lambda v: not refused(v))
    if "if" in schema:
        when, then = accepts(schema["if"]), accepts(schema.get("then", {}))
        checks.append(lambda v: not when(v) or then(v))
    return checks


def _typed(schema: Schema) -> Callable[[Any], bool]:
    tests = [_finite(JSON_TYPES[t]) if t in ("number", "integer") else JSON_TYPES[t] for t in _listed(schema["type"])]
    return tests[0] if len(tests) == 1 else lambda v: any(t(v) for t in tests)


def _fields(schema: Schema) -> Callable[[Any], bool]:
    need = tuple(schema.get("required", ()))
    subs = {k: accepts(s) for k, s in schema.get("properties", {}).items()}
    rest = accepts(schema["additionalProperties"]) if isinstance(schema.get("additionalProperties"), dict) else None
    names = accepts(schema["propertyNames"]) if "propertyNames" in schema else None
    known, absent = list(subs.items()), object()

    def check(v: Any) -> bool:
        if not isinstance(v, dict):
            return True  # "type" says whether it must be an object
        for k in need:
            if k not in v:
                return False
        if rest is None and names is None:  # the usual record: look up only its known keys
            for k, ok in known:
                item = v.get(k, absent)
                if item is not absent and not ok(item):
                    return False
            return True
        return all((ok := subs.get(k, rest)) is None or ok(item) for k, item in v.items()) and \
            (names is None or all(names(k) for k in v))
    return check


def _elements(schema: Schema) -> Callable[[Any], bool]:
    low, high = schema.get("minItems", 0), schema.get("maxItems", math.inf)
    prefix = [accepts(s) for s in schema.get("prefixItems", [])]
    rest = accepts(schema["items"]) if isinstance(schema.get("items"), dict) else None

    def check(v: Any) -> bool:
        if not isinstance(v, list):
            return True
        if not low <= len(v) <= high:
            return False
        for i, item in enumerate(v):
            ok = prefix[i] if i < len(prefix) else rest
            if ok is not None and not ok(item):
                return False
        return True
    return check


def _finite(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: test(v) and (not isinstance(v, float) or math.isfinite(v))
