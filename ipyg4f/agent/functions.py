"""A Python callable from the user's namespace -> a :class:`~ipyg4f.agent.tool.Tool`.

The JSON schema comes from the signature and type hints (``str``, ``int``,
``float``, ``bool``, ``list[X]``, ``tuple``, ``dict[str, X]``, ``Optional`` and
unions, ``Literal``, ``Enum``, ``Annotated[X, "text"]``, defaults, required);
the description and each parameter's description from the docstring (Google,
NumPy or reST style).  A pydantic model parameter (anything with
``model_json_schema`` and ``model_validate``, looked at duck-typed so pydantic is
never imported here) gives its model's schema and is called with a validated
instance; an ``Enum`` parameter with the member.  ``*args`` and ``**kwargs`` are
not offered.
"""

from __future__ import annotations

import enum
import inspect
import json
import types
import typing
from typing import Any, Callable, Mapping

from . import docstrings
from .tool import FUNCTION, Tool, ToolError, safe_name

__all__ = ["resolve", "function_tool", "schema_of"]


def resolve(name: str, namespace: Mapping[str, Any]) -> Callable[..., Any]:
    """``"db.query"`` -> the callable ``namespace["db"].query``; ``ToolError`` when it is not one."""
    head, *rest = name.strip().split(".")
    if not head.isidentifier() or not all(part.isidentifier() for part in rest):
        raise ToolError(f"{name!r} is not a name like add or db.query")
    if head not in namespace:
        raise ToolError(f"{head!r} is not defined")
    value = namespace[head]
    for part in rest:
        if part.startswith("_"):
            raise ToolError(f"{name}: private attributes are not offered as tools")
        try:
            value = inspect.getattr_static(value, part) if inspect.ismodule(value) else getattr(value, part)
        except AttributeError:
            raise ToolError(f"{name}: {part!r} not found") from None
    if not callable(value):
        raise ToolError(f"{name} is a {type(value).__name__}, not a function")
    return value


def function_tool(func: Callable[..., Any], label: str | None = None) -> Tool:
    """``func`` as a tool named after ``label`` (default: its ``__name__``)."""
    label = label or getattr(func, "__name__", None) or type(func).__name__
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        raise ToolError(f"{label}: its signature cannot be read") from None
    hints = _hints(func)
    described = docstrings.parameters(inspect.getdoc(func))
    properties: dict[str, Any] = {}
    required: list[str] = []
    defs: dict[str, Any] = {}
    converters: dict[str, Callable[[Any], Any]] = {}
    positional: list[str] = []
    for name, param in signature.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.kind is param.POSITIONAL_ONLY:
            positional.append(name)
        annotation = hints.get(name, param.annotation)
        schema, note = _annotated(annotation)
        schema = _hoist(schema, defs)
        if description := described.get(name) or note:
            schema = {**schema, "description": description}
        if param.default is param.empty:
            required.append(name)
        elif _is_json(param.default):
            schema = {**schema, "default": _plain(param.default)}
        properties[name] = schema
        if (convert := _converter(annotation)) is not None:
            converters[name] = convert
    parameters: dict[str, Any] = {"type": "object", "properties": properties, "required": required,
                                  "additionalProperties": False}
    if defs:
        parameters["$defs"] = defs
    description = docstrings.summary(inspect.getdoc(func)) or f"Calls {label}{signature}."

    def call(arguments: dict[str, Any]) -> Any:
        values = {}
        for name, value in arguments.items():
            convert = converters.get(name)
            values[name] = _convert(name, convert, value) if convert else value
        first = [values.pop(n) for n in positional if n in values]
        return func(*first, **values)

    return Tool(safe_name(label), description, parameters, call, FUNCTION, label)


def _hints(func: Any) -> dict[str, Any]:
    target = func if inspect.isroutine(func) or inspect.isclass(func) else type(func).__call__
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:  # a forward reference that does not resolve: the raw annotations are used
        return {}


def _annotated(annotation: Any) -> tuple[dict[str, Any], str]:
    """The schema of ``annotation`` and a description from ``Annotated[X, "text"]``."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        return schema_of(base), next((e for e in extra if isinstance(e, str)), "")
    return schema_of(annotation), ""


def schema_of(annotation: Any) -> dict[str, Any]:
    """The JSON schema of a type hint; ``{}`` (anything) for what it cannot say."""
    if annotation in (inspect.Parameter.empty, Any, object) or isinstance(annotation, str):
        return {}
    if annotation is None or annotation is type(None):
        return {"type": "null"}
    simple = {str: "string", bool: "boolean", int: "integer", float: "number"}
    if annotation in simple:
        return {"type": simple[annotation]}
    if inspect.isclass(annotation) and issubclass(annotation, enum.Enum):
        return {"enum": [_plain(m.value) for m in annotation]}
    if _is_model(annotation):
        return annotation.model_json_schema()
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _annotated(annotation)[0]
    if origin is typing.Literal:
        return {"enum": [_plain(a) for a in args]}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [schema_of(a) for a in args]}
    container = origin or annotation
    if container in (list, set, frozenset) or _is_abc(container, "Sequence", "Set", "Iterable"):
        return {"type": "array", **({"items": schema_of(args[0])} if args else {})}
    if container is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": schema_of(args[0])}
        return {"type": "array", **({"prefixItems": [schema_of(a) for a in args]} if args else {})}
    if container is dict or _is_abc(container, "Mapping"):
        return {"type": "object", **({"additionalProperties": schema_of(args[1])} if len(args) == 2 else {})}
    return {}


def _is_abc(cls: Any, *names: str) -> bool:
    import collections.abc as abc

    return any(cls is getattr(abc, n) or cls is getattr(typing, n, None) for n in names)


def _is_model(annotation: Any) -> bool:
    return inspect.isclass(annotation) and callable(getattr(annotation, "model_json_schema", None)) \
        and callable(getattr(annotation, "model_validate", None))


def _hoist(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Move a model's ``$defs`` to the top of the tool's schema, where its ``#/$defs/...`` refs point."""
    if "$defs" not in schema:
        return schema
    schema = dict(schema)
    defs.update(schema.pop("$defs"))
    return schema


def _converter(annotation: Any) -> Callable[[Any], Any] | None:
    """How a JSON value becomes what the parameter wants (an Enum member, a model instance), or None."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if annotation is int:  # the schema check lets 3.0 through as an integer: the function gets 3
        return lambda v: int(v) if isinstance(v, float) else v
    if inspect.isclass(annotation) and issubclass(annotation, enum.Enum):
        return annotation
    if _is_model(annotation):
        return annotation.model_validate
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        convert = _converter(inner[0]) if len(inner) == 1 else None
        return None if convert is None else (lambda v: None if v is None else convert(v))
    if origin in (list, set, frozenset, tuple) and args:
        convert = _converter(args[0])
        return None if convert is None else (lambda v: origin(convert(x) for x in v))
    return None


def _convert(name: str, convert: Callable[[Any], Any], value: Any) -> Any:
    try:
        return convert(value)
    except Exception as exc:
        errors = getattr(exc, "errors", None)  # pydantic's ValidationError, read duck-typed
        if callable(errors):
            first = errors()[0]
            where = ".".join(str(p) for p in (name, *first.get("loc", ())))
            raise ToolError(f"{where}: {first.get('msg', 'invalid')}") from None
        raise ToolError(f"{name}: {type(exc).__name__}: {exc}") from None


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _is_json(value: Any) -> bool:
    try:
        json.dumps(_plain(value))
    except (TypeError, ValueError):
        return False
    return True
