"""The agent's tool steps as HTML: one collapsed block per call, in order, above the answer.

A block's title says the tool, its arguments in short, whether it ran (asked or
not), was refused or failed, and its time; inside are the arguments (the code
of ``run_python`` highlighted) and the result the model received.  What a step
displayed (a plot, a table) is shown below its block, not hidden in it.  What
the model said before its calls (a "remark") is shown above them, dimmed.
Everything is escaped or sanitised: the arguments and results are the model's
and the tools' text.
"""

from __future__ import annotations

import base64
import html
import json
from typing import Any

from .html import COLOURS, _safe_url, code_html, markdown_to_html, sanitise

__all__ = ["steps_html", "step_html", "step_title"]

_MARK = {"ran": "✓", "refused": "✗", "error": "!"}
#: how the result is cut in the block (the model received at most ``context_budget`` characters)
SHOWN_RESULT = 4000


def step_title(step: Any) -> str:
    status = step.status
    asked = " (approved)" if step.asked and step.approved else (" (asked)" if step.asked else "")
    args = " ".join(str(step.arguments).split())
    args = args if len(args) <= 60 else args[:59] + "…"
    return f"{_MARK.get(status, '')} {step.tool}({args}) — {status}{asked}, {step.seconds:.2f} s"


def _arguments(step: Any) -> str:
    try:
        value = json.loads(step.arguments)
    except (ValueError, TypeError):
        value = None
    if isinstance(value, dict) and step.kind == "python" and isinstance(value.get("code"), str):
        return f'<div class="ipyg4f-md">{code_html(value["code"], "python")}</div>'
    shown = json.dumps(value, indent=1, ensure_ascii=False) if value is not None else str(step.arguments)
    return f'<div class="ipyg4f-md">{code_html(shown, "json" if value is not None else "")}</div>'


def _display(bundle: dict[str, Any]) -> str:
    data = bundle.get("data") or {}
    for mime in ("image/png", "image/jpeg"):
        if isinstance(data.get(mime), str):
            url = _safe_url(f"data:{mime};base64,{''.join(data[mime].split())}", image=True)
            return f'<img src="{html.escape(url, quote=True)}" alt="output" style="max-width:100%">'
    if isinstance(data.get("image/svg+xml"), str):
        encoded = base64.b64encode(data["image/svg+xml"].encode()).decode()  # as an image: no script runs
        return f'<img src="data:image/svg+xml;base64,{encoded}" alt="output" style="max-width:100%">'
    if isinstance(data.get("text/html"), str):
        return f'<div class="ipyg4f-step-output">{sanitise(data["text/html"])}</div>'
    if isinstance(data.get("text/markdown"), str):
        return markdown_to_html(data["text/markdown"], style=False)
    if isinstance(data.get("text/plain"), str):
        return f'<pre class="ipyg4f-text">{html.escape(data["text/plain"])}</pre>'
    return ""


def step_html(step: Any) -> str:
    result = str(step.result)
    if len(result) > SHOWN_RESULT:
        result = result[:SHOWN_RESULT] + f"\n[… {len(step.result) - SHOWN_RESULT:,} more characters]"
    tone = "error" if step.status == "error" else "info"
    block = (f'<details class="ipyg4f-step" data-status="{step.status}" style="margin:0.2em 0;'
             f'color:{COLOURS[tone]}"><summary>{html.escape(step_title(step))}</summary>'
             f'<div style="padding-left:1em">{_arguments(step)}'
             f'<pre class="ipyg4f-text" style="white-space:pre-wrap;max-height:20em;overflow:auto">'
             f"{html.escape(result)}</pre></div></details>")
    shown = "".join(_display(d) for d in getattr(step, "displays", ()) or ())
    return block + (f'<div class="ipyg4f-step-displays">{shown}</div>' if shown else "")


def steps_html(answer: Any) -> str:
    """Every step of ``answer`` so far, each request's remark before its calls."""
    if not answer.steps:
        return ""
    parts, said = [], set()
    for step in answer.steps:
        if step.request not in said:
            said.add(step.request)
            remark = answer.remarks.get(step.request, "").strip()
            if remark:
                parts.append(f'<div class="ipyg4f-remark" style="color:{COLOURS["info"]}">'
                             f"{markdown_to_html(remark, style=False)}</div>")
        parts.append(step_html(step))
    return f'<div class="ipyg4f-steps" style="margin-bottom:0.5em">{"".join(parts)}</div>'
