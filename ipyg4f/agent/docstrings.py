"""A docstring's summary and its parameters' descriptions, in the three common styles.

Google (``Args:`` / ``Arguments:`` / ``Parameters:`` then ``name (type): text``),
NumPy (``Parameters`` underlined with dashes, then ``name : type`` and indented
text) and reST (``:param name: text``, ``:param type name: text``).  A
description may run over several lines; it is joined into one.  The summary is
the first paragraph, also joined.
"""

from __future__ import annotations

import inspect
import re

__all__ = ["summary", "parameters"]

_GOOGLE_HEAD = re.compile(r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments)\s*:\s*$")
_GOOGLE_ITEM = re.compile(r"^\*{0,2}(?P<name>\w+)\s*(\([^)]*\))?\s*:\s*(?P<text>.*)$")
_NUMPY_ITEM = re.compile(r"^\*{0,2}(?P<name>\w+)\s*(:.*)?$")
_REST_ITEM = re.compile(r"^:(param|parameter|arg|argument|key|keyword)\s+(?:[^:]*\s)?(?P<name>\w+)\s*:\s*(?P<text>.*)$")


def summary(doc: str | None) -> str:
    """The first paragraph of ``doc``, on one line ("" without a docstring)."""
    text = inspect.cleandoc(doc or "")
    first = text.split("\n\n", 1)[0]
    if _GOOGLE_HEAD.match(first.splitlines()[0] if first else "") or first.startswith(":"):
        return ""
    return " ".join(first.split())


def parameters(doc: str | None) -> dict[str, str]:
    """``{name: description}`` from whichever style ``doc`` uses (all three are read)."""
    lines = inspect.cleandoc(doc or "").splitlines()
    found: dict[str, str] = {}
    found.update(_google(lines))
    found.update(_numpy(lines))
    found.update(_rest(lines))
    return {name: " ".join(text.split()) for name, text in found.items() if text.strip()}


def _google(lines: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    inside, indent, current = False, None, None
    for line in lines:
        if _GOOGLE_HEAD.match(line.strip()) and not line.startswith(" "):
            inside, indent, current = True, None, None
            continue
        if not inside:
            continue
        if not line.strip():
            current = None
            continue
        depth = len(line) - len(line.lstrip())
        if depth == 0:  # the next section (or prose) ends this one
            inside = False
            continue
        if indent is None:
            indent = depth
        match = _GOOGLE_ITEM.match(line.strip())
        if depth == indent and match:
            current = match["name"]
            out[current] = match["text"]
        elif current is not None and depth > indent:
            out[current] += " " + line.strip()
    return out


def _numpy(lines: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    inside, current = False, None
    for i, line in enumerate(lines):
        underlined = i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}
        if underlined and not line.startswith(" "):
            inside, current = line.strip() in ("Parameters", "Other Parameters", "Keyword Arguments"), None
            continue
        if not inside or set(line.strip()) == {"-"}:
            continue
        if not line.startswith(" "):
            match = _NUMPY_ITEM.match(line.strip())
            current = match["name"] if match and line.strip() else None
            if current:
                out[current] = ""
        elif current is not None:
            out[current] += " " + line.strip()
    return out


def _rest(lines: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    current = None
    for line in lines:
        match = _REST_ITEM.match(line.strip())
        if match:
            current = match["name"]
            out[current] = match["text"]
        elif line.strip().startswith(":") or not line.strip():
            current = None
        elif current is not None and line.startswith(" "):
            out[current] += " " + line.strip()
    return out
