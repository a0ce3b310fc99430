"""The read-only ``notebook`` toolset: what the model may look at in the live session, never asking.

``list_variables``  names, types, shapes or lengths; nothing of the user's is called
``describe(name)``  the bounded, typed description ``--with`` attaches (:mod:`ipyg4f.context.values`)
``read_cells``      the executed cells in execution order: source, short result, error
``last_error``      the last exception, as ``--error`` attaches it (:mod:`ipyg4f.context.lasterror`)

Everything is bounded by a character budget.  Errors of cells are known from
the moment the extension loads (:func:`ipyg4f.context.lasterror.track`, whose
hook also remembers the last error for ``--error``); before that ``read_cells``
shows sources and results.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

from ..context import lasterror, values
from .tool import READ, Tool, ToolError

__all__ = ["notebook_tools", "list_variables", "read_cells", "notebook_context"]

#: most variables listed, most cells read in one call, characters of one cell's result
MAX_VARIABLES = 200
MAX_CELLS = 50
RESULT_CHARS = 300
#: IPython's own names, hidden even where the shell does not say so
_IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython", "open"}
_SIZED = (list, tuple, dict, set, frozenset, str, bytes, bytearray, range)
_SCALARS = (int, float, complex, bool, type(None))



def notebook_tools(shell: Any, budget: int = 4000) -> list[Tool]:
    """The four tools over ``shell`` (its ``user_ns``), each answer within ``budget`` characters."""
    def fitted(text: str) -> str:
        return values.fit(text, budget)[0]

    def describe(arguments: dict[str, Any]) -> str:
        name = arguments["name"]
        try:
            [attachment] = values.attach([name], shell.user_ns, budget)
        except values.ContextError as exc:
            raise ToolError(str(exc)) from None
        return attachment.text

    def last(arguments: dict[str, Any]) -> str:
        try:
            return lasterror.last_error(shell, budget).text
        except values.ContextError as exc:
            raise ToolError(str(exc)) from None

    integer = {"type": ["integer", "null"]}
    return [
        Tool("list_variables", "List the variables of the user's Python session: name, type, shape or length.",
             {"type": "object", "properties": {}, "additionalProperties": False},
             lambda arguments: fitted(list_variables(shell.user_ns, _hidden(shell))), READ),
        Tool("describe", "Describe one value of the user's session (a name, attribute or index like df, "
             "model.coef_, data['train']): its type, size, and a bounded view of its contents.",
             {"type": "object", "properties": {"name": {"type": "string", "description": "the value to describe"}},
              "required": ["name"], "additionalProperties": False}, describe, READ),
        Tool("read_cells", "Read the notebook's executed cells in execution order (source, result, error). "
             "start and end are execution counts, both included; without them the last 10 cells.",
             {"type": "object", "properties": {"start": integer, "end": integer}, "additionalProperties": False},
             lambda arguments: fitted(read_cells(shell, arguments.get("start"), arguments.get("end"))), READ),
        Tool("last_error", "The last error raised in the user's session: type, message, traceback of their "
             "own code and the source of the cell that raised.",
             {"type": "object", "properties": {}, "additionalProperties": False}, last, READ),
    ]


def _hidden(shell: Any) -> set[str]:
    return set(getattr(shell, "user_ns_hidden", ()) or ()) | _IPYTHON_NAMES


def list_variables(namespace: dict[str, Any], hidden: set[str] = frozenset()) -> str:
    """One line per variable: ``name: type, shape (3, 4)``; modules, functions and private names left out."""
    lines = []
    names = [n for n in namespace if not n.startswith("_") and n not in hidden and n not in _IPYTHON_NAMES]
    for name in names:
        value = namespace[name]
        if inspect.ismodule(value) or inspect.isroutine(value):
            continue
        lines.append(f"{name}: {_summary(value)}")
    if not lines:
        return "no variables defined yet"
    more = len(lines) - MAX_VARIABLES
    return "\n".join(lines[:MAX_VARIABLES] + ([f"… {more:,} more"] if more > 0 else []))


def _summary(value: Any) -> str:
    """Type and size read from the type, not the object: no property, ``__len__`` or ``__repr__`` of
    the user's runs (builtin containers and scalars, numpy / pandas / polars objects are known)."""
    cls = type(value)
    if inspect.isclass(value):
        return "class"
    kind = values._type_name(value)
    if cls in _SCALARS:
        return f"{kind} = {value!r}"
    if cls in _SIZED:
        text = f"{kind} of {len(value):,} {'characters' if cls is str else 'items'}"
        return text + (f" = {value!r}" if cls is str and len(value) <= 40 else "")
    for module, names in (("numpy", ("ndarray",)), ("pandas", ("DataFrame", "Series")),
                          ("polars", ("DataFrame", "Series"))):
        lib = sys.modules.get(module)
        if lib is not None and any(cls is getattr(lib, n, None) for n in names):
            shape = value.shape
            dtype = f", dtype {value.dtype}" if hasattr(cls, "dtype") else ""
            return f"{kind}, shape {shape}{dtype}"
    return kind


def read_cells(shell: Any, start: int | None = None, end: int | None = None) -> str:
    """The executed cells ``start`` to ``end`` (execution counts, both included; default the last 10)."""
    last = _last_cell(shell)
    end = last if end is None else min(end, last)
    start = max(1, end - 9) if start is None else max(1, start)
    if end < start:
        return f"no executed cells in that range (cells 1 to {last} exist)" if last else "no cells executed yet"
    start = max(start, end - MAX_CELLS + 1)
    return "\n".join(_cell(shell, n) for n in range(start, end + 1))


def notebook_context(shell: Any, budget: int) -> str:
    """The executed cells as context (``--notebook``): the newest first into the budget, shown in order;
    an older cell that does not fit whole is left out, and the text says how many were."""
    kept: list[str] = []
    used = 0
    last = _last_cell(shell)
    for n in range(last, 0, -1):
        text = _cell(shell, n)
        if used + len(text) + 1 > budget:
            break
        kept.append(text)
        used += len(text) + 1
    while True:
        left_out = last - len(kept)
        head = [f"[{left_out} older cell{'s' if left_out > 1 else ''} left out to fit]"] if left_out else []
        text = "\n".join(head + kept[::-1])
        if len(text) <= budget or not kept:
            return text if len(text) <= budget else ""
        kept.pop()  # the note itself must fit too


def _last_cell(shell: Any) -> int:
    """The newest executed cell's number (the cell running now, the one asking, is not read)."""
    sources = shell.user_ns.get("In") or []
    current = getattr(shell, "execution_count", len(sources))
    return max(min(len(sources) - 1, current - 1), 0)


def _cell(shell: Any, n: int) -> str:
    parts = [f"In [{n}]:\n{shell.user_ns['In'][n].rstrip()}"]
    outputs = shell.user_ns.get("Out") or {}
    if n in outputs:
        parts.append(f"Out[{n}]: {values._repr(outputs[n], RESULT_CHARS)}")
    error = lasterror.cell_errors(shell).get(n)
    if error:
        parts.append(f"Error in [{n}]: {error}")
    return "\n".join(parts)
