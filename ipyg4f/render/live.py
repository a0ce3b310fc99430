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
#: code is 3-5 times its size in HTML, and the tail is resent on every update)
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


class LiveMarkdown:
    """Renders a text that only grows: each call returns the HTML of blocks that settled since the last
    call and the HTML of the tail (the last block, re-rendered each time).

    A long code block still streaming settles piece by piece too (its pieces split after blank lines
    or every :data:`CODE_PIECE` characters), shown as boxes that join into one."""

    def __init__(self) -> None:
        self.offset = 0  #: where the unsettled text starts
        self.fence_sent = 0  #: characters of the last block's (open) code block already settled

    def feed(self, text: str) -> tuple[str, str]:
        rest = text[self.offset:]
        if len(rest) - self.fence_sent > LIVE_MARKDOWN_LIMIT:  # one enormous block (a paragraph with no break)
            return "", text_to_html(rest[self.fence_sent:])
        md = markdown_parser()
        env: dict[str, Any] = {"live": True}
        lines = _blocks(md.parse(rest, env))
        blocks = [tokens for _, tokens in lines]
        if not blocks:
            return "", ""
        settled = []
        if self.fence_sent and (fence := _fence(blocks[0])) is not None and len(blocks) > 1:
            # the code block being settled piece by piece has ended: its remainder closes the box
            settled.append(code_html(fence.content[self.fence_sent:], _language(fence), cont=True))
            blocks, lines = blocks[1:], lines[1:]
            self.fence_sent = 0
        if len(blocks) > 1:
            settled.append(render_tokens([t for tokens in blocks[:-1] for t in tokens], {"live": False}))
        if settled:  # the unsettled text starts at the last block now
            self.offset += _line_offset(rest, lines[-1][0])
        fence = _fence(blocks[-1])
        if fence is None:
            return "".join(settled), render_tokens(blocks[-1], env)
        language, code = _language(fence), fence.content[self.fence_sent:]
        pieces = code_pieces(code, CODE_PIECE)
        if len(pieces) > 1:
            done = "".join(pieces[:-1])
            settled.append(code_html(done, language, more=True, cont=self.fence_sent > 0))
            self.fence_sent += len(done)
            code = pieces[-1]
        # the growing piece is plain text (resent on each update, it stays small); it is highlighted once it
        # settles, a few lines behind the cursor
        return "".join(settled), code_html(code, "", cont=self.fence_sent > 0)


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
