"""The images this kernel displayed: the last one, and each recent cell's (``--image last``, ``Out[n]``).

One job: :class:`DisplayCapture` wraps the shell's display publisher
(``shell.display_pub.publish``, through which ``display()`` and matplotlib's
inline backend send every figure) while the extension is loaded; unload removes
the wrapper.  It keeps the base64 text the kernel already made, for the last
few cells only.  Imported at load, so it imports nothing heavy.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from typing import Any

#: the image types that are sent, by their first bytes
SIGNATURES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}
#: cells whose displayed images are remembered
REMEMBERED_CELLS = 20


def sniff(data: bytes) -> str | None:
    """``image/png`` or ``image/jpeg`` from the first bytes, else None."""
    return next((mime for magic, mime in SIGNATURES.items() if data.startswith(magic)), None)


class DisplayCapture:
    """Remembers the images the shell displays (the last one, and each cell's last few)."""

    def __init__(self, shell: Any):
        self.shell = shell
        self.publisher = getattr(shell, "display_pub", None)
        self._cells: OrderedDict[int, tuple[str, str]] = OrderedDict()
        self._last: tuple[str, str] | None = None
        self._installed = False

    def install(self) -> None:
        """Wrap ``display_pub.publish`` of this shell (an instance attribute; :meth:`remove` undoes it)."""
        if self.publisher is None or self._installed or "publish" in vars(self.publisher):
            return
        original = self.publisher.publish

        def publish(data: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                self.seen(data)
            except Exception:  # remembering an image must never break a display
                pass
            return original(data, *args, **kwargs)

        publish.__wrapped__ = original  # type: ignore[attr-defined]
        self.publisher.publish = publish
        self._installed = True

    def remove(self) -> None:
        if self._installed and "publish" in vars(self.publisher):
            del self.publisher.publish
        self._installed = False

    def seen(self, data: Any) -> None:
        """Remember the image of one display's MIME bundle (base64 text, as the kernel sends it)."""
        if not isinstance(data, dict):
            return
        for mime in ("image/png", "image/jpeg"):
            encoded = data.get(mime)
            if isinstance(encoded, bytes):
                encoded = base64.b64encode(encoded).decode("ascii")
            if isinstance(encoded, str) and encoded:
                self._last = (mime, encoded)
                cell = int(getattr(self.shell, "execution_count", 1) or 1) - 1  # counted up before a cell runs
                self._cells[cell] = (mime, encoded)
                self._cells.move_to_end(cell)
                while len(self._cells) > REMEMBERED_CELLS:
                    self._cells.popitem(last=False)
                return

    @property
    def last(self) -> tuple[str, bytes] | None:
        return _decode(self._last)

    def of_cell(self, number: int) -> tuple[str, bytes] | None:
        return _decode(self._cells.get(number))


def _decode(found: tuple[str, str] | None) -> tuple[str, bytes] | None:
    if found is None:
        return None
    mime, encoded = found
    try:
        data = base64.b64decode(encoded)
    except ValueError:
        return None
    return (sniff(data) or mime), data
