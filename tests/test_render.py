"""Rendering units: sanitised Markdown, code extraction, the throttle."""

from __future__ import annotations

import re

from ipyg4f.render import Throttle, answer_bundle, code_block, markdown_to_html


def test_untrusted_markdown_cannot_carry_script():
    html = markdown_to_html('<script>alert(1)</script> <img src=x onerror=alert(2)> [a](javascript:alert(3)) **ok**')
    assert "<script" not in html and "<img" not in html and "href" not in html
    assert "<strong>ok</strong>" in html


def test_code_block_takes_the_first_fence_and_its_language():
    assert code_block("text\n```bash\nls -l\n```\nmore") == ("ls -l", "bash")
    assert code_block("```\nx = 1\n") == ("x = 1", "")
    assert code_block("no fence at all\n") == ("no fence at all", "")
    bundle = answer_bundle("see:\n```sql\nSELECT 1;\n```", "code")
    assert bundle["text/plain"] == "SELECT 1;" and bundle["text/markdown"].startswith("```sql\n")


def test_throttle_spaces_updates_by_rate_and_by_size():
    now = [0.0]
    throttle = Throttle(rate=20, budget=1000, clock=lambda: now[0])
    assert throttle.ready()
    throttle.mark(10)  # small: the rate decides (50 ms)
    now[0] = 0.049
    assert not throttle.ready()
    now[0] = 0.05
    assert throttle.ready()
    throttle.mark(500)  # large: the size budget decides (500 characters at 1000/s = 0.5 s)
    now[0] = 0.5
    assert not throttle.ready() and abs(throttle.wait_time() - 0.05) < 1e-9
    now[0] = 0.55
    assert throttle.ready()


def test_media_sources_and_login_links_are_rendered_safely():
    from ipyg4f.events import LoginRequired, Media, Sources
    from ipyg4f.render.html import extras_html
    from ipyg4f.runner import Answer

    answer = Answer("P")
    for event in (Media("image", "https://example.test/a.png", 'a "plot"'),
                  Media("image", "javascript:alert(1)"), Media("image", "data:image/png;base64,iVBOR"),
                  Media("audio", "data:text/html,<script>x</script>"),
                  Sources((("https://example.test/s", "<b>Source</b>"), ("javascript:alert(2)", "bad"))),
                  LoginRequired("https://example.test/login", "Example")):
        answer.feed(event)
    html = extras_html(answer)
    assert '<img src="https://example.test/a.png" alt="a &quot;plot&quot;"' in html
    assert 'src="data:image/png;base64,iVBOR"' in html
    assert "javascript:" not in html and "<script" not in html and "data:text/html" not in html
    assert '<a href="https://example.test/s">&lt;b&gt;Source&lt;/b&gt;</a>' in html
    assert '<a href="https://example.test/login">Example</a>' in html


def test_the_thought_is_a_collapsed_block():
    from ipyg4f.render import thinking_html

    assert thinking_html("step", open_=True).startswith('<details class="ipyg4f-thinking" open')
    done = thinking_html("step **one**", open_=False)
    assert done.startswith('<details class="ipyg4f-thinking" style') and "<strong>one</strong>" in done
    assert thinking_html("", open_=True) == ""
    assert "<script" not in thinking_html("<script>alert(1)</script>", open_=False)


# --- code highlighting, table alignment, and the sanitiser's narrow allowances ---------------------------------

def test_a_python_block_is_highlighted_in_a_box_with_the_style_once():
    from ipyg4f.render.html import STYLE

    html = markdown_to_html('Loop:\n\n```python\nfor i in range(3):\n    print("a<b")  # done\n```\n')
    assert html.startswith(STYLE) and html.count("<style>") == 1
    assert '<div class="ipyg4f-md">' in html and '<pre class="ipyg4f-code"><code>' in html
    for token in ('<span class=k>for </span>', '<span class=nb>range</span>', '<span class=m>3</span>',
                  '<span class=s>"a&lt;b"</span>', '<span class=c># done\n</span>'):
        assert token in html, token
    # the colours are JupyterLab's editor variables, so they follow its light or dark theme
    for variable in ("keyword", "string", "comment", "number", "builtin", "def", "operator"):
        assert f"var(--jp-mirror-editor-{variable}-color," in STYLE
    assert "var(--jp-cell-editor-background," in STYLE and "var(--jp-border-color2," in STYLE


def test_code_without_a_known_language_is_plain_escaped_text_in_the_same_box():
    for fence in ("```\n", "```nosuchlanguage\n", "    "):
        html = markdown_to_html(f"{fence}x = '<b>'\n" + ("```\n" if fence.startswith("```") else ""))
        assert "<pre class=\"ipyg4f-code\"><code>x = '&lt;b&gt;'\n</code></pre>" in html, html
        assert "<span" not in html


def test_code_pieces_split_after_blank_lines_and_only_the_last_piece_grows():
    from ipyg4f.render.html import code_pieces

    code = "import os\n\n\ndef f():\n    return 1\n" + "x = 1\n" * 400
    pieces = code_pieces(code, 300)
    assert "".join(pieces) == code and max(map(len, pieces)) <= 300
    assert pieces[0] == "import os\n\n" and all(p.endswith("\n") for p in pieces)
    assert pieces[:-1] == code_pieces(code + "y = 2\n", 300)[:len(pieces) - 1]  # growing changes only the last


def test_table_alignment_is_kept_and_unaligned_columns_are_left_aligned():
    from ipyg4f.render.html import ANSWER_CSS

    html = markdown_to_html("| name | n | mid | left |\n|---|--:|:-:|:--|\n| a | 1 | b | c |\n| d |\n",
                            style=False)
    # said once, by classes on the table (2nd column right, 3rd centred), not by a style on every cell
    assert '<table class="ipyg4f-r2 ipyg4f-c3"><thead><tr><th>name</th><th>n</th>' in html
    assert "<tr><td>a</td><td>1</td><td>b</td><td>c</td></tr><tr><td>d</td><td></td>" in html
    assert "style" not in html and "\n<t" not in html, "no style per cell, no newline between the tags"
    assert ".ipyg4f-md.ipyg4f-md td,.ipyg4f-md.ipyg4f-md th{text-align:left}" in ANSWER_CSS
    assert ".ipyg4f-md .ipyg4f-r2 td:nth-child(2),.ipyg4f-md .ipyg4f-r2 th:nth-child(2)," in ANSWER_CSS
    assert ".ipyg4f-md .ipyg4f-c3 td:nth-child(3)," in ANSWER_CSS
    # a column past the classes keeps its own style (a wide table still aligns)
    wide = markdown_to_html("|" + "a|" * 10 + "\n|" + "--:|" * 10 + "\n|" + "1|" * 10 + "\n", style=False)
    assert wide.count('<td style="text-align:right">1</td>') == 2 and "ipyg4f-r8" in wide


def test_the_sanitiser_allows_only_its_narrow_additions():
    from ipyg4f.render.html import sanitise

    attacks = [
        '<script class="k">alert(1)</script>',
        '<span class="k" onclick="alert(2)" onmouseover="alert(3)">x</span>',
        '<img src=x onerror="alert(4)">',
        '<a href="javascript:alert(5)" class="k">a</a>',
        '<table><tr><td style="background:url(javascript:alert(6))">c</td>'
        '<td style="text-align:right;background:url(javascript:alert(7))">c</td>'
        '<th style="text-align: right; position: fixed">h</th></tr></table>',
        '<span style="text-align:right">s</span>',
        '<div style="text-align:left" class="ipyg4f-md">d</div>',
        '<pre class="ipyg4f-code evil" style="color:red"><code class="language-js">c</code></pre>',
        '<span class="k evil">k</span>',
        '<style>body{display:none}</style>',
        '<svg><script>alert(8)</script></svg>',
        '<iframe src="javascript:alert(9)"></iframe>',
    ]
    cleaned = sanitise("".join(attacks))
    for bad in ("<script", "alert", "onclick", "onmouseover", "onerror", "javascript:", "url(", "position",
                "background", "<style", "display", "evil", "<svg", "<iframe", "language-js", "color:red"):
        assert bad not in cleaned, (bad, cleaned)
    assert '<span class="k">k</span>' in cleaned and '<pre class="ipyg4f-code"><code>c</code></pre>' in cleaned
    assert "<div>d</div>" in cleaned and "<span>s</span>" in cleaned
    assert "<td>c</td><td>c</td><th>h</th>" in cleaned
    assert sanitise('<table><tr><td style="text-align:right">1</td></tr></table>').count('style="text-align:right"') == 1
    # through Markdown (raw HTML off) nothing of it becomes a tag at all
    html = markdown_to_html("\n\n".join(attacks) + '\n\n```python" onclick="alert(10)\nx\n```\n[x](javascript:alert(11))')
    tags = re.findall(r"<[^>]*>", html.split("</style>", 1)[1])  # the payloads stay as (escaped) text
    assert {t.split()[0].strip("<>/") for t in tags} <= {"div", "p", "pre", "code", "a"}, tags
    assert not [t for t in tags if "on" in t.split("=")[0] or "javascript" in t or "style" in t], tags


def test_command_tables_are_left_aligned_with_a_header_rule():
    from ipyg4f.render.table import html_table as _html_table

    table = _html_table(["provider", "working"], [["<b>A</b>", "yes"]])
    assert table.count('<th style="text-align:left;') == 2 and table.count('<td style="text-align:left;') == 2
    assert "border-bottom:1px solid var(--jp-border-color1" in table and "margin-left:0" in table
    assert "&lt;b&gt;A&lt;/b&gt;" in table and "text-align:right" not in table


def test_the_streaming_cursor_follows_the_last_text_never_alone_on_a_line():
    from ipyg4f.render.html import CURSOR
    from ipyg4f.render.live import Segments

    for text, before in [("Hello **world**", "world"), ("- a\n- b", "b"), ("```python\nx = 1\n", "1"),
                         ("| a |\n|---|\n| 7 |", "7"), ("text\n\n```\ncode\n```", "code")]:
        _, html = Segments().feed(text)
        assert html.count(CURSOR) == 1
        ahead = html[: html.index(CURSOR)]
        assert ahead.rstrip().endswith(before) or ahead.endswith(f">{before}"), (text, html)
