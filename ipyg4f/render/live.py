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
message per change).  Code is highlighted as it settles, without colouring
operators (:data:`~ipyg4f.render.html.LIVE_PLAIN`: a third of highlighted
code's bytes); the final render colours them.
"""

from __future__ import annotations

import re
from typing import Any

from .html import (LIVE_MARKDOWN_LIMIT, code_html, code_pieces, markdown_parser, render_inline, render_tokens,
                   text_to_html, with_cursor)

#: settled HTML is handed on in pieces of at least this many characters (fewer, larger outputs)
SEGMENT = 500
#: a code block still streaming settles in pieces of about this many characters of code (highlighted
#: code is 2-4 times its size in HTML, and the tail is resent on every update)
CODE_PIECE = 300
#: a paragraph (or one long line: JSON, CSV, minified code) still streaming settles in pieces once its
#: unsettled text is this long, cut at a sentence end, else a space, else anywhere safe
PARAGRAPH_PIECE = 600
#: a table still streaming settles its rows once this many have come after the last settled one
TABLE_ROWS = 4


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


_MARKABLE = re.compile(r'<(?:ol|ul|p|table)(?: class="([^"]*)")?(?=[ >])')
#: what a line may not start with when it begins the text after a paragraph's cut: a block of its own
#: (heading, quote, list, fence, table, rule, setext line, indented code) instead of the paragraph's rest
_STARTS_BLOCK = re.compile(r"[#>\-*+=_|`~<\s]|\d{1,9}[.)](?:\s|$)")
_SENTENCE_END = re.compile(r"[.!?:;][)\"'*_`]*\s+")
_THEAD = re.compile(r"<thead>.*?</thead>\s*", re.DOTALL)


def _mark(fragment: str, cls: str) -> str:
    """A rendered list, paragraph or table (its tag first) with our own class on it (added after
    sanitising)."""
    found = _MARKABLE.match(fragment) if cls else None
    if not found:
        return fragment
    tag = fragment[1:found.end()].split(" ", 1)[0]
    classes = f"{found.group(1)} {cls}" if found.group(1) else cls  # a table's own (its columns' alignment)
    return f'<{tag} class="{classes}"{fragment[found.end():]}'


def _balanced(text: str) -> bool:
    """No code span or emphasis left open in ``text`` (a cut there keeps the inline Markdown whole)."""
    return text.count("`") % 2 == 0 and text.count("**") % 2 == 0 and text.count("[") == text.count("]")


def paragraph_cut(para: str, window: int = PARAGRAPH_PIECE // 2) -> int:
    """Where to cut the growing paragraph ``para``: an index in its last ``window`` characters (never its
    very end) after which the rest still reads as the same paragraph when parsed alone; the best of a
    sentence end, a space, anything safe, preferring cuts that leave no inline Markdown open; 0 if none."""
    low = max(1, len(para) - window)
    ends = [m.end() for m in _SENTENCE_END.finditer(para, low) if m.end() < len(para)]
    spaces = [i + 1 for i in range(len(para) - 2, low - 2, -1) if para[i].isspace() and not para[i + 1].isspace()]
    anywhere = range(len(para) - 1, low - 1, -1)
    for candidates in (reversed(ends), spaces, anywhere):
        safe = [i for i in candidates if not _STARTS_BLOCK.match(para, i)]
        for i in safe:
            if _balanced(para[:i]):
                return i
        if safe and candidates is anywhere:
            return safe[0]
    return 0


class LiveMarkdown:
    """Renders a text that only grows: each call returns the HTML of blocks that settled since the last
    call and the HTML of the tail (the last block, re-rendered each time).

    A long block still streaming settles in parts too, shown so that they read as one: a code block in
    pieces (split after blank lines or every :data:`CODE_PIECE` characters) drawn as boxes that join; a
    list item by item (each part a list of its own, an ordered one starting at its number, no margin
    between them); a paragraph or one long line in pieces of about :data:`PARAGRAPH_PIECE` characters
    (rendered as inline Markdown, so a cut never turns its rest into a heading or a list); a table
    :data:`TABLE_ROWS` rows at a time (each part a table of its own with fixed column widths, the header
    only on the first)."""

    def __init__(self) -> None:
        self.offset = 0  #: where the unsettled text starts
        self.fence_sent = 0  #: characters of the last block's (open) code block already settled
        self.cont = False  #: the last block is a list, paragraph or table whose beginning has settled
        self.head = ""  #: the header and delimiter lines of a table whose first rows have settled

    def feed(self, text: str) -> tuple[str, str]:
        src = self.head + text[self.offset:]  # a table's rest parses as a table only under its header
        if len(src) - self.fence_sent > LIVE_MARKDOWN_LIMIT:  # one enormous block of another kind
            return "", text_to_html(src[len(self.head) + self.fence_sent:])
        lines = _blocks(markdown_parser().parse(src, {}))
        if not lines:
            return "", ""
        settled = [self._settled(tokens, first=i == 0) for i, (_, tokens) in enumerate(lines[:-1])]
        start, last = lines[-1]
        if settled:  # the unsettled text starts at the last block now
            self.fence_sent, self.cont, self.head = 0, False, ""
        at = _line_offset(src, start)
        fence = _fence(last)
        if fence is not None:
            self._advance(at)
            return "".join(settled) + self._code_pieces(fence), self._code_tail(fence)
        kind = last[0].type
        if kind in _LISTS:
            items = [t.map[0] for t in last if t.type == "list_item_open" and t.level == 1]
            if len(items) > 1:  # a list: the items before the last one have settled
                settled.append(self._part(src[at:_line_offset(src, items[-1])]))
                at = _line_offset(src, items[-1])
                self._advance(at)
                return "".join(settled), self._tail(src[at:])
        elif kind == "paragraph_open" and len(src) - at > PARAGRAPH_PIECE:
            cut = at + paragraph_cut(src[at:])
            if cut > at:
                settled.append(self._part(src[at:cut], inline=True))
                self._advance(cut)
                return "".join(settled), self._tail(src[cut:], inline=True)
        elif kind == "table_open":
            rows = [t.map[0] for t in last if t.type == "tr_open" and t.level == 2]
            if len(rows) > TABLE_ROWS + 1:  # the header row, then more rows than a part holds
                head = src[at:_line_offset(src, start + 2)]
                settled.append(self._part(src[at:_line_offset(src, rows[-1])]))
                at = _line_offset(src, rows[-1])
                self._advance(at)
                self.head = head
                return "".join(settled), self._tail(head + src[at:])
        self._advance(at)
        if not self.cont:  # the usual case: the last block as parsed, once
            return "".join(settled), render_tokens(last, {"live": True})
        return "".join(settled), self._tail(src[at:], inline=kind == "paragraph_open")

    def _advance(self, at: int) -> None:
        """The unsettled text now starts at ``at`` of this call's source (which begins with ``head``)."""
        self.offset += max(0, at - len(self.head))

    def _render(self, source: str, *, inline: bool) -> str:
        html = render_inline(source) if inline else render_tokens(markdown_parser().parse(source, {}), {"live": True})
        return _THEAD.sub("", html, count=1) if self.cont and html.startswith("<table") else html

    def _part(self, source: str, *, inline: bool = False) -> str:
        """A settled part of the last block; the block goes on after it."""
        html = _mark(self._render(source, inline=inline), "ipyg4f-more ipyg4f-cont" if self.cont else "ipyg4f-more")
        self.cont = True
        return html

    def _tail(self, source: str, *, inline: bool = False) -> str:
        return _mark(self._render(source, inline=inline and self.cont), "ipyg4f-cont" if self.cont else "")

    def _settled(self, tokens: list[Any], *, first: bool) -> str:
        """A block that has settled (the first one may be the end of a block already begun)."""
        fence = _fence(tokens)
        if first and self.fence_sent and fence is not None:
            return code_html(fence.content[self.fence_sent:], _language(fence), cont=True, light=True)
        if not (first and self.cont):
            return render_tokens(tokens, {"live": True})
        if tokens[0].type == "paragraph_open":
            return _mark(render_inline(tokens[1].content), "ipyg4f-cont")
        html = render_tokens(tokens, {"live": True})
        return _mark(_THEAD.sub("", html, count=1) if html.startswith("<table") else html, "ipyg4f-cont")

    def _code_pieces(self, fence: Any) -> str:
        """The pieces of the open code block ``fence`` that have settled since the last call."""
        pieces = code_pieces(fence.content[self.fence_sent:], CODE_PIECE)
        if len(pieces) < 2:
            return ""
        done = "".join(pieces[:-1])
        html = code_html(done, _language(fence), more=True, cont=self.fence_sent > 0, light=True)
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
