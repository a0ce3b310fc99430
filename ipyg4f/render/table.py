"""The tables of the line commands (``%chat providers``, ``models``, ``history``...): HTML for Jupyter,
plain columns for a terminal, both in one display."""

from __future__ import annotations

import html

__all__ = ["html_table", "text_table", "show_table"]

TH = ('<th style="text-align:left;vertical-align:bottom;padding:4px 12px 4px 0;'
      'border-bottom:1px solid var(--jp-border-color1,#bdbdbd)">')
TD = '<td style="text-align:left;vertical-align:top;padding:4px 12px 4px 0">'


def html_table(headers: list[str], rows: list[list[str]]) -> str:
    """Left-aligned (JupyterLab right-aligns and centres output tables), top-aligned cells, a rule under the header."""
    head = "".join(f"{TH}{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"{TD}{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return (f'<table style="margin-left:0;margin-right:auto;border-collapse:collapse">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def text_table(headers: list[str], rows: list[list[str]], width: int | None = None) -> str:
    """Plain columns that fit ``width`` (in a terminal: its width): columns are narrowed where that
    costs the fewest extra lines, their cells wrapped.  Not a terminal: lines as long as needed."""
    import shutil
    import sys
    import textwrap

    if width is None:
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else 1 << 30
    widths = _fitted([[str(c) for c in r] for r in [headers, *rows]], width)
    lines = []
    for row in [headers, *rows]:
        cells = [textwrap.wrap(str(c), w) or [""] for c, w in zip(row, widths)]
        for part in zip(*(c + [""] * (max(map(len, cells)) - len(c)) for c in cells)):
            lines.append("  ".join(p.ljust(w) for p, w in zip(part, widths)).rstrip())
    return "\n".join(lines)


def _fitted(table: list[list[str]], width: int, narrowest: int = 8) -> list[int]:
    """Column widths that add up to ``width`` at most (with two spaces between columns): one column at a
    time is narrowed by one, the one whose cells then need the fewest more lines (the widest on a tie);
    the first column, which names the rows, only when no other can be."""
    import textwrap
    from functools import cache

    widths = [max(len(c) for c in col) for col in zip(*table)]

    @cache
    def height(column: int, w: int) -> int:
        return sum(len(textwrap.wrap(row[column], w)) or 1 for row in table)

    while sum(widths) + 2 * (len(widths) - 1) > width:
        narrower = [i for i, w in enumerate(widths) if w > narrowest and i]  # the first column (names) last
        if not narrower:
            if widths[0] <= narrowest:
                break
            narrower = [0]
        best = min(narrower, key=lambda i: (height(i, widths[i] - 1) - height(i, widths[i]), -widths[i]))
        widths[best] -= 1
    return widths


def show_table(headers: list[str], rows: list[list[str]]) -> None:
    from IPython.display import display

    display({"text/plain": text_table(headers, rows), "text/html": html_table(headers, rows)}, raw=True)
