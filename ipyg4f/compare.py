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

import asyncio
import json
import time
from typing import Any

from IPython.core.error import UsageError

from .answer import Answer
from .errors import ChatFailed, ModelNotFoundError, UnknownProviderError
from .http import redact
from .runner import ChatRequest, Run, stream

#: options of an ordinary cell that --compare / --race do not take (yet)
_NOT_WITH = {"with_": "--with", "error": "--error", "image": "--image", "tools": "--tools", "notebook": "--notebook",
             "dry_run": "--dry-run", "base_url": "--base-url", "api_key_env": "--api-key-env"}


def parse_specs(text: str, option: str = "--compare") -> list[tuple[str, str | None]]:
    """``"OpenAI=gpt-4o-mini,Local"`` -> ``[("OpenAI", "gpt-4o-mini"), ("Local", None)]``."""
    specs = []
    for word in (text or "").split(","):
        word = word.strip()
        if not word:
            continue
        provider, _, model = word.partition("=")
        if not provider.strip():
            raise UsageError(f"{option} {text}: {word!r} names no provider (write PROVIDER or PROVIDER=MODEL)")
        specs.append((provider.strip(), model.strip() or None))
    if not specs:
        raise UsageError(f"{option} needs at least one PROVIDER or PROVIDER=MODEL, comma-separated")
    return specs


def setups(chat: Any, specs: list[tuple[str, str | None]], cell: dict[str, Any]) -> list[Any]:
    """Each SPEC as configured; an unknown provider or model is a UsageError (nothing was sent)."""
    from .providers.setup import SetupError

    found = []
    for provider, model in specs:
        try:
            found.append(chat.setup(provider, model, cell))
        except (UnknownProviderError, ModelNotFoundError, SetupError) as exc:
            raise UsageError(f"{redact(exc.message)} (nothing was sent)") from None
    return found


# -- several streams as one ---------------------------------------------------------

class _End:
    """Column ``i``'s stream ended (``error`` None: fine), at ``at`` (``time.monotonic``)."""

    __slots__ = ("error", "at")

    def __init__(self, error: BaseException | None = None):
        self.error, self.at = error, time.monotonic()


class Multiplex:
    """A provider-like object for :class:`~ipyg4f.runner.Run`: every request at once, items tagged
    ``(column, item)``; a column's end (or failure) is an item too, so one column failing stops no other."""

    name = "compare"
    enforces_timeout = True  # each request is watched on its own, by runner.stream

    def __init__(self, requests: list[ChatRequest]):
        self.requests = requests

    async def create_async_generator(self, model: str, messages: Any, proxy: str | None = None, **_: Any):
        out: list[tuple[int, Any]] = []
        ready = asyncio.Event()

        def put(i: int, item: Any) -> None:
            out.append((i, item))
            ready.set()

        async def one(i: int, request: ChatRequest) -> None:
            try:
                await stream(request, lambda item: put(i, item))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # this column failed; the others go on
                put(i, _End(exc))
            else:
                put(i, _End())

        tasks = [asyncio.ensure_future(one(i, r)) for i, r in enumerate(self.requests)]
        left = len(tasks)
        try:
            while left:
                await ready.wait()
                ready.clear()
                items, out[:] = out[:], []
                for item in items:
                    left -= isinstance(item[1], _End)
                    yield item
        finally:  # an interrupt: every column stops, and its connection is closed before this returns
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class Columns:
    """The answer of a compare run: one :class:`Answer` per column, fed ``(column, item)`` pairs."""

    def __init__(self, answers: list[Answer]):
        self.answers = answers
        self.provider = Multiplex.name

    @property
    def size(self) -> int:
        return sum(a.size for a in self.answers)

    @property
    def text(self) -> str:
        """Every column's text (what :class:`~ipyg4f.render.saving.SavingRenderer` asks, once a second)."""
        texts = [a.text for a in self.answers]
        return "\x00".join(texts) if any(texts) else ""

    @property
    def reasoning(self) -> str:
        return "\x00".join(a.reasoning for a in self.answers)

    def feed(self, tagged: Any) -> bool:
        i, item = tagged
        answer = self.answers[i]
        if isinstance(item, _End):
            answer.end("error" if item.error is not None else "ok", item.error)
            answer.ended = min(answer.ended or item.at, item.at)
            return True
        return answer.feed(item)

    def end(self, status: str, error: BaseException | None = None) -> None:
        """The run ended: a column still streaming ends the same way (an interrupt: every one)."""
        for answer in self.answers:
            answer.end(status, error)

    @property
    def status(self) -> str:
        statuses = {a.status for a in self.answers}
        if "ok" in statuses:
            return "ok"
        return "interrupted" if "interrupted" in statuses else "error"


# -- the cell -------------------------------------------------------------------------

def _prompt(chat: Any, args: Any, cell: str, option: str) -> str:
    from .template import fill_template, user_namespace

    used = [flag for name, flag in _NOT_WITH.items() if getattr(args, name, None)]
    if used:
        raise UsageError(f"{option} does not take {', '.join(used)} yet (nothing was sent)")
    if args.max_tokens is not None and args.max_tokens < 1:
        raise UsageError(f"--max-tokens must be at least 1, not {args.max_tokens}")
    prompt = (cell if args.raw else fill_template(cell, user_namespace(chat.shell))).strip()
    if not prompt:
        raise UsageError("the cell is empty: write the prompt below the %%chat line")
    return prompt


def _in_kernel(shell: Any) -> bool:
    return type(shell).__name__ == "ZMQInteractiveShell"


def run_cell(chat: Any, args: Any, cell: str) -> None:
    if args.race:
        return run_race(chat, args, _prompt(chat, args, cell, "--race"))
    prompt = _prompt(chat, args, cell, "--compare")
    options = {k: v for k, v in {"temperature": args.temperature, "max_tokens": args.max_tokens}.items()
               if v is not None}
    chosen = setups(chat, parse_specs(args.compare), options)  # a user error changes nothing, not even --new
    cell_id = chat.new_cell_id()
    thread = chat.thread_name(args.thread)
    if args.new:
        chat.store.reset(chat.notebook, thread)
    requests, answers = [], []
    for setup in chosen:
        request, notes = chat.request(prompt, cell_id=cell_id, provider=setup.name, model=setup.model or None,
                                      system=args.system, thread=args.thread, temperature=args.temperature,
                                      proxy=args.proxy, timeout=args.timeout, extra={"max_tokens": args.max_tokens})
        answer = Answer(request.provider_name, request.model)
        answer.notes.extend(notes)
        requests.append(request)
        answers.append(answer)
    from .render.columns import ColumnsRenderer
    from .render.outcome import Outcome, label
    from .render.saving import SavingRenderer

    labels = [label(a.provider, a.model) for a in answers]
    hint = f"continue the thread with one of them: %chat pick N{' -c ' + thread if args.thread else ''}"
    renderer = ColumnsRenderer(labels, rate=chat.config.updates_per_second, plain=not _in_kernel(chat.shell),
                               metadata={"thread": thread, "compare": labels}, pick_hint=hint)
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
    result = Outcome(columns.status, recorded, "warn" if recorded else "info")
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
    from .render import CellRenderer, TerminalRenderer, failure_lines, outcome
    from .render.outcome import label

    options = {k: v for k, v in {"temperature": args.temperature, "max_tokens": args.max_tokens}.items()
               if v is not None}
    chosen = setups(chat, parse_specs(args.race, "--race"), options)
    fmt = args.format or chat.config.format
    cell_id = chat.new_cell_id()
    thread = chat.thread_name(args.thread)
    if args.new:
        chat.store.reset(chat.notebook, thread)
    request, _ = chat.request(prompt, cell_id=cell_id, provider="Fallback", system=args.system, thread=args.thread,
                              temperature=args.temperature, proxy=args.proxy, timeout=args.timeout,
                              extra={"max_tokens": args.max_tokens, "providers": [s.name for s in chosen]})
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

    from .render.columns import pick_buttons

    buttons = pick_buttons(labels, [bool(a.text) for a in answers],
                           lambda n: pick(chat, n, thread, cell_id=cell_id))
    if buttons is not None:
        display(buttons)


def _why(answer: Answer) -> str:
    from .render.outcome import reason

    return f"{answer.provider}: {reason(answer)}"


def variants_json(answers: list[Answer]) -> str:
    from .errors import describe
    from .render.outcome import footer

    return json.dumps([{"provider": a.provider, "model": a.model_used or a.model, "answer": a.text,
                        "status": a.status, "error": redact(describe(a.error)) if a.error else "",
                        "reasoning": a.reasoning, "footer": footer(a)} for a in answers], ensure_ascii=False)


# -- %chat pick ----------------------------------------------------------------------

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
                      variants=json.dumps(variants, ensure_ascii=False))
    for listener in list(chat.on_record):
        listener(name, ex.cell_id)
    who = chosen.get("provider", "") + (f" ({chosen['model']})" if chosen.get("model") else "")
    return f"thread {name!r} continues with column {number}: {who}"
