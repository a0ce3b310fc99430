"""What a batch runs over and what it gives back, aligned: inputs -> fields per item -> :class:`BatchResult`.

Inputs (pandas is never imported here; it is recognised by its methods):

* a pandas ``DataFrame``: one item per row; ``{item}`` and ``{row}`` are the row
  (``col: value`` lines), ``{col}``, ``{row.col}`` and ``{row[col]}`` its cells;
* a pandas ``Series`` or a ``dict``: one item per value, ``{index}`` its label;
* a list (or any iterable) of values; a ``dict`` item also fills ``{key}`` from
  its keys.

``{index}`` is the item's label (its position for a list).  A
:class:`BatchResult` is a list aligned with the input's order; with pandas input
:meth:`BatchResult.to_series` and :meth:`BatchResult.to_frame` align to its index.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

__all__ = ["Row", "Source", "source", "request_key", "BatchResult"]


class Row(dict):
    """One DataFrame row: a dict of its cells that also answers ``row.col``; shown as ``col: value`` lines."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __str__(self) -> str:
        return "\n".join(f"{k}: {v}" for k, v in self.items())

    def __format__(self, spec: str) -> str:  # "{row}" in a template: the lines, not the dict's repr
        return format(str(self), spec)


@dataclass
class Source:
    """The items of an input, one ``(position, fields)`` pair at a time, in order."""

    total: int
    items: Iterator[tuple[int, dict[str, Any]]]
    index: Any = None  #: the pandas index (or the dict's keys) the results align to; None for a list
    kind: str = "list"  #: ``dataframe``, ``series``, ``dict`` or ``list``

    def label(self, position: int) -> Any:
        return position if self.index is None else self.index[position]


def _is_dataframe(data: Any) -> bool:
    return hasattr(data, "itertuples") and hasattr(data, "columns") and hasattr(data, "index")


def _is_series(data: Any) -> bool:
    return hasattr(data, "index") and hasattr(data, "items") and hasattr(data, "dtype")


def source(data: Any) -> Source:
    """The items of ``data`` (see the module docstring); a generator is read into a list first."""
    if _is_dataframe(data):
        columns = [str(c) for c in data.columns]

        def rows() -> Iterator[tuple[int, dict[str, Any]]]:
            for position, values in enumerate(data.itertuples(index=True, name=None)):
                row = Row(zip(columns, values[1:]))
                yield position, {**row, "item": row, "row": row, "index": values[0]}

        return Source(len(data), rows(), data.index, "dataframe")
    if _is_series(data) or isinstance(data, Mapping):
        labels = list(data.keys()) if isinstance(data, Mapping) else data.index
        pairs = data.items()
        return Source(len(data), ((p, {"item": v, "index": k}) for p, (k, v) in enumerate(pairs)), labels,
                      "dict" if isinstance(data, Mapping) else "series")
    if isinstance(data, (str, bytes)):
        raise TypeError("a batch runs over a list, a pandas Series or DataFrame, or another iterable, "
                        "not over one string")
    values = data if hasattr(data, "__len__") and hasattr(data, "__getitem__") else list(data)

    def plain() -> Iterator[tuple[int, dict[str, Any]]]:
        for position, value in enumerate(values):
            fields = {k: v for k, v in value.items() if isinstance(k, str)} if isinstance(value, Mapping) else {}
            yield position, {**fields, "item": value, "index": position}

    return Source(len(values), plain())


#: request options that do not change the answer: never part of a key
_NOT_KEYED = frozenset({"timeout", "api_key"})


def request_key(provider: str, model: str, messages: list[dict[str, str]], kwargs: Mapping[str, Any]) -> str:
    """The store key of one item: a hash of everything that decides its answer."""
    params = {k: v for k, v in kwargs.items() if k not in _NOT_KEYED and v is not None}
    blob = json.dumps([provider, model, messages, params], sort_keys=True, default=repr, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class BatchResult(list):
    """The answers in the input's order; ``None`` where an item failed or was not run.

    ``errors``
        ``{position: reason}`` of the items that failed (after their retries).
    ``pending``
        positions never finished: the batch was interrupted (``status``
        ``interrupted``) or stopped by a failure no item can get past, such as
        a wrong API key (``status`` ``stopped``, ``stop_reason`` says which).
    ``cached`` / ``sent``
        how many answers came from the store / were asked for now.
    ``reused`` / ``repeated``
        items whose prompt came earlier in the same run (sent once, its answer used again) / how many
        distinct prompts that was.
    ``index``
        the pandas index (or dict keys) of the input, else None.

    With ``json=True`` the values are the parsed JSON (the pydantic model
    instances with a pydantic ``schema``).
    """

    def __init__(self, values: list[Any], *, errors: dict[int, str] | None = None, pending: list[int] | None = None,
                 index: Any = None, status: str = "ok", stop_reason: str = "", cached: int = 0, sent: int = 0,
                 elapsed: float = 0.0, notes: list[str] | None = None, reused: int = 0, repeated: int = 0):
        super().__init__(values)
        self.errors = dict(sorted((errors or {}).items()))
        self.pending = list(pending or [])
        self.index = index
        self.status = status
        self.stop_reason = stop_reason
        self.cached = cached
        self.sent = sent
        self.elapsed = elapsed
        self.notes = list(notes or [])
        self.reused, self.repeated = reused, repeated

    @property
    def ok(self) -> int:
        return len(self) - len(self.errors) - len(self.pending)

    def label(self, position: int) -> Any:
        """The input's label of the item at ``position`` (its index label for pandas input)."""
        return position if self.index is None else self.index[position]

    def to_series(self, name: str | None = None) -> Any:
        """A pandas Series aligned to the input's index (failed items: None; their reasons, by index label,
        in ``series.attrs["errors"]``)."""
        import pandas as pd

        series = pd.Series(list(self), index=self.index if self.index is not None else None, name=name, dtype=object)
        series.attrs["errors"] = {self.label(position): reason for position, reason in self.errors.items()}
        return series

    def to_frame(self, prefix: str = "") -> Any:
        """JSON answers expanded into columns (one per field), aligned to the input's index."""
        import pandas as pd

        records = [{f"{prefix}{k}": v for k, v in value.items()} if isinstance(value := _plain(v), dict) else {}
                   for v in self]
        return pd.DataFrame.from_records(records, index=self.index if self.index is not None else None)

    def summary(self) -> str:
        """One line: how many answered, failed, were not run; how many came from the store; the time."""
        parts = [f"{self.ok}/{len(self)} answered"]
        if self.errors:
            parts.append(f"{len(self.errors)} failed")
        if self.pending:
            why = "interrupted" if self.status == "interrupted" else f"stopped: {self.stop_reason}"
            parts.append(f"{len(self.pending)} not run ({why})")
        parts.append(f"{self.cached} from the store, {self.sent} sent")
        if self.repeated:  # the same prompt more than once in this run
            uses = self.reused + self.repeated
            parts.append(f"1 repeated prompt sent once, used {uses} times" if self.repeated == 1 else
                         f"{self.repeated} repeated prompts sent once each, used {uses} times in all")
        parts.append(f"{self.elapsed:.1f} s")
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"BatchResult({list.__repr__(self)}; {self.summary()})"


def _plain(value: Any) -> Any:
    """A pydantic model as its dict (for pandas); anything else as it is."""
    dump = getattr(value, "model_dump", None)
    return dump() if callable(dump) and not isinstance(value, type) else value
