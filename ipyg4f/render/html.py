"""Answers as safe HTML: sanitised Markdown, the streaming cursor, the thinking block, media, colours.

Model output is untrusted.  Markdown is rendered with markdown-it-py with raw
HTML disabled (so ``<img onerror=...>`` in an answer shows as text), and the
result goes through nh3 (the Rust ammonia sanitiser) as a second guard, since
JupyterLab does not sanitise HTML of trusted (live) outputs.  Everything an
answer carries besides text (links, images, thinking) is sanitised the same way.
"""

from __future__ import annotations

import html
from typing import Any

#: above this many characters, streaming updates show escaped text instead of
#: re-rendering Markdown on every update (keeps each update cheap)
LIVE_MARKDOWN_LIMIT = 8000
CURSOR = '<span class="ipyg4f-cursor">▌</span>'

#: the one palette of both front ends: JupyterLab's theme variables, with light-theme fallbacks
COLOURS = {"info": "var(--jp-ui-font-color2, #666)", "busy": "var(--jp-brand-color1, #1976d2)",
           "ok": "var(--jp-success-color1, #388e3c)", "warn": "var(--jp-warn-color1, #b36b00)",
           "error": "var(--jp-error-color1, #c00)"}

_md = None


def sanitise(fragment: str) -> str:
    import nh3

    return nh3.clean(fragment, link_rel="noopener noreferrer nofollow")


def markdown_to_html(text: str) -> str:
    """Untrusted Markdown -> safe HTML."""
    global _md
    if _md is None:
        from markdown_it import MarkdownIt

        _md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").enable("strikethrough")
    return sanitise(_md.render(text))


def text_to_html(text: str) -> str:
    return f'<pre class="ipyg4f-text" style="white-space: pre-wrap">{html.escape(text)}</pre>'


def live_html(text: str) -> str:
    """Text still streaming: rendered (or, when long, escaped) with the cursor on its last line."""
    body = markdown_to_html(text) if len(text) <= LIVE_MARKDOWN_LIMIT else text_to_html(text)
    if body.endswith("</p>\n"):  # the cursor goes on the last line, not below it
        return body[:-5] + CURSOR + "</p>\n"
    return body + CURSOR


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
    return {"text/plain": text, "text/markdown": text, "text/html": markdown_to_html(text)}


def line_html(message: str, tone: str = "info", cls: str = "ipyg4f-status") -> str:
    """One short coloured line (a status, a note, a footer)."""
    return (f'<div class="{cls}" data-tone="{tone}" style="color:{COLOURS[tone]};font-size:0.9em">'
            f"{html.escape(message)}</div>")


def thinking_html(reasoning: str, *, open_: bool, live: bool = False) -> str:
    """The model's thinking in a collapsible block (open only while it is all there is)."""
    if not reasoning:
        return ""
    body = live_html(reasoning) if live else markdown_to_html(reasoning)
    title = "Thinking…" if live else "Thought"
    return (f'<details class="ipyg4f-thinking"{" open" if open_ else ""} style="margin-bottom:0.5em;'
            f'color:{COLOURS["info"]}"><summary>{title}</summary><div style="padding-left:1em">{body}</div>'
            "</details>")


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
