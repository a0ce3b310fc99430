"""A growing Markdown answer as settled blocks plus one live tail: what makes streaming cost linear.

Re-rendering and resending the whole answer on every update costs the answer's
length squared (a 100,000-character answer sent 25 MB to the browser).  Here a
top-level block (paragraph, list, code block, table, heading…) *settles* once
another block follows it: later text cannot change it (bar a reference-style
link definition further down, which the final render, done whole, gets right).
A settled block is rendered and sanitised once and handed out once; only the
last block is re-parsed and re-rendered on each update.

:class:`LiveMarkdown` turns the text so far into ``(newly settled HTML, tail
HTML)``; :class:`Segments` groups settled HTML into pieces of about
:data:`SEGMENT` characters, so a front end adds one piece now and then and
replaces only a small tail (the cell: one display per piece; the panel: one
message per change).
"""

from __future__ import annotations

from typing import Any

from .html import (LIVE_MARKDOWN_LIMIT, code_html, code_pieces, markdown_parser, render_tokens, text_to_html,
                   with_cursor)

#: settled HTML is handed on in pieces of at least this many characters (fewer, larger outputs)
SEGMENT = 500
#: a code block still streaming settles in pieces of about this many characters of code (highlighted
#: code is 2-4 times its size in HTML, and the tail is resent on every update)
CODE_PIECE = 300


def _blocks(tokens: list[Any]) -> list[tuple[int, list[Any]]]:
    """Top-level blocks: (first source line, tokens) each."""
    blocks: list[tuple[int, list[Any]]] = []
    current: list[Any] = []
    for token in tokens:
        if token.level == 0 and token.nesting >= 0 and not current:
            blocks.append((token.map[0] if token.map else 0, current))
        current.append(token)
        if token.level == 0 and token.nesting <= 0:
            current = []
    return blocks


def _line_offset(text: str, line: int) -> int:
    """Index in ``text`` where its line number ``line`` (0-based) starts."""
    at = 0
    for _ in range(line):
        at = text.find("\n", at) + 1
        if at == 0:
            return len(text)
    return at


def _fence(block: list[Any]) -> Any:
    """The block's token when it is a top-level fenced code block, else None."""
    return block[0] if len(block) == 1 and block[0].type == "fence" else None


def _language(token: Any) -> str:
    info = token.info.split(maxsplit=1)
    return info[0] if info else ""


_LISTS = ("bullet_list_open", "ordered_list_open")


def _mark(fragment: str, cls: str) -> str:
    """A rendered list (``<ol``/``<ul`` first) with our own class on it (added after sanitising)."""
    return f'{fragment[:3]} class="{cls}"{fragment[3:]}' if cls and fragment[:3] in ("<ol", "<ul") else fragment


class LiveMarkdown:
    """Renders a text that only grows: each call returns the HTML of blocks that settled since the last
    call and the HTML of the tail (the last block, re-rendered each time).

    A long block still streaming settles in parts too, shown so that they read as one: a code block in
    pieces (split after blank lines or every :data:`CODE_PIECE` characters) drawn as boxes that join; a
    list item by item (each part a list of its own, an ordered one starting at its number, no margin
    between them)."""

    def __init__(self) -> None:
        self.offset = 0  #: where the unsettled text starts
        self.fence_sent = 0  #: characters of the last block's (open) code block already settled
        self.list_cont = False  #: the last block is a list whose first items have settled

    def feed(self, text: str) -> tuple[str, str]:
        rest = text[self.offset:]
        if len(rest) - self.fence_sent > LIVE_MARKDOWN_LIMIT:  # one enormous block (a paragraph with no break)
            return "", text_to_html(rest[self.fence_sent:])
        lines = _blocks(markdown_parser().parse(rest, {}))
        if not lines:
            return "", ""
        settled = [self._settled(tokens, first=i == 0) for i, (_, tokens) in enumerate(lines[:-1])]
        start, last = lines[-1]
        if settled:  # the unsettled text starts at the last block now
            self.fence_sent, self.list_cont = 0, False
        fence = _fence(last)
        if fence is not None:
            self.offset += _line_offset(rest, start)
            return "".join(settled) + self._code_pieces(fence), self._code_tail(fence)
        items = [t.map[0] for t in last if t.type == "list_item_open" and t.level == 1] if last[0].type in _LISTS else []
        if len(items) > 1:  # a list: the items before the last one have settled
            done = rest[_line_offset(rest, start):_line_offset(rest, items[-1])]
            settled.append(_mark(render_tokens(markdown_parser().parse(done, {}), {}),
                                 "ipyg4f-more ipyg4f-cont" if self.list_cont else "ipyg4f-more"))
            self.list_cont, start = True, items[-1]
            last = markdown_parser().parse(rest[_line_offset(rest, start):], {})
        self.offset += _line_offset(rest, start)
        return "".join(settled), _mark(render_tokens(last, {}), "ipyg4f-cont" if self.list_cont else "")

    def _settled(self, tokens: list[Any], *, first: bool) -> str:
        """A block that has settled (the first one may be the end of a code block or list already begun)."""
        fence = _fence(tokens)
        if first and self.fence_sent and fence is not None:
            return code_html(fence.content[self.fence_sent:], _language(fence), cont=True)
        html = render_tokens(tokens, {})
        return _mark(html, "ipyg4f-cont") if first and self.list_cont else html

    def _code_pieces(self, fence: Any) -> str:
        """The pieces of the open code block ``fence`` that have settled since the last call."""
        pieces = code_pieces(fence.content[self.fence_sent:], CODE_PIECE)
        if len(pieces) < 2:
            return ""
        done = "".join(pieces[:-1])
        html = code_html(done, _language(fence), more=True, cont=self.fence_sent > 0)
        self.fence_sent += len(done)
        return html

    def _code_tail(self, fence: Any) -> str:
        """The growing piece: plain text (resent on each update, it stays small), highlighted once it
        settles, a few lines behind the cursor."""
        return code_html(fence.content[self.fence_sent:], "", cont=self.fence_sent > 0)


class Segments:
    """Settled HTML grouped into pieces, and the live tail (pending settled HTML + the cursor on the tail).

    ``feed(text)`` returns ``(piece, tail)``: ``piece`` is settled HTML to show once, for good, *before*
    the tail (empty most of the time); ``tail`` replaces the previous tail."""

    def __init__(self, segment: int = SEGMENT) -> None:
        self.md = LiveMarkdown()
        self.segment = segment
        self.pending = ""

    def feed(self, text: str) -> tuple[str, str]:
        settled, tail = self.md.feed(text)
        self.pending += settled
        piece = ""
        if len(self.pending) >= self.segment:
            piece, self.pending = self.pending, ""
        return piece, with_cursor(self.pending + tail)
