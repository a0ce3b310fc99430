"""What ``%%chat`` and each ``%chat`` command do (the magic only parses)."""

from __future__ import annotations

import html
from typing import Any

from IPython.core.error import UsageError

from .errors import ModelNotFoundError, ProviderError, UnknownProviderError, describe
from .http import redact
from .magics import ChatFailed, _in_kernel, fill_template
from .render import CellRenderer, TerminalRenderer, code_block
from .runner import Answer, run_blocking


def run_cell(magics: Any, args: Any, cell: str) -> None:
    chat, shell = magics.state, magics.shell
    config = chat.config
    prompt = (cell if args.raw else fill_template(cell, _namespace(shell))).strip()
    if not prompt:
        raise UsageError("the cell is empty: write the prompt below the %%chat line")
    fmt = args.format or config.format
    if fmt not in ("markdown", "text", "code"):
        raise UsageError(f"unknown format {fmt!r} (ChatConfig.format): use markdown, text or code")
    try:
        chat.resolve(args.provider, args.model)  # a user error changes nothing, not even --new
    except (UnknownProviderError, ModelNotFoundError) as exc:
        raise UsageError(redact(exc.message)) from None
    cell_id = chat.new_cell_id()
    if args.new:
        chat.store.reset(chat.notebook, chat.thread_name(args.thread))
    request = chat.request(prompt, cell_id=cell_id, provider=args.provider, model=args.model,
                           system=args.system, thread=args.thread, temperature=args.temperature,
                           proxy=args.proxy, timeout=args.timeout)
    answer = Answer(request.provider_name, request.model)
    label = f"{request.provider_name} ({request.model})" if request.model else request.provider_name
    render_cls = CellRenderer if _in_kernel(shell) else TerminalRenderer
    renderer = render_cls(label, rate=config.updates_per_second,
                          metadata={"provider": request.provider_name, "model": request.model,
                                    "thread": chat.thread_name(args.thread)})
    renderer.start()
    run_blocking(request, answer, renderer)
    note = _note(answer)
    try:
        chat.record(prompt, answer, cell_id=cell_id, thread=args.thread)
    except Exception as exc:  # a full disk or a locked file must not lose the answer on screen
        note = "; ".join(filter(None, [note, f"not saved to history: {redact(describe(exc))}"]))
    renderer.finish(answer.text, fmt, status=answer.status, note=note, provider=answer.provider,
                    model=answer.model, chunks=answer.chunks, finish_reason=answer.finish_reason)
    if args.out:
        shell.user_ns[args.out] = answer.text
    if fmt == "code" and answer.status == "ok" and answer.text:
        _suggest_code(chat, shell, cell_id, code_block(answer.text)[0])
    if answer.status == "error":
        if args.debug or config.show_traceback:
            raise answer.error
        raise ChatFailed(_failure_lines(answer))
    if answer.status == "interrupted":
        raise ChatFailed([f"■ {note}"])


def _namespace(shell: Any) -> Any:
    """The user namespace, with ``In`` as the cells were typed (not as IPython transformed them)."""
    from collections import ChainMap

    raw = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None)
    return ChainMap({"In": raw}, shell.user_ns) if raw is not None else shell.user_ns


def _note(answer: Answer) -> str:
    size = f"partial answer kept ({len(answer.text)} characters)" if answer.text else "nothing was received"
    if answer.status == "interrupted":
        return f"stopped by interrupt; {size}"
    if answer.status == "error":
        return f"{answer.provider} failed: {redact(describe(answer.error))}; {size}"
    if answer.status == "ok" and not answer.text:
        return f"{answer.provider} sent an empty answer"
    return ""


def _failure_lines(answer: Answer) -> list[str]:
    exc = answer.error
    lines = [f"✖ {answer.provider}: {redact(describe(exc))}"]
    hint = getattr(exc, "hint", "") if isinstance(exc, ProviderError) else ""
    if hint:
        lines.append(f"  try: {hint}")
    if answer.text:
        lines.append(f"  the partial answer ({len(answer.text)} characters) is kept above and in history")
    lines.append("  (--debug shows the full traceback)")
    return lines


_suggested: dict[str, str] = {}


def _suggest_code(chat: Any, shell: Any, cell_id: str, code: str) -> None:
    """Offer the code as the next cell once per asking cell; a re-run does not stack another cell."""
    key = f"{chat.notebook}\0{cell_id}"
    if key in _suggested:
        return
    _suggested[key] = code
    shell.set_next_input(code, replace=False)


# --- line commands -------------------------------------------------------------

def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*map(str, r)).rstrip() for r in [headers, *rows])


def _show_table(headers: list[str], rows: list[list[str]]) -> None:
    from IPython.display import display

    display({"text/plain": _text_table(headers, rows), "text/html": _html_table(headers, rows)}, raw=True)


def cmd_providers(magics: Any, args: Any) -> None:
    from .providers import list_providers

    default = magics.state.config.resolved_provider()
    rows = []
    for info in list_providers():
        flags = [f for f, on in (("stream", info.supports_stream), ("system", info.supports_system_message),
                                 ("history", info.supports_message_history), ("key", info.needs_auth)) if on]
        state = "yes" if info.available else ("not set up" if info.working else "no")
        name = f"{info.name} *" if info.name.lower() == default.lower() else info.name
        models = ", ".join(info.models) or info.default_model or "any"
        rows.append([name, state, models, " ".join(flags), info.error or info.label])
    _show_table(["provider", "working", "models", "supports", "about"], rows)


def cmd_models(magics: Any, args: Any) -> list[str] | None:

    from .runner import LoopThread

    try:
        cls, name, _ = magics.state.resolve(args.provider, None)
    except (UnknownProviderError, ModelNotFoundError) as exc:
        raise UsageError(exc.message) from None
    static = list(getattr(cls, "models", []) or [])
    models = static
    if not static and hasattr(cls, "list_models"):
        future = LoopThread.get().submit(cls.list_models())
        try:
            models = future.result(timeout=magics.state.config.timeout)
        except Exception as exc:
            raise ChatFailed([f"✖ {name}: cannot list models: {redact(describe(exc))}"]) from None
    default = getattr(cls, "default_model", "")
    _show_table(["model", "default"], [[m, "*" if m == default else ""] for m in models] or [[default or "any", "*"]])
    return None


def cmd_history(magics: Any, args: Any) -> None:
    from IPython.display import display

    chat = magics.state
    thread = chat.thread_name(args.thread)
    total = chat.store.count(chat.notebook, thread)
    if not total:
        display({"text/plain": f"thread {thread!r}: no exchanges yet"}, raw=True)
        return
    last = args.last if args.last and args.last > 0 else None
    exchanges = chat.store.exchanges(chat.notebook, thread, last=last)
    first = total - len(exchanges) + 1
    rows = [[str(i), ex.provider, ex.status, _clip(ex.prompt), _clip(ex.answer)]
            for i, ex in enumerate(exchanges, first)]
    _show_table(["#", "provider", "status", "prompt", "answer"], rows)
    if first > 1:
        display({"text/plain": f"({first - 1} earlier exchanges not shown: %chat history --last 0 shows all)"}, raw=True)


def cmd_threads(magics: Any, args: Any) -> None:
    from IPython.display import display

    chat = magics.state
    names = chat.store.threads(chat.notebook)
    if not names:
        display({"text/plain": "no threads in this notebook yet"}, raw=True)
        return
    default = chat.config.thread
    _show_table(["thread", "exchanges"], [[f"{n} *" if n == default else n, str(chat.store.count(chat.notebook, n))]
                                          for n in names])


def _clip(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cmd_reset(magics: Any, args: Any) -> None:
    chat = magics.state
    thread = chat.thread_name(args.thread)
    n = chat.store.reset(chat.notebook, thread)
    print(f"thread {thread!r} reset ({n} exchanges archived)")


def cmd_use(magics: Any, args: Any) -> None:
    if not args.provider and not args.model:
        raise UsageError("%chat use needs -p PROVIDER and/or -m MODEL")
    chat = magics.state
    try:
        cls, name, model = chat.resolve(args.provider or chat.config.provider or None, args.model)
    except (UnknownProviderError, ModelNotFoundError) as exc:
        raise UsageError(exc.message) from None
    chat.set_defaults(name, args.model or "")
    print(f"default: {name}" + (f" ({model})" if model else ""))


def cmd_panel(magics: Any, args: Any) -> Any:
    from .widget import ChatPanel

    return ChatPanel(chat=magics.state)
