"""Server-sent events, decoded on bytes one complete line at a time.

The decoder never decodes UTF-8 before a line is complete, so a multi-byte
character split across network chunks survives, and a CR LF pair split across
chunks counts as one line break.  Only CR, LF and CR LF end a line (not
U+2028 or other Unicode breaks, which ``str.splitlines`` would split on).
Pure Python, no I/O: the HTTP layer feeds it bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import AsyncIterable, AsyncIterator, Iterable, Iterator


@dataclass(frozen=True)
class ServerSentEvent:
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

    def flush(self) -> list[bytes]:
        """The last line, when the stream ended without a line break."""
        if self._buf:
            line = bytes(self._buf)
            self._buf.clear()
            return [line]
        return []


class SSEDecoder:
    """Assemble decoded lines into events (the WHATWG event-stream rules)."""

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._retry: int | None = None

    def decode(self, line: str) -> ServerSentEvent | None:
        if not line:
            # the last event id persists across events (WHATWG), so it alone dispatches nothing
            if not self._data and self._event is None and self._retry is None:
                return None
            sse = ServerSentEvent("\n".join(self._data), self._event, self._id, self._retry)
            self._data, self._event, self._retry = [], None, None
            return sse
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._id = value
        elif field == "retry":
            try:
                self._retry = int(value)
            except ValueError:
                pass
        return None


class EventStreamDecoder:
    """Bytes in, events out: :class:`LineDecoder` then :class:`SSEDecoder`."""

    def __init__(self) -> None:
        self._lines, self._events = LineDecoder(), SSEDecoder()

    def _decode(self, raw_lines: list[bytes]) -> list[ServerSentEvent]:
        out = []
        for raw in raw_lines:
            if (sse := self._events.decode(raw.decode("utf-8", errors="replace"))) is not None:
                out.append(sse)
        return out

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        return self._decode(self._lines.feed(chunk))

    def close(self) -> list[ServerSentEvent]:
        """Flush an unterminated last line and a pending event."""
        return self._decode([*self._lines.flush(), b""])


def iter_sse(chunks: Iterable[bytes]) -> Iterator[ServerSentEvent]:
    """Synchronous decoding, for tests and benchmarks."""
    decoder = EventStreamDecoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)
    yield from decoder.close()


async def aiter_sse(chunks: AsyncIterable[bytes]) -> AsyncIterator[ServerSentEvent]:
    """Decode an async stream of byte chunks into events."""
    decoder = EventStreamDecoder()
    async for chunk in chunks:
        for sse in decoder.feed(chunk):
            yield sse
    for sse in decoder.close():
        yield sse
