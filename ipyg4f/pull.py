"""``%chat pull`` and ``-m hf:REPO`` on ``%%chat -p Local``: a Hub download with a progress bar.

The download itself is :func:`ipyg4f.providers.local.hub.pull`; this module
shows it (an ipywidgets bar in a kernel, one text line rewritten in place
elsewhere: size, speed, time left, at most :data:`RATE` updates a second) and
words its endings.  A failure is a :class:`~ipyg4f.errors.ChatFailed` (short
lines, no traceback); an interrupt keeps the partial file and says so.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .batch.progress import Line, duration, in_kernel
from .errors import ChatFailed
from .providers.local import hub
from .render.stream import Throttle

__all__ = ["RATE", "pull", "pull_if_needed", "describe_progress"]

#: most progress updates a second
RATE = 8.0


def _size(n: float | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1e6:,.1f} MB" if n < 1e9 else f"{n / 1e9:.2f} GB"


def describe_progress(p: hub.Progress, now: float | None = None) -> str:
    """``120.0 MB / 250.3 MB · 48.2 MB/s · 3 s left`` (speed and time left from this download's bytes)."""
    elapsed = (now if now is not None else time.monotonic()) - p.started
    fresh = p.done - p.resumed_from
    parts = [f"{_size(p.done)} / {_size(p.total)}"]
    if elapsed > 0 and fresh > 0:
        speed = fresh / elapsed
        parts.append(f"{_size(speed)}/s")
        if p.total:
            parts.append(f"{duration((p.total - p.done) / speed)} left")
    if p.resumed_from:
        parts.append(f"resumed at {_size(p.resumed_from)}")
    return " · ".join(parts)


class _Widget:
    def __init__(self, title: str):
        import ipywidgets as w
        from IPython.display import display

        self.bar = w.FloatProgress(value=0, min=0, max=1, bar_style="info", layout=w.Layout(width="40%"))
        self.label = w.HTML(value=f"pulling {title}…")
        display(w.HBox([self.bar, self.label]))

    def show(self, p: hub.Progress) -> None:
        self.bar.max = max(p.total or p.done or 1, 1)
        self.bar.value = p.done
        self.label.value = describe_progress(p)

    def close(self, ok: bool) -> None:
        self.bar.bar_style = "success" if ok else "warning"


class _Line(Line):
    def __init__(self, title: str, stream: Any = None):
        super().__init__(stream)
        self.title = title

    def show(self, p: hub.Progress) -> None:
        self.write(f"pulling {self.title}: {describe_progress(p)}")

    def close(self, ok: bool) -> None:
        self.clear()


class _Throttled:
    """Shows progress at most RATE times a second (and the last bytes always); keeps the latest."""

    def __init__(self, view: Any):
        self.view = view
        self.throttle = Throttle(RATE)
        self.latest: hub.Progress | None = None

    def __call__(self, p: hub.Progress) -> None:
        self.latest = p
        if self.throttle.ready() or (p.total is not None and p.done >= p.total):
            self.throttle.mark()
            self.view.show(p)


def pull(spec: str, file: str | None = None, *, widget: bool | None = None, stream: Any = None) -> hub.Pulled:
    """Pull ``spec`` (``[hf:]OWNER/NAME[/FILE]``, or the repository and ``file`` apart) with a progress bar."""
    try:
        ref = hub.parse_ref(f"{spec.rstrip('/')}/{file}" if file else spec)
    except ValueError as exc:
        raise ChatFailed([f"✖ %chat pull: {exc}"]) from None
    found = hub.local_path(ref) if _safe_local(ref) else None
    if found is not None:
        return hub.pull(ref)  # on disk: no network, no bar
    widget = in_kernel() if widget is None else widget
    view: Any = _Widget(ref.name) if widget else _Line(ref.name, stream)
    progress = _Throttled(view)
    try:
        result = hub.pull(ref, progress)
    except KeyboardInterrupt:
        view.close(False)
        kept = f" ({_size(progress.latest.done)} kept)" if progress.latest is not None else ""
        raise ChatFailed([f"■ pull of {ref.name} interrupted{kept}",
                          "  the partial file is kept: pull again to resume where it stopped"]) from None
    except hub.AmbiguousFileError as exc:
        view.close(False)
        raise ChatFailed([f"✖ {exc.message}:",
                          *(f"  {name}  ({_size(size)})" for name, size in exc.choices),
                          f"  try: {exc.hint}"]) from None
    except hub.HubError as exc:
        view.close(False)
        lines = [f"✖ {exc.message}"]
        if exc.hint:
            lines.append(f"  try: {exc.hint}")
        raise ChatFailed(lines) from None
    if progress.latest is not None:
        view.show(progress.latest)
    view.close(True)
    return result


def _safe_local(ref: hub.Ref) -> bool:
    try:
        return hub.local_path(ref) is not None
    except hub.HubError:  # several files of that repository on disk: let pull() list them
        return False


def summary(result: hub.Pulled, seconds: float | None = None) -> str:
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    quant = f", {result.quantization}" if result.quantization else ""
    return (f"✔ {result.name} ({_size(result.size)}{quant}){took}\n"
            f"  {result.path}\n"
            f"  chat with it: %%chat -p Local -m {result.name}   make it the default: "
            f"%chat use -p Local -m {result.name}")


def pull_if_needed(model: str) -> Path | None:
    """For ``%%chat -p Local -m hf:...``: pull the model first if it is not on disk (None: not a Hub model)."""
    if not model.startswith(hub.PREFIX):
        return None
    ref = hub.parse_ref(model)
    if _safe_local(ref):
        return hub.local_path(ref)
    start = time.monotonic()
    result = pull(model)
    print(summary(result, time.monotonic() - start))
    return result.path
