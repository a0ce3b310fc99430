"""``%chat export [-c NAME] PATH`` and ``%chat import PATH [-c NAME]``: a thread to a file and back.

* ``.md``: for reading: each prompt, the answer with the model's thinking and the agent's tool steps
  collapsed (``<details>``), and a footer line (who answered, tokens, cost, context, how it ended);
* ``.json``: ``{"messages": [...], "exchanges": [...], "thread": ...}``: ``messages`` are the thread in
  OpenAI's chat format (the user turns as they were sent, the assistant's ``tool_calls`` turns and the
  ``tool`` results, the answers), loadable anywhere; ``exchanges`` keep, in order, what those cannot
  say (provider, model, status, thinking, steps, usage, a ``--compare`` cell's answers), so ``%chat import`` gives the thread back as
  it was.  A plain list of OpenAI messages (or ``{"messages": [...]}`` from elsewhere) imports too:
  each user message starts an exchange.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError

from .exchange import ERROR, OK, Exchange
from .pricing.meter import compact, money

__all__ = ["cmd_export", "cmd_import", "to_markdown", "to_json", "exchanges_from", "FORMAT"]

FORMAT = "ipyg4f-thread/1"
_SUFFIXES = (".md", ".json")


def _path(args: Any, command: str) -> Path:
    words = args.command[1:]
    usage = (f"%chat {command} needs a file: %chat {command} [-c NAME] thread.md | thread.json"
             if command == "export" else "%chat import needs a file: %chat import thread.json [-c NAME]")
    if len(words) != 1:
        raise UsageError(usage if not words else f"{usage} (one path; quote a path with spaces)")
    path = Path(os.path.expanduser(words[0]))
    allowed = _SUFFIXES if command == "export" else (".json",)
    if path.suffix.lower() not in allowed:
        raise UsageError(f"%chat {command} {words[0]}: the file must end in {' or '.join(allowed)}"
                         + (" (Markdown is for reading; export .json to import it again)"
                            if command == "import" and path.suffix.lower() == ".md" else ""))
    return path


def cmd_export(chat: Any, args: Any) -> None:
    path = _path(args, "export")
    thread = chat.thread_name(args.thread)
    exchanges = chat.store.exchanges(chat.notebook, thread)
    if not exchanges:
        raise UsageError(f"thread {thread!r} has no exchanges to export (%chat threads lists the threads)")
    text = to_markdown(thread, exchanges) if path.suffix.lower() == ".md" else to_json(thread, exchanges)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"%chat export: cannot write {path}: {exc.strerror or exc}") from None
    print(f"thread {thread!r}: {len(exchanges)} exchange{'s' * (len(exchanges) != 1)} written to {path}")


def cmd_import(chat: Any, args: Any) -> None:
    path = _path(args, "import")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"%chat import: cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(f"%chat import: {path} is not JSON ({exc})") from None
    try:
        exchanges, skipped = exchanges_from(data)
    except ValueError as exc:
        raise UsageError(f"%chat import: {path}: {exc}") from None
    thread = chat.thread_name(args.thread)
    batch = f"import-{os.urandom(4).hex()}"
    for n, ex in enumerate(exchanges, 1):
        chat.store.record(chat.notebook, thread, f"{batch}-{n}", ex["prompt"], ex["answer"],
                          provider=ex["provider"], model=ex["model"], status=ex["status"], error=ex["error"],
                          reasoning=ex["reasoning"], context=ex["context"], tool_messages=ex["tool_messages"],
                          steps=ex["steps"], usage=ex["usage"], variants=ex["variants"])
    extra = f" ({skipped} system message{'s' * (skipped != 1)} left out)" if skipped else ""
    print(f"thread {thread!r}: {len(exchanges)} exchange{'s' * (len(exchanges) != 1)} imported from {path}{extra}")


# -- JSON ------------------------------------------------------------------------------------------

def _meta(ex: Exchange) -> dict[str, Any]:
    """What the OpenAI messages of ``ex`` cannot say."""
    out = {"provider": ex.provider, "model": ex.model, "status": ex.status, "error": ex.error,
           "reasoning": ex.reasoning, "context": ex.context, "steps": ex.step_list(), "usage": ex.usage_dict(),
           "variants": ex.variant_list(), "created": ex.created}
    return {k: v for k, v in out.items() if v not in ("", [], {}, None)}


def to_json(thread: str, exchanges: list[Exchange]) -> str:
    messages = [m for ex in exchanges for m in ex.as_messages(tools=True)]
    body = {"format": FORMAT, "thread": thread, "messages": messages, "exchanges": [_meta(ex) for ex in exchanges]}
    return json.dumps(body, indent=1, ensure_ascii=False) + "\n"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal content: its text parts (images are not kept)
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "" if content is None else str(content)


def exchanges_from(data: Any) -> tuple[list[dict[str, Any]], int]:
    """(the exchanges to store, how many system messages were left out); ValueError when ``data`` is no thread."""
    messages = data.get("messages") if isinstance(data, dict) else data
    if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m for m in messages):
        raise ValueError('expected OpenAI messages: a list of {"role": ..., "content": ...} '
                         '(or {"messages": [...]}, as %chat export writes)')
    metas = data.get("exchanges") if isinstance(data, dict) else None
    turns: list[dict[str, Any]] = []
    skipped = 0
    for message in messages:
        role = message["role"]
        if role == "system":
            skipped += 1
        elif role == "user":
            turns.append({"prompt": _text(message.get("content")), "answer": "", "tool_messages": []})
        elif not turns:
            raise ValueError(f"a {role!r} message comes before the first user message")
        elif role == "tool" or message.get("tool_calls"):
            turns[-1]["tool_messages"].append(message)
        elif role == "assistant":
            text = _text(message.get("content"))
            turns[-1]["answer"] = f"{turns[-1]['answer']}\n\n{text}" if turns[-1]["answer"] else text
        else:
            raise ValueError(f"unknown role {role!r}")
    if not turns:
        raise ValueError("no user message: nothing to import")
    if not (isinstance(metas, list) and len(metas) == len(turns) and all(isinstance(m, dict) for m in metas)):
        metas = [{} for _ in turns]
    return [_exchange(turn, meta) for turn, meta in zip(turns, metas)], skipped


def _exchange(turn: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    status = meta.get("status") if meta.get("status") in (OK, ERROR, "interrupted") else OK
    prompt, context, answer = turn["prompt"], str(meta.get("context") or ""), turn["answer"]
    if context and prompt.startswith(f"{context}\n\n"):
        prompt = prompt[len(context) + 2:]
    else:
        context = ""
    marker = re.search(r"\n\n\[incomplete answer: (it failed|interrupted)\]\Z", answer)
    if status != OK and marker:  # as_messages told the model; the stored answer is without it
        answer = answer[:marker.start()]
    steps, usage, variants = meta.get("steps"), meta.get("usage"), meta.get("variants")
    return {"prompt": prompt, "answer": answer, "provider": str(meta.get("provider") or ""),
            "model": str(meta.get("model") or ""), "status": status, "error": str(meta.get("error") or ""),
            "reasoning": str(meta.get("reasoning") or ""), "context": context,
            "tool_messages": json.dumps(turn["tool_messages"], ensure_ascii=False) if turn["tool_messages"] else "",
            "steps": json.dumps(steps, ensure_ascii=False) if isinstance(steps, list) and steps else "",
            "usage": json.dumps(usage) if isinstance(usage, dict) and usage else "",
            "variants": json.dumps(variants, ensure_ascii=False) if isinstance(variants, list) and variants else ""}


# -- Markdown --------------------------------------------------------------------------------------

def _fence(text: str, lang: str = "") -> str:
    """``text`` in a code fence longer than any run of backticks inside it."""
    ticks = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"


def _details(summary: str, body: str) -> str:
    import html

    return f"<details><summary>{html.escape(summary)}</summary>\n\n{body.strip()}\n\n</details>"


def _step(n: int, step: dict[str, Any]) -> str:
    status = "error" if step.get("error") else ("ran" if step.get("approved") else "refused")
    asked = " (asked)" if step.get("asked") else ""
    head = f"{n}. `{step.get('tool', '?')}` {status}{asked}, {float(step.get('seconds') or 0):.2f} s"
    parts = [head, _fence(str(step.get("arguments", "")), "json")]
    if step.get("result"):
        parts.append(_fence(str(step["result"]), "text"))
    return "\n\n".join(parts)


def footer_line(ex: Exchange) -> str:
    """Who answered, the tokens, the cost, the context, and how it ended: from what the exchange stored."""
    who = f"{ex.provider} ({ex.model})" if ex.model else ex.provider or "?"
    parts = [who]
    usage = ex.usage_dict()
    if "output" in usage:
        parts.append(f"{usage.get('input', '?')} in / {usage['output']} out tokens")
    if isinstance(usage.get("cost"), (int, float)):
        parts.append(money(float(usage["cost"])))
    if isinstance(usage.get("context"), int) and isinstance(usage.get("window"), int):
        parts.append(f"context {compact(usage['context'])}/{compact(usage['window'])}")
    if ex.created:
        parts.append(time.strftime("%Y-%m-%d %H:%M", time.localtime(ex.created)))
    if ex.status != OK:
        parts.append(f"{'failed' if ex.status == ERROR else ex.status}{': ' + ex.error if ex.error else ''}")
    return " · ".join(parts)


def _exchange_markdown(n: int, ex: Exchange) -> str:
    blocks = [f"## {n}. You", ex.prompt.strip() or "_(empty prompt)_"]
    if ex.context:
        blocks.append(_details("context sent with the prompt", _fence(ex.context, "text")))
    blocks.append(f"### {ex.provider or 'answer'}")
    if ex.reasoning:
        blocks.append(_details("thinking", ex.reasoning))
    steps = ex.step_list()
    if steps:
        blocks.append(_details(f"tool steps ({len(steps)})", "\n\n".join(_step(i, s) for i, s in
                                                                          enumerate(steps, 1) if isinstance(s, dict))))
    blocks.append(ex.answer.strip() or "_(no answer)_")
    for variant in ex.variant_list():
        if isinstance(variant, dict) and variant.get("answer"):
            who = f"{variant.get('provider', '?')} ({variant.get('model', '')})"
            blocks.append(_details(f"compared: {who}", str(variant["answer"])))
    blocks.append(f"<sub>{_escape_line(footer_line(ex))}</sub>")
    return "\n\n".join(blocks)


def _escape_line(text: str) -> str:
    import html

    return html.escape(" ".join(text.split()), quote=False)


def to_markdown(thread: str, exchanges: list[Exchange]) -> str:
    head = f"# Thread `{thread}`\n\n_{len(exchanges)} exchange{'s' * (len(exchanges) != 1)}, exported by ipyg4f_"
    return "\n\n---\n\n".join([head, *(_exchange_markdown(n, ex) for n, ex in enumerate(exchanges, 1))]) + "\n"
