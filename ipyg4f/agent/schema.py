"""The model's arguments checked against a tool's JSON schema, before the tool runs.

Covers what tool schemas use (ours from signatures, pydantic's, MCP servers'):
``type`` (one or a list), ``enum``, ``const``, ``properties`` / ``required`` /
``additionalProperties``, ``items``, ``anyOf`` / ``oneOf`` / ``allOf``, and
``$ref`` into the schema's own ``$defs`` / ``definitions``.  Anything else
(formats, lengths, patterns) is left to the tool.  :func:`check` gives the first
problem as one short line the model can act on, or ``None``.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["check", "parse_arguments"]

_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool)
    or isinstance(v, float) and v.is_integer(),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}


def parse_arguments(text: str | None) -> dict[str, Any]:
    """The call's arguments (a JSON object as text; empty means none); ``ValueError`` with a short reason."""
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the arguments are not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, dict):
        raise ValueError(f"the arguments must be a JSON object, not {_json_type(value)}")
    return value


def check(schema: dict[str, Any], value: Any) -> str | None:
    """The first way ``value`` does not fit ``schema`` (one line), or ``None`` when it fits."""
    return _check(schema, value, "arguments", schema)


def _check(schema: Any, value: Any, where: str, root: dict[str, Any]) -> str | None:
    if not isinstance(schema, dict):
        return None  # True / {} / a form we do not read: anything goes
    if "$ref" in schema:
        target = _resolve(schema["$ref"], root)
        return None if target is None else _check(target, value, where, root)
    for part in schema.get("allOf", ()):
        if (problem := _check(part, value, where, root)) is not None:
            return problem
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        problems = [_check(option, value, where, root) for option in options]
        if all(p is not None for p in problems):
            kinds = [o.get("type") for o in options if isinstance(o, dict)]
            if all(isinstance(k, str) for k in kinds):
                return f"{where}: expected {' or '.join(kinds)}, not {_json_type(value)}"
            return problems[0] if len(problems) == 1 else f"{where}: fits none of the allowed forms ({problems[0]})"
    if "const" in schema and value != schema["const"]:
        return f"{where}: must be {json.dumps(schema['const'])}"
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(json.dumps(v) for v in schema["enum"][:12])
        return f"{where}: {json.dumps(value)[:60]} is not one of {allowed}"
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_TYPES.get(k, lambda v: True)(value) for k in kinds):
            return f"{where}: expected {' or '.join(kinds)}, not {_json_type(value)}"
    if isinstance(value, dict):
        return _object(schema, value, where, root)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            if (problem := _check(schema["items"], item, f"{where}[{i}]", root)) is not None:
                return problem
    return None


def _object(schema: dict[str, Any], value: dict[str, Any], where: str, root: dict[str, Any]) -> str | None:
    properties = schema.get("properties", {})
    missing = [name for name in schema.get("required", ()) if name not in value]
    if missing:
        return f"{where}: missing required {', '.join(repr(m) for m in missing)}"
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        path = key if where == "arguments" else f"{where}.{key}"
        if key in properties:
            problem = _check(properties[key], item, path, root)
        elif extra is False:
            known = ", ".join(repr(p) for p in properties) or "none"
            problem = f"{where}: unexpected {key!r} (known: {known})"
        else:
            problem = _check(extra, item, path, root)
        if problem is not None:
            return problem
    return None


def _resolve(ref: str, root: dict[str, Any]) -> Any:
    if not ref.startswith("#/"):
        return None
    node: Any = root
    for part in ref[2:].split("/"):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__

