"""Streaming at linear cost: settled blocks are handed out once, the tail stays small, and what is shown
while streaming is the answer (the same text as the final render, at every step)."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from ipyg4f.render.html import markdown_to_html as _markdown_to_html
from ipyg4f.render.live import LiveMarkdown, Segments


def markdown_to_html(text: str) -> str:
    return _markdown_to_html(text, style=False)


def visible(fragment: str) -> str:
    """The text a reader sees in an HTML fragment (tags dropped, whitespace ignored)."""
    return re.sub(r"\s+", "", html.unescape(re.sub(r"<[^>]+>", "", fragment.replace("▌", ""))))


def code(lines: int, seed: int = 0) -> str:
    return "\n".join(f"    total_{i} = compute({i + seed}, 'x') * 2  # step {i}" for i in range(lines))


def document(blocks: int) -> str:
    parts = []
    for i in range(blocks):
        kind = i % 6
        if kind == 0:
            parts.append(f"## Part {i}")
        elif kind == 1:
            parts.append(" ".join(f"word{j} **bold{j}** `code{j}`" for j in range(40)))
        elif kind == 2:
            parts.append("\n".join(f"- item {j} with [a link](https://example.com/{j})" for j in range(6)))
        elif kind == 3:
            parts.append(f"```python\ndef f{i}():\n{code(25, i)}\n\n{code(10, i)}\n```")
        elif kind == 4:
            parts.append("| name | value |\n|:--|--:|\n" + "\n".join(f"| n{j} | {j} |" for j in range(5)))
        else:
            parts.append("> quoted <img src=x onerror=alert(1)> text\n> second line")
    return "\n\n".join(parts)


def stream(text: str, step: int, segments: Segments | None = None) -> tuple[list[str], list[str]]:
    """Feed ``text`` in ``step``-character updates; returns (pieces handed out, tails drawn)."""
    segments = segments or Segments()
    pieces, tails = [], []
    for end in list(range(step, len(text), step)) + [len(text)]:
        piece, tail = segments.feed(text[:end])
        if piece:
            pieces.append(piece)
        tails.append(tail)
    return pieces, tails


def test_what_streams_is_the_final_answer_at_every_step():
    text = document(14)
    segments = Segments()
    shown = ""
    for end in range(97, len(text), 97):
        piece, tail = segments.feed(text[:end])
        shown += piece
        assert visible(shown + tail) == visible(markdown_to_html(text[:end])), f"differs after {end} characters"
    piece, tail = segments.feed(text)
    assert visible(shown + piece + tail) == visible(markdown_to_html(text))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["# Head", "para *x* `y`", "- a\n- b", "1. one\n2. two", "```\ncode\n\nmore\n```",
                                 "```py\nx = 1\n", "> quote", "---", "| a | b |\n|---|---|\n| 1 | 2 |", "text\n===",
                                 "    indented code", "- item\n\n  continued", "<b>raw</b>"]), min_size=1, max_size=12),
       st.integers(min_value=1, max_value=40))
def test_any_document_in_any_chunks_shows_the_same_text(blocks, step):
    text = "\n\n".join(blocks)
    pieces, tails = stream(text, step)
    assert visible("".join(pieces) + tails[-1]) == visible(markdown_to_html(text))


def test_bytes_grow_with_the_answer_not_its_square():
    """30,000 and 100,000 characters streamed in 150-character updates (20 a second at 3,000 characters a
    second): what is handed out while streaming stays within 3x the final answer's HTML, and that ratio
    does not grow with the length (the old way, resending everything, was 25x at 30,000 and 80x at 100,000)."""
    ratios = []
    for blocks in (60, 200):
        text = document(blocks)
        pieces, tails = stream(text, 150)
        sent = sum(map(len, pieces)) + sum(map(len, tails))
        ratios.append(sent / len(markdown_to_html(text)))
        assert max(map(len, tails)) < 3000, "the tail stays small: the last block and a short pending piece"
    assert ratios[0] < 3 and ratios[1] < 3, ratios
    assert ratios[1] < ratios[0] * 1.15, f"the cost per character does not grow with the answer: {ratios}"


def test_a_long_code_block_settles_in_pieces_that_join_into_one_box():
    text = f"Here:\n\n```python\ndef f():\n{code(300)}\n```\n\nDone."
    pieces, tails = stream(text, 40)
    settled = "".join(pieces)
    assert settled.count('class="ipyg4f-code ipyg4f-more"') == 1, "the first piece: open below"
    assert settled.count("ipyg4f-more ipyg4f-cont") >= 10, "middle pieces: open above and below"
    assert "total_299" in settled + tails[-1]
    assert max(map(len, tails)) < 3000, "a 15,000-character code block never travels whole while streaming"
    assert visible(settled + tails[-1]) == visible(markdown_to_html(text))


def test_each_settled_block_is_handed_out_once():
    text = "\n\n".join(f"Paragraph number {i} " + "x" * 200 for i in range(50))
    pieces, tails = stream(text, 25)
    settled = "".join(pieces)
    for i in range(45):
        assert settled.count(f"Paragraph number {i} ") == 1


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def test_model_html_stays_inert_while_streaming():
    text = document(6) + "\n\n<script>window.__xss=1</script> [x](javascript:alert(1)) <a href=x onclick=y>z</a>"
    pieces, tails = stream(text, 11)
    for fragment in pieces + tails:
        parser = Elements()
        parser.feed(fragment)
        for tag, attrs in parser.found:
            assert tag not in ("script", "img", "iframe", "style"), fragment
            assert not any(name.startswith("on") for name in attrs), fragment
            assert not (attrs.get("href") or "").lower().startswith("javascript"), fragment
    assert "&lt;script&gt;" in tails[-1], "the payload is shown as text"


def test_live_markdown_starts_where_the_last_block_starts():
    live = LiveMarkdown()
    settled, tail = live.feed("# Title\n\nFirst paragraph.\n\nSecond")
    assert "<h1>Title</h1>" in settled and "First paragraph." in settled
    assert tail == "<p>Second</p>\n"
    settled, tail = live.feed("# Title\n\nFirst paragraph.\n\nSecond paragraph\n===")
    assert settled == "" and tail == "<h1>Second paragraph</h1>\n", "the last block may still change kind"


def test_a_long_list_settles_item_by_item_and_keeps_its_numbers():
    text = "Steps:\n\n" + "\n".join(f"{i}. step number {i}: " + "do this carefully " * 8 for i in range(1, 61))
    pieces, tails = stream(text, 30)
    settled = "".join(pieces)
    assert max(map(len, tails)) < 1500, "a 9,000-character list never travels whole while streaming"
    assert re.search(r'<ol class="ipyg4f-more ipyg4f-cont" start="\d+">', settled), "later parts keep counting"
    assert visible(settled + tails[-1]) == visible(markdown_to_html(text))
    live = LiveMarkdown()
    for end in range(50, len(text), 50):
        live.feed(text[:end])
    _, tail = live.feed(text)
    assert tail.startswith('<ol class="ipyg4f-cont" start="60">\n<li>step number 60'), tail[:80]


def _shapes() -> dict[str, str]:
    sentence = "The quick brown fox jumps over the lazy dog, and **then** it runs `away` again. "
    return {
        "one long paragraph": sentence * 250,
        "one long line of JSON": "{" + ",".join(f'"key_{i}":[{i},"v{i}",{{"n":{i}}}]' for i in range(1500)) + "}",
        "a long table": "| name | value | note |\n|:--|--:|---|\n" + "\n".join(f"| n{i} | {i} | row {i} |"
                                                                           for i in range(500)),
        "a paragraph of many lines": "\n".join(f"line {i}, a csv,{i},{i * 2},{i * 3}" for i in range(1200)),
    }


def test_every_shape_of_answer_streams_in_bounded_pieces():
    """A long paragraph, one long line, a long table: the tail never carries the whole block, what is handed
    out grows with the answer (not its square), and the text shown is the final answer's text.  150-character
    updates, as in the test above."""
    for name, text in _shapes().items():
        pieces, tails = stream(text, 150)
        settled = "".join(pieces)
        assert max(map(len, tails)) < 4000, f"{name}: the whole block travels in the tail"
        sent = len(settled) + sum(map(len, tails))
        assert sent < 10 * len(markdown_to_html(text)), f"{name}: {sent} bytes for {len(text)} characters"
        assert visible(settled + tails[-1]) == visible(markdown_to_html(text)), name


def test_a_cut_paragraph_never_turns_into_another_block():
    """Cuts land where the rest still reads as the same paragraph: never before '# ', '- ', '1. ', '> '."""
    tricky = "See issue # 12 - done. Then 1999. Was a year > 1998 and * is a star + plus = sign | pipe " * 40
    pieces, tails = stream(tricky, 17)
    shown = "".join(pieces) + tails[-1]
    for tag in ("<h1", "<li", "<blockquote", "<ol", "<ul", "<hr", "<table"):
        assert tag not in shown, tag
    assert shown.count('<p class="ipyg4f-more') >= 3, "it did settle in pieces"
    assert visible(shown) == visible(markdown_to_html(tricky))


def test_code_streams_highlighted_but_its_operators_are_coloured_only_at_the_end():
    text = "Some code:\n\n```python\n" + "".join(f"if x_{i} == {i}:\n    y = 'done'  # ok\n" for i in range(60))
    pieces, tails = stream(text + "```\n\nAfter.", 40)
    shown = "".join(pieces) + tails[-1]
    assert shown.count('<pre class="ipyg4f-code') >= 3, "the long block settled in pieces"
    for token in ("<span class=k>if </span>", "<span class=m>7</span>", "<span class=s>'done'",
                  "<span class=c># ok"):
        assert token in shown, token
    assert "<span class=o>" not in shown, "operators are plain while streaming (a third of the bytes)"
    assert "<span class=o>== </span>" in markdown_to_html(text), "and coloured in the final answer"
    assert visible(shown) == visible(markdown_to_html(text + "```\n\nAfter."))


def test_a_long_table_settles_rows_with_one_header():
    text = _shapes()["a long table"]
    pieces, tails = stream(text, 30)
    shown = "".join(pieces) + tails[-1]
    assert shown.count("<thead>") == 1 and len(re.findall(r"<th[ >]", shown)) == 3, "the header is shown once"
    assert shown.count('<table class="ipyg4f-r2 ipyg4f-more') >= 10, "each part keeps the column alignment"
    assert '<table class="ipyg4f-r2 ipyg4f-cont' in tails[-1], "the tail too"
    assert "style=" not in shown, "said once per part, not on every cell"
    assert visible(shown) == visible(markdown_to_html(text))


def test_one_long_line_costs_the_same_per_character_at_any_length():
    ratios = []
    for n in (500, 2000):
        text = "{" + ",".join(f'"key_{i}":[{i},"v{i}"]' for i in range(n)) + "}"
        pieces, tails = stream(text, 150)
        ratios.append((sum(map(len, pieces)) + sum(map(len, tails))) / len(text))
    assert ratios[1] < ratios[0] * 1.15, f"the cost per character grows with the line: {ratios}"
