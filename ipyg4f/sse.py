"""Server-sent events, decoded on bytes one complete line at a time.

The decoder never decodes UTF-8 before a line is complete, so a multi-byte
character split across network chunks survives, and a CR LF pair split across
chunks counts as one line break.  Pure Python, no I/O: the HTTP layer feeds it
bytes.

It follows the WHATWG rules for interpreting an event stream
(https://html.spec.whatwg.org/multipage/server-sent-events.html) as a client
meets them:

* one UTF-8 byte-order mark at the very start of the stream is skipped, also
  when it arrives split across chunks; anywhere else U+FEFF is a character;
* CR, LF and CR LF end a line; U+2028 and the other Unicode breaks that
  ``str.splitlines`` knows do not;
* a line starting with ``:`` is a comment; a line without a colon is a field
  name with an empty value; one space after the colon is dropped, only one;
* ``data`` lines are joined with ``"\\n"``; a blank line dispatches the event,
  unless no ``data`` line came since the last one: a block of only ``event``,
  ``id``, ``retry`` or comments dispatches nothing;
* an empty ``event`` means the default type (``None``); ``id`` is ignored when
  it holds NUL; ``retry`` is ignored unless it is ASCII digits only;
* ``id`` and ``retry`` are stream state: they persist across events, so an
  event carries the last event id and the reconnection time as of its
  dispatch (a ``retry`` sent in a block of its own is not lost).

The end of the stream: an event that has not seen its closing blank line is
discarded, as the spec says, not dispatched.  OpenAI-compatible servers end
every event, ``data: [DONE]`` included, with a blank line (and the openai
Python client drops an unterminated tail too), so such a tail only comes from
a stream cut in the middle of an event, and half an event is not trusted.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from typing import AsyncIterable, AsyncIterator, Iterable, Iterator


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event; ``id`` and ``retry`` are the stream's last event id and
    reconnection time (ms) as of this event, ``None`` while the server has set none."""

    data: str = ""
    event: str | None = None
    id: str | None = None
    retry: int | None = None

    def json(self):
        return json.loads(self.data)


class LineDecoder:
    """Split a byte stream into lines (bytes, without the line break)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pending_cr = False

    def feed(self, chunk: bytes) -> list[bytes]:
        lines: list[bytes] = []
        if not chunk:
            return lines
        if self._pending_cr:
            self._pending_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\r" not in chunk:  # the common case: LF only, split in C
            lines = chunk.split(b"\n")
            if self._buf:
                self._buf += lines[0]
                lines[0] = bytes(self._buf)
                self._buf.clear()
            self._buf += lines.pop()
            return lines
        start = 0
        n = len(chunk)
        while start < n:
            cr = chunk.find(b"\r", start)
            lf = chunk.find(b"\n", start)
            if cr == -1 and lf == -1:
                break
            if cr == -1 or (lf != -1 and lf < cr):
                end, nxt = lf, lf + 1
            else:
                end = cr
                if cr + 1 < n:
                    nxt = cr + 2 if chunk[cr + 1:cr + 2] == b"\n" else cr + 1
                else:
                    nxt = cr + 1
                    self._pending_cr = True
            self._buf += chunk[start:end]
            lines.append(bytes(self._buf))
            self._buf.clear()
            start = nxt
        self._buf += chunk[start:]
        return lines


class SSEDecoder:
    """Assemble decoded lines into events (the WHATWG event-stream rules)."""

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None  # the last event id: stream state, kept across events
        self._retry: int | None = None  # the reconnection time: stream state too

    def decode(self, line: str) -> ServerSentEvent | None:
        if not line:
            if not self._data:  # no data field since the last blank line: nothing to dispatch
                self._event = None
                return None
            sse = ServerSentEvent("\n".join(self._data), self._event, self._id, self._retry)
            self._data, self._event = [], None
            return sse
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value or None
        elif field == "id":
            if "\0" not in value:
                self._id = value
        elif field == "retry":
            if value.isascii() and value.isdigit():  # int() would also take " 5", "+5", "1_0", "٥"
                self._retry = int(value)
        return None


class EventStreamDecoder:
    """Bytes in, events out: a leading byte-order mark skipped, then :class:`LineDecoder`
    and :class:`SSEDecoder`.  There is no flush: at the end of the stream an event
    without its blank line is discarded (see the module docstring)."""

    def __init__(self) -> None:
        self._lines, self._events = LineDecoder(), SSEDecoder()
        self._head: bytes | None = b""  # the stream's first bytes while they may be a BOM; None after

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if self._head is not None:
            chunk = self._skip_bom(chunk)
        out = []
        for raw in self._lines.feed(chunk):
            if (sse := self._events.decode(raw.decode("utf-8", errors="replace"))) is not None:
                out.append(sse)
        return out

    def _skip_bom(self, chunk: bytes) -> bytes:
        """The start of the stream without its byte-order mark; b"" while it may still be one."""
        head = self._head + chunk
        if len(head) < len(codecs.BOM_UTF8) and codecs.BOM_UTF8.startswith(head):
            self._head = head
            return b""
        self._head = None
        return head.removeprefix(codecs.BOM_UTF8)


def iter_sse(chunks: Iterable[bytes]) -> Iterator[ServerSentEvent]:
    """Synchronous decoding, for tests and benchmarks."""
    decoder = EventStreamDecoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)


async def aiter_sse(chunks: AsyncIterable[bytes]) -> AsyncIterator[ServerSentEvent]:
    """Decode an async stream of byte chunks into events."""
    decoder = EventStreamDecoder()
    async for chunk in chunks:
        for sse in decoder.feed(chunk):
            yield sse
