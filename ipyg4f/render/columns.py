"""Several answers side by side in one cell (``%%chat --compare``): a grid of columns, each with its footer.

Columns stand side by side only inside one output, so the cell holds ONE display
while the answers stream, replaced at the throttle's pace (its size paces it:
:class:`~ipyg4f.render.stream.Throttle`).  Each column keeps its own
:class:`~ipyg4f.render.live.Segments`, so a settled block of a column is
rendered once and only its tail is parsed again: the kernel's work stays linear
in the answers' length.  At the end the display is replaced by the final grid
(every answer rendered whole, its note and footer, how to pick it), which the
saved notebook keeps.  The grid wraps: on a narrow screen the columns stack.
"""

from __future__ import annotations

import html
from typing import Any

from .html import STYLE, answer_bundle, extras_html, line_html, thinking_html
from .live import Segments
from .outcome import Outcome, footer, outcome
from .stream import COST, FREE, StreamRenderer, Throttle

#: the grid; JupyterLab's theme variables (light and dark), plain fallbacks elsewhere
COLUMNS_CSS = (
    "<style>.ipyg4f-columns{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,15em),1fr));"
    "gap:10px;align-items:start}"
    ".ipyg4f-column{min-width:0;border:1px solid var(--jp-border-color2,rgba(127,127,127,.35));border-radius:6px;"
    "padding:6px 10px;background:var(--jp-layout-color0,transparent);color:var(--jp-content-font-color1,inherit)}"
    ".ipyg4f-column-head{font-weight:600;font-size:0.9em;color:var(--jp-ui-font-color1,inherit);"
    "border-bottom:1px solid var(--jp-border-color2,rgba(127,127,127,.35));padding-bottom:4px;margin-bottom:6px;"
    "overflow-wrap:anywhere}"
    ".ipyg4f-column .ipyg4f-footer{border-top:1px solid var(--jp-border-color3,rgba(127,127,127,.2));"
    "padding-top:4px;margin-top:6px;overflow-wrap:anywhere}</style>"
)
#: the grid's layout inline too, for front ends that drop ``<style>`` (it is repeated, not relied on)
_GRID = ("display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,15em),1fr));gap:10px;"
         "align-items:start")


def head_html(number: int, label: str) -> str:
    return f'<div class="ipyg4f-column-head">{number}. {html.escape(label)}</div>'


def grid(columns: list[str], *, style: bool = True) -> str:
    """The columns side by side; ``style``: with the CSS (the final output; while streaming it is an output of
    its own, sent once)."""
    cells = "".join(f'<div class="ipyg4f-column" data-column="{i}">{c}</div>' for i, c in enumerate(columns, 1))
    return f'{STYLE + COLUMNS_CSS if style else ""}<div class="ipyg4f-columns" style="{_GRID}">{cells}</div>'


class _Column:
    """What one column shows while it streams: settled HTML (each piece rendered once) and a tail."""

    def __init__(self) -> None:
        self.segments = Segments()
        self.settled: list[str] = []
        self.tail = ""
        self.size = -1  #: the answer's size when last drawn

    def draw(self, answer: Any) -> None:
        if answer.size == self.size:
            return
        self.size = answer.size
        if answer.text:
            piece, self.tail = self.segments.feed(answer.text)
            if piece:
                self.settled.append(piece)
        else:
            self.tail = ""

    def html(self, answer: Any, label_: str, number: int) -> str:
        if answer.status != "streaming":
            state = line_html(_ended(answer), "warn" if answer.status != "ok" else "info")
        elif not answer.text:
            state = line_html("Thinking…" if answer.reasoning else "waiting…", "busy")
        else:
            state = ""
        body = f'<div class="ipyg4f-md ipyg4f-live">{"".join(self.settled)}{self.tail}</div>' if answer.text else ""
        return head_html(number, label_) + body + state


def _ended(answer: Any) -> str:
    if answer.status == "interrupted":
        return "■ stopped"
    if answer.status == "error":
        return "✖ failed"
    return "✔ done"


class ColumnsThrottle(Throttle):
    """The throttle of one answer, with each column's allowance: an update of up to ``FREE`` characters per
    column goes at the throttle's rate; a larger one waits until the answers grew by what it resends beyond
    that (at most ``MAX_GAP``), as one answer's does."""

    def __init__(self, rate: float, columns: int):
        super().__init__(rate)
        self.free = FREE * max(1, columns)

    def _paid(self, length: int | None) -> bool:
        return length is None or self.size <= self.free + COST * (length - self.at)


class ColumnsRenderer(StreamRenderer):
    """Streams :class:`~ipyg4f.compare.Columns` (several answers) into one display; ``finish`` leaves the final
    grid.  ``plain``: terminal IPython (no display ids): nothing while streaming, each answer at the end."""

    def __init__(self, labels: list[str], *, rate: float = 10.0, metadata: dict[str, Any] | None = None,
                 plain: bool = False, pick_hint: str = "", fmt: str = "markdown"):
        super().__init__(rate)
        self.throttle = ColumnsThrottle(rate, len(labels))
        self.fmt = fmt
        self.labels = labels
        self.columns = [_Column() for _ in labels]
        self.metadata = metadata or {}
        self.plain = plain
        self.pick_hint = pick_hint
        self.handle = None

    def start(self, answer: Any) -> None:
        super().start(answer)
        if self.plain:
            return
        from IPython.display import display

        waiting = "waiting for " + ", ".join(self.labels) + "…"
        display({"text/plain": "", "text/html": STYLE + COLUMNS_CSS}, raw=True)  # once, not with every update
        self.handle = display({"text/plain": waiting, "text/html": self._grid(answer)}, raw=True, display_id=True,
                              metadata={"ipyg4f": {**self.metadata, "status": "waiting"}})

    def _grid(self, columns: Any) -> str:
        return grid([c.html(a, label_, i) for i, (c, a, label_) in
                     enumerate(zip(self.columns, columns.answers, self.labels), 1)], style=False)

    def draw(self, answer: Any) -> int:
        if self.plain:
            return 0
        for column, one in zip(self.columns, answer.answers):
            column.draw(one)
        html_ = self._grid(answer)
        self.handle.update({"text/plain": "", "text/html": html_}, raw=True,
                           metadata={"ipyg4f": {**self.metadata, "status": "streaming"}})
        return len(html_)

    def finish(self, answer: Any, result: Outcome) -> None:
        """The final grid: each answer whole, with its note (a failure: why) and its footer."""
        self._dirty = False
        answers, cells, plain, markdown, meta = answer.answers, [], [], [], []
        for i, (one, label_) in enumerate(zip(answers, self.labels), 1):
            ended = outcome(one)
            summary = footer(one)
            bundle = answer_bundle(one.text, self.fmt)
            note = line_html(ended.note, ended.tone) if ended.note else ""
            answer_html = bundle["text/html"].removeprefix(STYLE)  # the grid carries the style, once
            cells.append(head_html(i, label_) + thinking_html(one.reasoning) + answer_html
                         + extras_html(one) + note + line_html(summary, "info", "ipyg4f-footer"))
            tail = f"\n[{ended.note}]" if ended.note else ""
            plain.append(f"── {i}. {label_} ──\n{one.text}{tail}\n{summary}")
            markdown.append(f"### {i}. {label_}\n\n{one.text}{tail}\n\n*{summary}*")
            meta.append({"provider": one.provider, "model": one.model_used or one.model, "status": one.status,
                         "outcome": ended.kind, "footer": summary})
        hint = self.pick_hint + (f"; {result.note}" if result.note else "")
        text = "\n\n".join(plain) + (f"\n\n{hint}" if hint else "")
        if self.plain:
            print(text)
            return
        from IPython.display import clear_output, display

        bundle = {"text/plain": text, "text/markdown": "\n\n".join(markdown) + (f"\n\n*{hint}*" if hint else ""),
                  "text/html": grid(cells) + (line_html(hint, result.tone if result.note else "info") if hint else "")}
        metadata = {"ipyg4f": {**self.metadata, "status": result.kind, "columns": meta}}
        if self.handle is not None:
            clear_output(wait=True)
        self.handle = display(bundle, raw=True, display_id=True, metadata=metadata)
        self.updates += 1


def pick_buttons(labels: list[str], pickable: list[bool], on_pick: Any) -> Any:
    """A "Pick N" button under each column (a grid of the columns' widths); ``on_pick(n)`` returns what to say
    (or raises).  The widget, to display; None without ipywidgets."""
    try:
        import ipywidgets as widgets
    except ImportError:  # the pick command still works
        return None
    said = widgets.HTML()
    buttons: list[Any] = []

    def clicked(number: int) -> None:
        try:
            message, tone = on_pick(number), "ok"
        except Exception as exc:  # a UsageError (nothing to pick...): said under the buttons
            message, tone = str(exc), "error"
        else:
            for n, button in enumerate(buttons, 1):
                button.description = f"✔ picked {n}" if n == number else f"Pick {n}"
                button.button_style = "success" if n == number else ""
        said.value = line_html(message, tone)

    for n, (label_, ok) in enumerate(zip(labels, pickable), 1):
        button = widgets.Button(description=f"Pick {n}", tooltip=f"continue the thread with {label_}",
                                disabled=not ok, layout=widgets.Layout(width="auto"))
        button.on_click(lambda _, n=n: clicked(n))
        buttons.append(button)
    row = widgets.GridBox(buttons, layout=widgets.Layout(
        grid_template_columns="repeat(auto-fit, minmax(min(100%, 15em), 1fr))", grid_gap="10px"))
    return widgets.VBox([row, said])


__all__ = ["ColumnsRenderer", "COLUMNS_CSS", "grid", "pick_buttons"]
