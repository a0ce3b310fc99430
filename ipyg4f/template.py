"""``{name}`` in a prompt, filled from the user's namespace (``-r/--raw`` turns it off)."""

from __future__ import annotations

import string
from collections import ChainMap
from typing import Any, Mapping


def fill_template(template: str, namespace: Mapping[str, Any]) -> str:
    """Fill ``{name}`` (attributes and indexes too, e.g. ``{In[3]}``) from the namespace.

    Unknown names stay as written; ``{{``/``}}`` are braces; a template that
    does not parse is left as it is.
    """
    formatter = string.Formatter()
    try:
        parsed = list(formatter.parse(template))
    except ValueError:
        return template
    out = []
    for literal, field, spec, conversion in parsed:
        out.append(literal)
        if field is None:
            continue
        original = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        try:
            value, _ = formatter.get_field(field, (), namespace)
            value = formatter.convert_field(value, conversion)
            out.append(formatter.format_field(value, spec or ""))
        except Exception:  # unknown name, bad index or spec: keep the text as the user wrote it
            out.append(original)
    return "".join(out)


def user_namespace(shell: Any) -> Mapping[str, Any]:
    """The user namespace, with ``In`` as the cells were typed (not as IPython transformed them)."""
    history = getattr(shell, "history_manager", None)
    raw = getattr(history, "input_hist_raw", None) if history is not None else None
    return ChainMap({"In": raw}, shell.user_ns) if raw is not None else shell.user_ns
