"""What the user points at (``--with``, ``--error``) -> bounded, typed descriptions for the model.

One job: values become :class:`Attachment` s whose text fits a budget of
characters and says where it was cut.  Expressions are evaluated without
calling user code beyond names, attributes and indexes (``df``,
``model.coef_``, ``Out[12]``, ``data["train"]``): they are parsed with
:mod:`ast` and walked here, never passed to ``eval``.  Describing copies no
data: a DataFrame gives its shape, dtypes, null counts (within a time
budget), a few head and tail rows and its shallow memory use; an array its
shape, dtype, edge values and min / max / mean.  pandas and numpy are looked
at only when the user already imported them (``sys.modules``), so loading the
extension stays cheap.  Images (``--image``) are :mod:`ipyg4f.context.images`' job.
"""

from __future__ import annotations

import ast
import inspect
import reprlib
import sys
import time
from dataclasses import dataclass
from typing import Any, Mapping

#: rows shown at each end of a table, items at the start of a collection
EDGE_ROWS = 3
LEADING_ITEMS = 10
#: most columns listed with their dtype and null count
MAX_COLUMNS = 40
#: time allowed for counting nulls of one table (seconds); columns not reached say so
NULL_COUNT_SECONDS = 0.05
#: rows per slice when counting nulls (bounds the temporary mask)
NULL_CHUNK = 1 << 20
#: most characters of a string taken before the budget cuts it
STR_LIMIT = 100_000
#: arrays larger than this get no min / max / mean (they would take long)
STATS_LIMIT = 50_000_000


class ContextError(Exception):
    """An attachment that cannot be made; the message is short and shown as a usage error."""


@dataclass(frozen=True)
class Attachment:
    """One thing sent with a prompt: a description (``text``), or an image (``data``, ``mime``)."""

    name: str  #: as the user wrote it (``df``, ``Out[3]``, ``last error``)
    kind: str  #: DataFrame, ndarray, dict, function, error, image...
    text: str = ""
    data: bytes = b""
    mime: str = ""
    cut: bool = False

    @property
    def is_image(self) -> bool:
        return bool(self.data)

    @property
    def size(self) -> str:
        if self.is_image:
            return f"{self.mime}, {_bytes(len(self.data))}"
        return f"{len(self.text):,} characters" + (", cut" if self.cut else "")


# --- expressions ---------------------------------------------------------------------------


def split_exprs(spec: str) -> list[str]:
    """``"df, model.coef_"`` -> ``["df", "model.coef_"]`` (commas inside brackets stay).

    Quotes around the whole list (the magic keeps them) are dropped: ``--with "d['a b'], df"``.
    """
    spec = spec.strip()
    if len(spec) > 1 and spec[0] == spec[-1] and spec[0] in "'\"":
        spec = spec[1:-1].strip()
    try:
        tree = ast.parse(spec, mode="eval").body
    except SyntaxError:
        raise ContextError(f"cannot read {spec!r}: name values like df, model.coef_, data['train']") from None
    items = tree.elts if isinstance(tree, ast.Tuple) and not spec.startswith("(") else [tree]
    return [ast.get_source_segment(spec, item) or "" for item in items]


def evaluate(expr: str, namespace: Mapping[str, Any]) -> Any:
    """The value of ``expr``: a name, then attributes and indexes (constant or name keys) only."""
    try:
        node = ast.parse(expr.strip(), mode="eval").body
    except SyntaxError:
        raise ContextError(f"{expr!r} is not a name, attribute or index") from None
    return _walk(node, namespace, expr)


def _walk(node: ast.AST, namespace: Mapping[str, Any], expr: str) -> Any:
    if isinstance(node, ast.Name):
        if node.id not in namespace:
            raise ContextError(f"{node.id!r} is not defined")
        return namespace[node.id]
    if isinstance(node, ast.Attribute):
        if node.attr.startswith("__"):
            raise ContextError(f"{expr}: dunder attributes are not read")
        owner = _walk(node.value, namespace, expr)
        return _guard(expr, "reading it", lambda: getattr(owner, node.attr))
    if isinstance(node, ast.Subscript):
        owner = _walk(node.value, namespace, expr)
        key = _key(node.slice, namespace, expr)
        return _guard(expr, "reading it", lambda: owner[key])
    raise ContextError(f"{expr}: only names, attributes and indexes are evaluated (no calls or operators)")


def _key(node: ast.AST, namespace: Mapping[str, Any], expr: str) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
            and isinstance(node.operand.value, (int, float)):
        return -node.operand.value
    if isinstance(node, ast.Name):
        return _walk(node, namespace, expr)
    if isinstance(node, ast.Tuple):
        return tuple(_key(e, namespace, expr) for e in node.elts)
    raise ContextError(f"{expr}: an index must be a constant or a name")


def _guard(name: str, doing: str, call: Any) -> Any:
    try:
        return call()
    except ContextError:
        raise
    except Exception as exc:
        raise ContextError(f"{name}: {doing} raised {type(exc).__name__}: {shorten(str(exc))}") from None


# --- descriptions ---------------------------------------------------------------------------


def attach(exprs: list[str], namespace: Mapping[str, Any], budget: int) -> list[Attachment]:
    """An attachment per expression, each within ``budget`` characters; the first problem raises."""
    out = []
    for expr in exprs:
        value = evaluate(expr, namespace)
        kind, text = _guard(expr, "describing it", lambda: describe(value))
        text, cut = fit(text, budget)
        out.append(Attachment(expr, kind, text, cut=cut))
    return out


def fit(text: str, budget: int) -> tuple[str, bool]:
    """``text`` within ``budget`` characters; a cut one ends with a line saying where it was cut."""
    if len(text) <= budget:
        return text, False
    marker = f"\n[… cut here: {budget:,} of {len(text):,} characters]"
    keep = max(budget - len(marker), 0)
    return text[:keep] + marker, True


def describe(value: Any) -> tuple[str, str]:
    """``(kind, description)`` of any value; pandas and numpy types are recognised when imported."""
    pd, np = sys.modules.get("pandas"), sys.modules.get("numpy")
    if pd is not None and isinstance(value, pd.DataFrame):
        return "DataFrame", _frame(value)
    if pd is not None and isinstance(value, pd.Series):
        return "Series", _series(value)
    if np is not None and isinstance(value, np.ndarray):
        return "ndarray", _array(value, np)
    pl = sys.modules.get("polars")
    if pl is not None and isinstance(value, (pl.DataFrame, pl.Series)):
        return f"polars {type(value).__name__}", _polars(value, pl)
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        return type(value).__name__, _collection(value)
    if inspect.isclass(value) or inspect.isroutine(value):
        return ("class" if inspect.isclass(value) else "function"), _callable(value)
    if isinstance(value, str):
        return "str", f"str of {len(value):,} characters:\n{value[:STR_LIMIT]}"
    text = repr(value)  # not reprlib's: it hides a repr that raises, which must stop the cell
    return _type_name(value), f"{_type_name(value)}: {text[:2000]}" + ("…" if len(text) > 2000 else "")


def _frame(df: Any) -> str:
    rows, cols = df.shape
    lines = [f"pandas DataFrame: {rows:,} rows x {cols:,} columns",
             f"memory: {_bytes(int(df.memory_usage(index=True, deep=False).sum()))} (shallow)"]
    nulls = _null_counts([df.iloc[:, i] for i in range(min(cols, MAX_COLUMNS))])
    lines.append("columns (dtype, nulls):")
    for position, (name, dtype) in enumerate(df.dtypes.items()):
        if position == MAX_COLUMNS:
            lines.append(f"  … {cols - MAX_COLUMNS:,} more columns")
            break
        lines.append(f"  {_repr(name, 60)}: {dtype}, {nulls.get(position, '?')} null")
    if nulls.get("skipped"):
        lines.append(f"  (? = not counted: null counting stops after {NULL_COUNT_SECONDS * 1000:.0f} ms)")
    lines += _edges(df, rows)
    return "\n".join(lines)


def _polars(value: Any, pl: Any) -> str:
    """A polars DataFrame or Series: its null counts are metadata, its head and tail are slices (no copy)."""
    frame = value if isinstance(value, pl.DataFrame) else value.to_frame()
    rows, cols = frame.shape
    kind = "DataFrame" if value is frame else f"Series {_repr(value.name, 60)}"
    nulls = frame.null_count().row(0)
    lines = [f"polars {kind}: {rows:,} rows x {cols:,} columns",
             f"memory: {_bytes(int(frame.estimated_size()))} (estimated)", "columns (dtype, nulls):"]
    for position, (name, dtype) in enumerate(frame.schema.items()):
        if position == MAX_COLUMNS:
            lines.append(f"  … {cols - MAX_COLUMNS:,} more columns")
            break
        lines.append(f"  {_repr(name, 60)}: {dtype}, {nulls[position]} null")
    with pl.Config(tbl_rows=EDGE_ROWS * 2, tbl_cols=12, fmt_str_lengths=40):
        if rows <= EDGE_ROWS * 2:
            lines += ["rows:", str(frame)]
        else:
            lines += [f"first {EDGE_ROWS} rows:", str(frame.head(EDGE_ROWS)),
                      f"last {EDGE_ROWS} rows:", str(frame.tail(EDGE_ROWS))]
    return "\n".join(lines)


def _series(s: Any) -> str:
    lines = [f"pandas Series {_repr(s.name, 60)}: {len(s):,} values, dtype {s.dtype}",
             f"memory: {_bytes(int(s.memory_usage(index=True, deep=False)))} (shallow)"]
    nulls = _null_counts([s])
    lines.append(f"nulls: {nulls.get(0, '?')}")
    lines += _edges(s, len(s))
    return "\n".join(lines)


def _edges(obj: Any, rows: int) -> list[str]:
    """The first and last few rows as text (only those rows are copied)."""
    def show(part: Any) -> str:
        if hasattr(part, "columns"):
            return part.to_string(max_cols=12, max_colwidth=40, show_dimensions=False)
        return part.to_string(max_rows=EDGE_ROWS * 2)

    if rows <= EDGE_ROWS * 2:
        return ["rows:", show(obj)]
    return [f"first {EDGE_ROWS} rows:", show(obj.head(EDGE_ROWS)),
            f"last {EDGE_ROWS} rows:", show(obj.tail(EDGE_ROWS))]


def _null_counts(columns: list[Any]) -> dict[Any, Any]:
    """Nulls per column position, counted slice by slice (a bounded mask) within a time budget."""
    counts: dict[Any, Any] = {}
    deadline = time.perf_counter() + NULL_COUNT_SECONDS
    for position, column in enumerate(columns):
        rows = len(column)
        if column.dtype.kind in "iub":  # numpy integers and booleans hold no null
            counts[position] = 0
            continue
        count = _null_counter(column)
        total = 0
        for start in range(0, rows, NULL_CHUNK):
            if time.perf_counter() > deadline:
                counts["skipped"] = True
                return counts
            total += count(start, start + NULL_CHUNK)
        counts[position] = total
    return counts


def _null_counter(column: Any) -> Any:
    """``count(start, stop)``: nulls in that slice, on the column's own numpy data where there is one."""
    np = sys.modules.get("numpy")
    dtype = column.dtype
    if np is not None and isinstance(dtype, np.dtype) and dtype.kind in "fcmM":
        values = column.to_numpy(copy=False)  # a view of the column's data
        test = np.isnan if dtype.kind in "fc" else np.isnat
        return lambda start, stop: int(np.count_nonzero(test(values[start:stop])))
    if np is not None and getattr(dtype, "name", "") == "category":
        codes = column.array.codes  # the Categorical's own codes (a view; .cat.codes would copy)
        return lambda start, stop: int(np.count_nonzero(codes[start:stop] == -1))
    return lambda start, stop: int(column.iloc[start:stop].isna().sum())


def _array(a: Any, np: Any) -> str:
    lines = [f"numpy ndarray: shape {a.shape}, dtype {a.dtype}, {_bytes(a.nbytes)}",
             np.array2string(a, threshold=20, edgeitems=3, max_line_width=100)]
    if a.size and np.issubdtype(a.dtype, np.number) and not np.issubdtype(a.dtype, np.complexfloating):
        if a.size > STATS_LIMIT:
            lines.append(f"min / max / mean: not computed ({a.size:,} elements)")
        else:
            stats = [a.min(), a.max(), a.mean(dtype=np.float64)]
            lines.append("min {} / max {} / mean {}".format(*(f"{float(v):.6g}" for v in stats)))
            if np.issubdtype(a.dtype, np.floating) and np.isnan(stats[2]):
                lines.append(f"(has NaN; without them: min {float(np.nanmin(a)):.6g} / max {float(np.nanmax(a)):.6g})")
    return "\n".join(lines)


def _collection(value: Any) -> str:
    n = len(value)
    head = f"{type(value).__name__} of {n:,} items"
    if isinstance(value, dict):
        items = [f"  {_repr(k, 60)}: {_repr(v, 200)}" for k, v in _first(value.items())]
    else:
        items = [f"  {_repr(v, 200)}" for v in _first(value)]
    more = [f"  … {n - LEADING_ITEMS:,} more"] if n > LEADING_ITEMS else []
    return "\n".join([head + (":" if n else ""), *items, *more])


def _first(items: Any) -> list[Any]:
    out = []
    for item in items:
        if len(out) == LEADING_ITEMS:
            break
        out.append(item)
    return out


def _callable(value: Any) -> str:
    try:
        signature = str(inspect.signature(value))
    except (TypeError, ValueError):
        signature = "(…)"
    name = getattr(value, "__qualname__", None) or getattr(value, "__name__", "?")
    doc = inspect.getdoc(value) or "(no docstring)"
    word = "class" if inspect.isclass(value) else "def"
    return f"{word} {name}{signature}\n{doc}"


def _type_name(value: Any) -> str:
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _repr(value: Any, limit: int) -> str:
    r = reprlib.Repr()  # keyword arguments only from Python 3.12
    r.maxstring = r.maxother = limit
    r.maxlist = r.maxtuple = r.maxset = r.maxfrozenset = r.maxdict = LEADING_ITEMS
    return r.repr(value)


def shorten(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bytes(n: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def context_block(attachments: list[Attachment]) -> str:
    """The text attachments as one delimited block (images are named; their pixels go apart)."""
    if not attachments:
        return ""
    parts = ["<context>The user attached these from their Python session:"]
    for a in attachments:
        body = f"[image: {a.size}]" if a.is_image else a.text
        parts.append(f'<attachment name="{a.name}" kind="{a.kind}">\n{body}\n</attachment>')
    parts.append("</context>")
    return "\n".join(parts)


def user_content(prompt: str, attachments: list[Attachment]) -> str | list[dict[str, Any]]:
    """The user message's content: the prompt after the context block; with images, OpenAI content parts."""
    block = context_block(attachments)
    text = f"{block}\n\n{prompt}" if block else prompt
    images = [a for a in attachments if a.is_image]
    if not images:
        return text
    import base64

    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    for a in images:
        url = f"data:{a.mime};base64,{base64.b64encode(a.data).decode('ascii')}"
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts
