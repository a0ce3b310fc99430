"""Answers as safe HTML: sanitised Markdown, highlighted code, the streaming cursor, the thinking block, media, colours.

Model output is untrusted.  Markdown is rendered with markdown-it-py with raw
HTML disabled (so ``<img onerror=...>`` in an answer shows as text), and the
result goes through nh3 (the Rust ammonia sanitiser) as a second guard, since
JupyterLab does not sanitise HTML of trusted (live) outputs.  Everything an
answer carries besides text (links, images, thinking) is sanitised the same way.

Code blocks are highlighted server-side by Pygments into ``<span class="k">``
tokens.  Their colours come from one constant ``<style>`` block scoped to
``.ipyg4f-md`` (:data:`STYLE`, added outside the sanitised fragment, once per
output) that maps the token classes to JupyterLab's own editor variables
(``--jp-mirror-editor-*``), so an answer follows the light or dark theme as a
code cell does.  The sanitiser lets through, beyond nh3's defaults, only those
token classes on ``span``, the box's class on ``pre`` and exactly
``style="text-align:left|center|right"`` on ``th``/``td``.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from typing import Any

#: above this many characters, streaming updates show escaped text instead of
#: re-rendering Markdown on every update (keeps each update cheap)
LIVE_MARKDOWN_LIMIT = 8000
CURSOR = '<span class="ipyg4f-cursor">▌</span>'

#: the one palette of both front ends: JupyterLab's theme variables, with light-theme fallbacks
COLOURS = {"info": "var(--jp-ui-font-color2, #666)", "busy": "var(--jp-brand-color1, #1976d2)",
           "ok": "var(--jp-success-color1, #388e3c)", "warn": "var(--jp-warn-color1, #b36b00)",
           "error": "var(--jp-error-color1, #c00)"}

#: the classes an answer's code tokens get: each a group of Pygments token classes (named after its first),
#: coloured as JupyterLab colours code cells (``--jp-mirror-editor-<name>-color``; fallback outside JupyterLab:
#: JupyterLab Light's value).  Tokens of no group (names, punctuation, brackets, whitespace) are left as plain
#: text: fewer bytes (a span per bracket was a quarter of a code-heavy answer's HTML).
_TOKEN_GROUPS = {  # class: (Pygments classes, editor colour name, fallback, extra CSS)
    "k": ("k kd kn kp kr kt ow kc", "keyword", "#008000", ";font-weight:bold"),
    "nf": ("nf fm nc", "def", "#00f", ""),
    "nb": ("nb ne", "builtin", "#008000", ""),
    "nv": ("nv bp vc vg vi vm", "variable-2", "#00366d", ""),
    "na": ("na", "attribute", "#00c", ""),
    "nd": ("nd cp cpf", "meta", "#a2f", ""),
    "nt": ("nt", "tag", "#170", ""),
    "s": ("s s1 s2 sa sb sc dl sd sh sx sr ss l ld", "string", "#ba2121", ""),
    "se": ("se si", "string-2", "#708", ""),
    "m": ("m mb mf mh mi mo il", "number", "#080", ""),
    "c": ("c c1 ch cm cs", "comment", "#408080", ";font-style:italic"),
    "o": ("o", "operator", "#7800c2", ";font-weight:bold"),
    "gh": ("gh gu", "header", "blue", ";font-weight:bold"),
    "gd": ("gd gr gt", "error", "red", ""),
    "gi": ("gi", "quote", "#090", ""),
    "go": ("go gp", "qualifier", "#555", ""),
}
_GROUP_OF = {cls: group for group, (classes, *_) in _TOKEN_GROUPS.items() for cls in classes.split()}
#: groups left plain while an answer streams (``light``): an operator is one or two characters in a 22-character
#: span, a third of highlighted code's bytes; the final answer colours them
LIVE_PLAIN = frozenset({"o"})
_BOX = "div.ipyg4f-md pre.ipyg4f-code"  # (0,2,2): outranks Lab's `.jp-ThemedContainer .jp-RenderedHTMLCommon pre`
_CELLS = ".ipyg4f-md.ipyg4f-md td,.ipyg4f-md.ipyg4f-md th"  # (0,2,1): Lab's right-aligning rule's weight, later

#: a table's first columns are aligned by a class on the table (``ipyg4f-r2``: its 2nd column right-aligned;
#: ``c``: centred), not by a style on each of their cells (that style was half of a long table's HTML)
ALIGNED_COLUMNS = 8

#: the answers' own CSS, scoped to ``.ipyg4f-md``: the code box and its token colours; table cells
#: left-aligned (a ``|--:|`` column keeps its inline ``text-align``, which outranks this)
ANSWER_CSS = (
    f"{_BOX}{{background:var(--jp-cell-editor-background,rgba(127,127,127,.08));"
    "border:1px solid var(--jp-border-color2,rgba(127,127,127,.3));border-radius:4px;padding:6px 10px;"
    "margin:0 0 1em;overflow-x:auto;color:var(--jp-content-font-color1,inherit);"
    "font-family:var(--jp-code-font-family,monospace);font-size:var(--jp-code-font-size,13px);"
    "line-height:var(--jp-code-line-height,1.4);white-space:pre-wrap}"
    f"{_BOX}>code{{background:transparent;border:0;padding:0;color:inherit;font-size:inherit}}"
    + "".join(f".ipyg4f-code .{group}{{color:var(--jp-mirror-editor-{name}-color,{fallback}){extra}}}"
              for group, (_, name, fallback, extra) in _TOKEN_GROUPS.items())
    + f"{_CELLS}{{text-align:left}}"
    # a long code block while it streams: pieces that join into one box; live pieces of an answer, no gaps
    + f"{_BOX}.ipyg4f-more{{border-bottom:0;border-bottom-left-radius:0;border-bottom-right-radius:0;"
    "margin-bottom:0;padding-bottom:0}"
    + f"{_BOX}.ipyg4f-cont{{border-top:0;border-top-left-radius:0;border-top-right-radius:0;margin-top:0;"
    "padding-top:0}"
    + "div.ipyg4f-md.ipyg4f-live{margin-top:0;margin-bottom:0}"
    + "div.ipyg4f-md .ipyg4f-more{margin-bottom:0}div.ipyg4f-md .ipyg4f-cont{margin-top:0}"
    # a table streaming in parts: the same column widths in every part
    + "div.ipyg4f-md table.ipyg4f-more,div.ipyg4f-md table.ipyg4f-cont{table-layout:fixed;width:100%}"
    # a column's alignment, said once by a class on its table (0,3,1: outranks the left-aligning rule); keyed
    # on td/th, so the browser tries these rules on table cells only, not on every element of the page
    + "".join(",".join(f".ipyg4f-md .ipyg4f-{side[0]}{i} {cell}:nth-child({i})"
                       for i in range(1, ALIGNED_COLUMNS + 1) for cell in ("td", "th"))
              + f"{{text-align:{side}}}" for side in ("right", "center"))
)
STYLE = f"<style>{ANSWER_CSS}</style>"

_md = None
_cleaner = None
_ALIGNED = {f"text-align:{side}" for side in ("left", "center", "right")}


def sanitise(fragment: str) -> str:
    """nh3's defaults plus exactly: the token classes on ``span``, ``ipyg4f-code`` on ``pre``,
    ``style="text-align:left|center|right"`` on ``th``/``td`` (markdown-it's column alignment)."""
    global _cleaner
    if _cleaner is None:
        import nh3

        _cleaner = nh3.Cleaner(link_rel="noopener noreferrer nofollow",
                               allowed_classes={"span": set(_TOKEN_GROUPS),
                                                "pre": {"ipyg4f-code", "ipyg4f-more", "ipyg4f-cont"}},
                               tag_attribute_values={"th": {"style": _ALIGNED}, "td": {"style": _ALIGNED}})
    return _cleaner.clean(fragment)


@lru_cache(maxsize=64)
def _lexer(language: str) -> Any:
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        return get_lexer_by_name(language, stripnl=False, ensurenl=False)
    except ClassNotFound:  # no guessing: guess_lexer tries every lexer (slow) and is often wrong
        return None


@lru_cache(maxsize=256)
def _group(ttype: Any) -> str:
    from pygments.token import STANDARD_TYPES

    cls = STANDARD_TYPES.get(ttype)
    while cls is None:
        ttype = ttype.parent
        cls = STANDARD_TYPES.get(ttype)
    return _GROUP_OF.get(cls, "")


@lru_cache(maxsize=512)
def _highlight(code: str, language: str, light: bool = False) -> str:
    """Code as escaped text, its tokens in ``<span class="group">`` (runs of one group merged; ``light``: the
    groups of :data:`LIVE_PLAIN` left plain); plain escaped text for an unknown or absent language."""
    lexer = _lexer(language.lower()) if language else None
    if lexer is None:
        return html.escape(code, quote=False)
    runs: list[tuple[str, list[str]]] = []  # (group, text): whitespace joins the run before it
    for ttype, value in lexer.get_tokens(code):
        group = _group(ttype)
        if light and group in LIVE_PLAIN:
            group = ""
        if runs and (group == runs[-1][0] or not value.strip()):
            runs[-1][1].append(value)
        else:
            runs.append((group, [value]))
    escaped = ((group, html.escape("".join(values), quote=False)) for group, values in runs)
    return "".join(f"<span class={group}>{text}</span>" if group else text for group, text in escaped)


_AFTER_BLANK_LINE = re.compile(r"(?<=\n\n)")


def code_pieces(code: str, size: int) -> list[str]:
    """Code split after blank lines, then at line ends into pieces of at most ``size`` characters.
    The split depends only on what comes before, so as the code grows only the last piece changes."""
    pieces = []
    for part in _AFTER_BLANK_LINE.split(code):
        while len(part) > size:
            cut = part.rfind("\n", 0, size) + 1 or size
            pieces.append(part[:cut])
            part = part[cut:]
        pieces.append(part)
    return pieces


def code_html(code: str, language: str = "", *, more: bool = False, cont: bool = False, light: bool = False) -> str:
    """A code block in its box.  A long block still streaming is shown as several boxes that look like
    one (:mod:`ipyg4f.render.live`): ``more`` (it goes on below: no bottom edge) and ``cont`` (it goes on
    from above: no top edge); ``light``: highlighted as while streaming (:data:`LIVE_PLAIN`)."""
    body = _highlight(code, language, light)
    classes = "ipyg4f-code" + (" ipyg4f-more" if more else "") + (" ipyg4f-cont" if cont else "")
    return f'<pre class="{classes}"><code>{body}</code></pre>'


def _fence(self: Any, tokens: list[Any], idx: int, options: Any, env: dict[str, Any]) -> str:
    info = tokens[idx].info.split(maxsplit=1)
    return code_html(tokens[idx].content, info[0] if info else "", light=env.get("live", False)) + "\n"


def _code_block(self: Any, tokens: list[Any], idx: int, options: Any, env: dict[str, Any]) -> str:
    return code_html(tokens[idx].content) + "\n"


def markdown_parser() -> Any:
    """The one Markdown parser of answers (CommonMark, tables, strikethrough; raw HTML off)."""
    global _md
    if _md is None:
        from markdown_it import MarkdownIt

        _md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").enable("strikethrough")
        _md.add_render_rule("fence", _fence)
        _md.add_render_rule("code_block", _code_block)
    return _md


_TOKEN_SPAN = re.compile(r'<span class="([a-z]{1,2})">')


_TABLE = re.compile(r"<table>(.*?)</table>", re.DOTALL)
_ROW = re.compile(r"<tr>(.*?)</tr>", re.DOTALL)
_CELL = re.compile(r'<(t[hd])(?: style="text-align:(left|center|right)")?>')


def _light_table(found: re.Match) -> str:
    """A rendered table without the newlines between its tags, its first :data:`ALIGNED_COLUMNS` columns
    aligned by classes on the table (as its header row says) instead of a style on each cell."""
    body = found.group(1).strip().replace(">\n<", "><")  # a cell's content is one line: only tags are joined
    first = _ROW.search(body)
    aligns = [side for _, side in _CELL.findall(first.group(1))] if first else []
    classes = " ".join(f"ipyg4f-{side[0]}{i}" for i, side in enumerate(aligns[:ALIGNED_COLUMNS], 1)
                       if side in ("right", "center"))  # left: the answers' CSS left-aligns every cell

    def row(tr: re.Match) -> str:
        cells = iter(range(1, 1 << 30))
        return "<tr>" + _CELL.sub(lambda c: f"<{c.group(1)}>" if next(cells) <= ALIGNED_COLUMNS else c.group(0),
                                  tr.group(1)) + "</tr>"

    return (f'<table class="{classes}">' if classes else "<table>") + _ROW.sub(row, body) + "</table>"


def _compact(fragment: str) -> str:
    """``<span class=k>`` for ``<span class="k">``: a token class (checked by the sanitiser) needs no quotes,
    and the quotes cost four bytes a token once escaped in JSON.  Tables lose their per-cell alignment
    style and the newlines between their tags (:func:`_light_table`)."""
    fragment = _TABLE.sub(_light_table, fragment) if "<table>" in fragment else fragment
    return _TOKEN_SPAN.sub(r"<span class=\1>", fragment)


def render_tokens(tokens: list[Any], env: dict[str, Any]) -> str:
    """Parsed tokens (some of them) -> sanitised HTML (``env["live"]``: code highlighted as while streaming)."""
    md = markdown_parser()
    return _compact(sanitise(md.renderer.render(tokens, md.options, env))) if tokens else ""


def render_inline(text: str) -> str:
    """``text`` as one paragraph of inline Markdown (no block structure: a part of a paragraph) -> sanitised
    HTML."""
    from markdown_it.token import Token

    md = markdown_parser()
    tokens = [Token("paragraph_open", "p", 1), *md.parseInline(text.strip(), {}), Token("paragraph_close", "p", -1)]
    return render_tokens(tokens, {}) + "\n"


def _render(text: str) -> str:
    return _compact(sanitise(markdown_parser().render(text)))


def markdown_to_html(text: str, *, style: bool = True) -> str:
    """Untrusted Markdown -> safe HTML in a ``div.ipyg4f-md``, after the answers' ``<style>`` (unless
    ``style=False``: one per output is enough)."""
    return f'{STYLE if style else ""}<div class="ipyg4f-md">{_render(text)}</div>'



def text_to_html(text: str) -> str:
    return f'<pre class="ipyg4f-text" style="white-space: pre-wrap">{html.escape(text)}</pre>'


#: the closing tags (and the newline before them) that end a rendered fragment
_TRAILING_CLOSE = re.compile(r"\n?(?:</[a-zA-Z0-9]+>\s*)+$")


def with_cursor(body: str) -> str:
    """``body`` with the streaming cursor after its last character of text, inside the last paragraph,
    list item, table cell or code block, never alone on a line below it."""
    found = _TRAILING_CLOSE.search(body)
    at = found.start() if found else len(body)
    return body[:at] + CURSOR + body[at:]


def code_block(text: str) -> tuple[str, str]:
    """The answer's first fenced code block (or the whole answer) as plain code, and its language."""
    fence = "```"
    start = text.find(fence)
    line_end = text.find("\n", start) if start != -1 else -1
    if line_end == -1:
        return text.strip("\n"), ""
    language = text[start + len(fence): line_end].strip().split(" ")[0]
    end = text.find(fence, line_end + 1)
    return text[line_end + 1: end if end != -1 else len(text)].rstrip("\n"), language


def answer_bundle(text: str, fmt: str = "markdown") -> dict[str, str]:
    """The final MIME bundle of an answer's text in one of the formats."""
    if fmt == "text":
        return {"text/plain": text, "text/html": text_to_html(text)}
    if fmt == "code":
        code, language = code_block(text)
        md = f"```{language or 'python'}\n{code}\n```"
        return {"text/plain": code, "text/markdown": md, "text/html": markdown_to_html(md)}
    # no text/markdown: it would be text/plain again (a third of the final message); Lab, Notebook, VS Code,
    # nbconvert's HTML and GitHub all show text/html, and text/plain keeps the answer for everything else
    return {"text/plain": text, "text/html": markdown_to_html(text)}


def line_html(message: str, tone: str = "info", cls: str = "ipyg4f-status") -> str:
    """One short coloured line (a status, a note, a footer)."""
    return (f'<div class="{cls}" data-tone="{tone}" style="color:{COLOURS[tone]};font-size:0.9em">'
            f"{html.escape(message)}</div>")


def thinking_html(reasoning: str, *, open_: bool = False) -> str:
    """The model's thinking, once it is over, in a collapsible block (while it streams it is shown as
    it comes, :mod:`ipyg4f.render.live`).  The answer that follows carries the ``<style>``."""
    if not reasoning:
        return ""
    return (f'<details class="ipyg4f-thinking"{" open" if open_ else ""} style="margin-bottom:0.5em;'
            f'color:{COLOURS["info"]}"><summary>Thought</summary><div style="padding-left:1em">'
            f"{markdown_to_html(reasoning, style=False)}</div></details>")


def _safe_url(url: str, *, image: bool = False) -> str:
    lowered = url.strip().lower()
    if lowered.startswith(("https://", "http://")) or (image and lowered.startswith("data:image/")):
        return url.strip()
    return ""


def extras_html(answer: Any) -> str:
    """Media (inline, sanitised), sources (a short linked list) and a login link of an answer."""
    parts: list[str] = []
    for media in answer.media:
        url = _safe_url(media.url, image=media.kind == "image")
        if not url:
            continue
        alt = html.escape(media.alt or media.kind, quote=True)
        if media.kind == "image":
            parts.append(f'<img src="{html.escape(url, quote=True)}" alt="{alt}" style="max-width:100%">')
        else:
            parts.append(f'<a href="{html.escape(url, quote=True)}">{alt}</a>')
    links = [(u, t) for u, t in answer.sources if _safe_url(u)]
    if links:
        items = "".join(f'<li><a href="{html.escape(u, quote=True)}">{html.escape(t or u)}</a></li>'
                        for u, t in links)
        parts.append(f'<div class="ipyg4f-sources" style="font-size:0.9em">Sources:<ol>{items}</ol></div>')
    if answer.login is not None and _safe_url(answer.login.url):
        label = html.escape(answer.login.label or "log in")
        parts.append(f'<div class="ipyg4f-login"><a href="{html.escape(answer.login.url, quote=True)}">'
                     f"{label}</a></div>")
    return "".join(parts)  # safe by construction: escaped text and attributes, known URL schemes only


def context_html(attachments: list[Any]) -> str:
    """The collapsed "context sent" block: each attachment, its kind and size, and the text that was sent."""
    if not attachments:
        return ""
    items = []
    for a in attachments:
        sent = (f'<pre class="ipyg4f-text" style="white-space: pre-wrap;max-height:20em;overflow:auto">'
                f"{html.escape(a.text)}</pre>") if a.text else ""
        items.append(f"<li><code>{html.escape(a.name)}</code> — {html.escape(a.kind)}, {html.escape(a.size)}"
                     f"{sent}</li>")
    count = f"{len(attachments)} attachment" + ("s" if len(attachments) != 1 else "")
    return (f'<details class="ipyg4f-context" style="margin-bottom:0.5em;color:{COLOURS["info"]}">'
            f"<summary>context sent: {count}</summary><ul>{''.join(items)}</ul></details>")
