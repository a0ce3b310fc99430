"""``%%chat --compare`` / ``--race`` and ``%chat pick``: one prompt, several providers.

``--compare SPEC[,SPEC...]`` (SPEC: ``PROVIDER`` or ``PROVIDER=MODEL``) sends the prompt to every
SPEC at once, on the runner's loop, through ONE :class:`~ipyg4f.runner.Run`: its "provider" is
:class:`Multiplex`, which streams each request with :func:`ipyg4f.runner.stream` (each with its own
timeout) and tags every item with its column; :class:`Columns` stands for the answer and hands
each item to that column's :class:`~ipyg4f.answer.Answer`.  So interrupt, cancel and the throttle
are the runner's own, and every answer is fed and drawn on the cell's thread
(:class:`~ipyg4f.render.columns.ColumnsRenderer`).

The thread: the cell's exchange stores every answer (``variants``) and an empty answer, so until
``%chat pick N`` copies column N's answer into it the thread's context is the prompt alone.
Re-running the cell replaces them all.

``--race SPEC[,...]`` is ``-p Fallback`` over those set-ups in ``race`` mode
(:mod:`ipyg4f.providers.fallback`): the first to send text wins, the others are cancelled.
"""

from __future__ import annotations

import json
from typing import Any

from IPython.core.error import UsageError

from ..answer import Answer
from ..errors import ChatFailed
from ..http import redact
from ..runner import ChatRequest, Run
from .pick import cmd_pick, pick
from .specs import parse_specs, setups
from .streams import Columns, Multiplex

__all__ = ["run_cell", "run_race", "cmd_pick", "pick", "parse_specs", "setups", "Columns", "Multiplex",
           "variants_json"]

#: options of an ordinary cell that --compare / --race do not take (yet)
_NOT_WITH = {"with_": "--with", "error": "--error", "image": "--image", "tools": "--tools", "notebook": "--notebook",
             "dry_run": "--dry-run", "base_url": "--base-url", "api_key_env": "--api-key-env"}


def _prompt(chat: Any, args: Any, cell: str, option: str) -> str:
    from ..template import fill_template, user_namespace

    used = [flag for name, flag in _NOT_WITH.items() if getattr(args, name, None)]
    if used:
        raise UsageError(f"{option} does not take {', '.join(used)} yet (nothing was sent)")
    if args.max_tokens is not None and args.max_tokens < 1:
        raise UsageError(f"--max-tokens must be at least 1, not {args.max_tokens}")
    prompt = (cell if args.raw else fill_template(cell, user_namespace(chat.shell))).strip()
    if not prompt:
        raise UsageError("the cell is empty: write the prompt below the %%chat line")
    return prompt


def _format(args: Any, chat: Any) -> str:
    from ..config import FORMATS

    fmt = args.format or chat.config.format
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r} (ChatConfig.format): use markdown, text or code")
    return fmt


def _in_kernel(shell: Any) -> bool:
    return type(shell).__name__ == "ZMQInteractiveShell"


def run_cell(chat: Any, args: Any, cell: str) -> None:
    if args.race:
        return run_race(chat, args, _prompt(chat, args, cell, "--race"))
    prompt = _prompt(chat, args, cell, "--compare")
    options = {k: v for k, v in {"temperature": args.temperature, "max_tokens": args.max_tokens}.items()
               if v is not None}
    chosen = setups(chat, parse_specs(args.compare), options)  # a user error changes nothing, not even --new
    fmt = _format(args, chat)
    cell_id = chat.new_cell_id()
    warned = len(chat.warnings)  # said again under the columns (the cell is cleared at the end)
    thread = chat.thread_name(args.thread)
    budget = args.budget if args.budget is not None else chat.config.budget
    requests, answers = [], []
    for setup in chosen:  # the cell's budget shared by the columns; one over it: a UsageError, nothing sent
        request, notes = chat.request(prompt, cell_id=cell_id, provider=setup.name, model=setup.model or None,
                                      system=args.system, thread=args.thread, temperature=args.temperature,
                                      proxy=args.proxy, timeout=args.timeout, extra={"max_tokens": args.max_tokens},
                                      budget=None if budget is None else budget / len(chosen), fresh=args.new)
        answer = Answer(request.provider_name, request.model)
        answer.notes.extend(notes)
        requests.append(request)
        answers.append(answer)
    if args.new:  # once every request is made (one refused changes nothing)
        chat.store.reset(chat.notebook, thread)
    from ..render.columns import ColumnsRenderer
    from ..render.outcome import Outcome, label
    from ..render.saving import SavingRenderer

    labels = [label(a.provider, a.model) for a in answers]
    hint = f"continue the thread with one of them: %chat pick N{' -c ' + thread if args.thread else ''}"
    renderer = ColumnsRenderer(labels, rate=chat.config.updates_per_second, plain=not _in_kernel(chat.shell),
                               metadata={"thread": thread, "compare": labels}, pick_hint=hint, fmt=fmt)
    columns = Columns(answers)
    saving = SavingRenderer(renderer, lambda c: chat.store.save_partial(
        chat.notebook, thread, cell_id, prompt, "", provider=Multiplex.name, model=", ".join(labels),
        variants=variants_json(c.answers)))  # about once a second: a killed kernel keeps what had come
    Run(ChatRequest(Multiplex(requests), "", []), columns, saving).run()
    summary = Answer(Multiplex.name, ", ".join(labels))
    # "ok" once any column has text (each column's own ending is in the variants): the record replaces
    # this cell's earlier one (or its partial save), and the context holds the prompt until a pick
    summary.end("ok" if any(a.text for a in answers) else columns.status)
    recorded = chat.record(prompt, summary, cell_id=cell_id, thread=args.thread, variants=variants_json(answers))
    note = "; ".join(filter(None, [recorded, *chat.warnings[warned:]]))
    result = Outcome(columns.status, note, "warn" if note else "info")
    renderer.finish(columns, result)
    if not renderer.plain and not recorded and any(a.text for a in answers):
        _offer_picks(chat, labels, answers, args.thread, cell_id)
    if args.out:
        chat.shell.user_ns[args.out] = {lab: a.text for lab, a in zip(labels, answers)}
    if columns.status == "interrupted":
        raise ChatFailed(["■ stopped by interrupt; every column's partial answer is kept"])
    if columns.status == "error":
        raise ChatFailed([f"✖ every provider failed ({'; '.join(_why(a) for a in answers)})"])


def run_race(chat: Any, args: Any, prompt: str) -> None:
    """``--race``: ``-p Fallback`` over the SPECs in race mode, shown and stored like any answer."""
    from ..render import CellRenderer, TerminalRenderer, failure_lines, outcome
    from ..render.outcome import label

    options = {k: v for k, v in {"temperature": args.temperature, "max_tokens": args.max_tokens}.items()
               if v is not None}
    chosen = setups(chat, parse_specs(args.race, "--race"), options)
    fmt = _format(args, chat)
    cell_id = chat.new_cell_id()
    thread = chat.thread_name(args.thread)
    request, _ = chat.request(prompt, cell_id=cell_id, provider="Fallback", system=args.system, thread=args.thread,
                              temperature=args.temperature, proxy=args.proxy, timeout=args.timeout,
                              extra={"max_tokens": args.max_tokens, "providers": [s.name for s in chosen]},
                              budget=args.budget, fresh=args.new)
    if args.new:  # once the request is made (one refused changes nothing)
        chat.store.reset(chat.notebook, thread)
    request.kwargs.update(providers=chosen, mode="race")  # the set-ups themselves: each SPEC's model
    answer = Answer(request.provider_name, "")
    answer.notes.extend(dict.fromkeys(p for s in chosen for p in s.problems))
    who = "race of " + ", ".join(label(s.name, s.model) for s in chosen)
    if _in_kernel(chat.shell):
        renderer = CellRenderer(who, fmt=fmt, rate=chat.config.updates_per_second,
                                metadata={"thread": thread, "race": [s.name for s in chosen]})
    else:
        renderer = TerminalRenderer(who)
    Run(request, answer, chat.saving(renderer, prompt, cell_id=cell_id, thread=args.thread)).run()
    recorded = chat.record(prompt, answer, cell_id=cell_id, thread=args.thread)
    result = outcome(answer, recorded)
    renderer.finish(answer, result)
    if args.out:
        chat.shell.user_ns[args.out] = answer.text
    if answer.status == "error":
        if args.debug or chat.config.show_traceback:
            raise answer.error
        raise ChatFailed(failure_lines(answer))
    if answer.status == "interrupted":
        raise ChatFailed([f"■ {result.note}"])


def _offer_picks(chat: Any, labels: list[str], answers: list[Answer], thread: str | None, cell_id: str) -> None:
    from IPython.display import display

    from ..render.columns import pick_buttons

    buttons = pick_buttons(labels, [bool(a.text) for a in answers],
                           lambda n: pick(chat, n, thread, cell_id=cell_id))
    if buttons is not None:  # a saved notebook (nbconvert, GitHub) shows the command, not the widget's repr
        bundle = buttons._repr_mimebundle_()
        bundle["text/plain"] = "(pick a column: %chat pick N" + (f" -c {thread})" if thread else ")")
        display(bundle, raw=True)


def _why(answer: Answer) -> str:
    from ..render.outcome import reason

    return f"{answer.provider}: {reason(answer)}"


def variants_json(answers: list[Answer]) -> str:
    """The columns as the exchange stores them; ``usage``: tokens, cost and context, where known (%chat cost
    counts each column under its own provider and model)."""
    from ..chat import usage_json
    from ..errors import describe
    from ..render.outcome import footer

    return json.dumps([{"provider": a.provider, "model": a.model_used or a.model, "answer": a.text,
                        "status": a.status, "error": redact(describe(a.error)) if a.error else "",
                        "reasoning": a.reasoning, "footer": footer(a),
                        "usage": json.loads(usage_json(a) or "null")} for a in answers], ensure_ascii=False)
