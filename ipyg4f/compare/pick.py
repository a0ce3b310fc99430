"""``%chat pick N [-c NAME]`` (and the pick buttons): column N of a compared cell becomes its answer."""

from __future__ import annotations

import json
from typing import Any

from IPython.core.error import UsageError


def _ended(status: str) -> str:
    """A column saved while it streamed, by a kernel that then died, ended interrupted."""
    return "interrupted" if status == "streaming" else status


def cmd_pick(chat: Any, args: Any) -> None:
    """``%chat pick N [-c NAME]``: column N of the thread's last compared cell becomes that cell's answer."""
    words = args.command[1:]
    if len(words) != 1 or not words[0].isdigit() or int(words[0]) < 1:
        raise UsageError("%chat pick needs a column number: %chat pick 2 [-c NAME]")
    print(pick(chat, int(words[0]), args.thread))


def pick(chat: Any, number: int, thread: str | None = None, cell_id: str | None = None) -> str:
    """Copy column ``number`` (from 1) of the last compared exchange of ``thread`` (or of the cell
    ``cell_id``: a pick button) into its answer."""
    name = chat.thread_name(thread)
    compared = [ex for ex in chat.store.exchanges(chat.notebook, name)
                if ex.variants and cell_id in (None, ex.cell_id)]
    if not compared:
        raise UsageError(f"this cell's answers are no longer in thread {name!r} (re-run the cell)" if cell_id
                         else f"thread {name!r} has no --compare cell to pick from")
    ex = compared[-1]
    variants = ex.variant_list()
    if number > len(variants):
        raise UsageError(f"the last --compare cell of thread {name!r} has {len(variants)} columns, not {number}")
    chosen = variants[number - 1]
    if not chosen.get("answer"):
        raise UsageError(f"column {number} ({chosen.get('provider')}) has no answer to pick")
    for i, v in enumerate(variants, 1):
        v["picked"] = i == number
    chat.store.record(chat.notebook, name, ex.cell_id, ex.prompt, chosen["answer"], provider=chosen.get("provider", ""),
                      model=chosen.get("model", ""), status=_ended(chosen.get("status", "ok")),
                      error=chosen.get("error", ""), reasoning=chosen.get("reasoning", ""), context=ex.context,
                      usage=json.dumps(chosen["usage"]) if isinstance(chosen.get("usage"), dict) else "",
                      variants=json.dumps(variants, ensure_ascii=False))
    for listener in list(chat.on_record):
        listener(name, ex.cell_id)
    who = chosen.get("provider", "") + (f" ({chosen['model']})" if chosen.get("model") else "")
    return f"thread {name!r} continues with column {number}: {who}"
