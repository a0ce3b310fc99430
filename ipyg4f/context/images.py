"""``--image``: what the user points at -> PNG/JPEG bytes, and the images this kernel displayed.

One job: turn a matplotlib Figure (or Axes), a PIL image, an
``IPython.display.Image``, PNG/JPEG bytes or a file path into one image
:class:`~ipyg4f.context.values.Attachment`; ``Out[n]`` is the image cell ``n``
returned or displayed, ``last`` the most recent image displayed.

Displayed images are remembered by :class:`~ipyg4f.context.displayed.DisplayCapture`.
"""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path
from typing import Any, Mapping

from .values import Attachment, ContextError, evaluate, split_exprs
from .displayed import DisplayCapture, sniff

#: largest image sent (bytes)
MAX_IMAGE_BYTES = 20_000_000

_OUT = re.compile(r"^\s*(?:Out\s*\[\s*(\d+)\s*\]|_(\d+))\s*$")


def image_bytes(value: Any) -> tuple[str, bytes] | None:
    """``(mime, bytes)`` of an image-like value, None when it is no image."""
    figure = sys.modules.get("matplotlib.figure")
    if figure is not None and isinstance(getattr(value, "figure", None), figure.Figure):
        value = value.figure  # an Axes (or an artist): its figure
    if figure is not None and isinstance(value, figure.Figure):
        buffer = io.BytesIO()
        value.savefig(buffer, format="png", bbox_inches="tight")
        return "image/png", buffer.getvalue()
    pil = sys.modules.get("PIL.Image")
    if pil is not None and isinstance(value, pil.Image):
        buffer = io.BytesIO()
        image = value if value.mode in ("RGB", "RGBA", "L", "LA", "P") else value.convert("RGBA")
        image.save(buffer, format="PNG")
        return "image/png", buffer.getvalue()
    display = sys.modules.get("IPython.core.display")
    if display is not None and isinstance(value, display.Image) and isinstance(value.data, bytes):
        value = value.data
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        mime = sniff(data)
        return (mime, data) if mime else None
    return None


def _from_path(name: str, value: Any) -> tuple[str, bytes] | None:
    if not isinstance(value, (str, Path)) or (isinstance(value, str) and ("\n" in value or len(value) > 4096)):
        return None
    path = Path(value).expanduser()
    try:
        if not path.is_file():
            return None
    except OSError:  # a name too long to be a path
        return None
    if path.stat().st_size > MAX_IMAGE_BYTES:
        raise ContextError(f"--image {name}: {path.name} is larger than {MAX_IMAGE_BYTES // 1_000_000} MB")
    data = path.read_bytes()
    mime = sniff(data)
    if mime is None:
        raise ContextError(f"--image {name}: {path.name} is not a PNG or JPEG file")
    return mime, data


def image_names(spec: str) -> list[str]:
    """``"fig, Out[3]"`` -> its expressions; a spec that is no expression (``my plot.png``) is one path."""
    try:
        return split_exprs(spec)
    except ContextError:
        return [spec.strip()]


def attach_image(expr: str, namespace: Mapping[str, Any], capture: DisplayCapture | None) -> Attachment:
    """The image named by ``expr``: ``last``, ``Out[n]``, or a value (Figure, PIL image, bytes, path)."""
    if expr.strip() == "last":
        found = capture.last if capture is not None else None
        if found is None:
            raise ContextError("--image last: this kernel has displayed no image yet")
        return _attachment("last image", *found)
    bare = expr.strip().strip("'\"")
    if bare not in namespace and (found := _from_path(expr, bare)) is not None:  # --image plot.png
        return _attachment(bare, *found)
    match = _OUT.match(expr)
    displayed = capture.of_cell(int(match.group(1) or match.group(2))) if match and capture is not None else None
    try:
        value = evaluate(expr, namespace)
    except ContextError:
        if displayed is None:  # Out[n] of a cell that returned nothing but displayed a plot
            raise
        return _attachment(expr, *displayed)
    try:
        found = image_bytes(value) or _from_path(expr, value) or displayed
    except ContextError:
        raise
    except Exception as exc:
        raise ContextError(f"--image {expr}: making the image raised {type(exc).__name__}: {exc}") from None
    if found is None:
        raise ContextError(f"--image {expr}: a {type(value).__name__} is not an image (a matplotlib Figure, "
                           "a PIL image, PNG/JPEG bytes, a file path, Out[n] of a plot, or last)")
    return _attachment(expr, *found)


def _attachment(name: str, mime: str, data: bytes) -> Attachment:
    if len(data) > MAX_IMAGE_BYTES:
        raise ContextError(f"--image {name}: larger than {MAX_IMAGE_BYTES // 1_000_000} MB")
    return Attachment(name, "image", data=data, mime=mime)
