"""What ``%%chat`` and each ``%chat`` command do (the magic only parses).

Every function takes the shell's :class:`~ipyg4f.chat.Chat` and the parsed options.
"""

from __future__ import annotations

import html
from typing import Any

from IPython.core.error import UsageError

from .chat import Chat
from .config import FORMATS
from .errors import ChatFailed, ModelNotFoundError, UnknownProviderError, describe
from .provider_commands import api_key_env, cmd_models, cmd_providers, cmd_use, setup_or_usage
from .render.table import show_table


def in_kernel(shell: Any) -> bool:
    return type(shell).__name__ == "ZMQInteractiveShell"


def _attachments(chat: Chat, args: Any, cls: Any, model: str) -> list[Any]:
    """What ``--with``, ``--error`` and ``--image`` name, evaluated now; a problem is a UsageError."""
    from .context.values import ContextError, attach, split_exprs
    from .context.lasterror import last_error
    from .template import user_namespace

    images = args.image or []
    if images and not cls.accepts_images(model):
        which = f"{cls.name} model {model!r}" if cls.supports_images else cls.name
        listed = f" (models that do: {', '.join(sorted(cls.vision_models))})" if cls.supports_images else ""
        raise UsageError(f"{which} does not take images{listed}; choose one that does, e.g. -p OpenAI "
                         "(nothing was sent)")
    namespace, budget = user_namespace(chat.shell), chat.config.context_budget
    try:
        found = [a for spec in args.with_ or [] for a in attach(split_exprs(spec), namespace, budget)]
        if args.error:
            found.append(last_error(chat.shell, budget))
        if getattr(args, "notebook", False):
            from .agent.notebook import notebook_context
            from .context.values import Attachment

            found.append(Attachment("the notebook", "executed cells", notebook_context(chat.shell, budget)))
        if images:
            from .context.images import attach_image, image_names

            found += [attach_image(expr, namespace, chat.images) for spec in images for expr in image_names(spec)]
    except ContextError as exc:
        raise UsageError(f"{exc} (nothing was sent)") from None
    return found


def _show_request(request: Any, attachments: list[Any]) -> None:
    """--dry-run: the messages that would be sent (image data shortened), as JSON."""
    import json

    from IPython.display import display

    def shorten(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: shorten(v) for k, v in value.items()}
        if isinstance(value, list):
            return [shorten(v) for v in value]
        if isinstance(value, str) and value.startswith("data:image/") and len(value) > 80:
            return f"{value[:60]}…({len(value):,} characters)"
        return value

    body = json.dumps({"model": request.model, "messages": shorten(request.messages)}, indent=2, ensure_ascii=False)
    text = f"not sent (--dry-run) to {request.provider_name}:\n{body}"
    display({"text/plain": text, "text/html": f"<pre>{html.escape(text)}</pre>"}, raw=True)


def run_map(chat: Chat, args: Any, cell: str) -> Any:
    """``%%chat --map EXPR``: the body once per item; answers to ``-o VAR`` and/or ``--into df["col"]``."""
    from .batch import map as batch_map
    from .context.values import ContextError, evaluate
    from .template import user_namespace

    if args.compare:  # one batch per SPEC, each through this function (compare.py)
        from .batch.compare import map_each

        return map_each(chat, args, cell, run_map)
    namespace = user_namespace(chat.shell)
    if args.jobs < 1 or args.retries < 0:
        raise UsageError("-j must be at least 1 and --retries at least 0")
    if not cell.strip():
        raise UsageError("the cell is empty: write the template below the %%chat line ({item} is the item)")
    try:
        data = evaluate(args.map_, namespace)
        schema = evaluate(args.schema, namespace) if args.schema else None
        target = _into_target(args.into, namespace) if args.into else None
    except ContextError as exc:
        raise UsageError(str(exc)) from None
    if isinstance(data, (str, bytes)):
        raise UsageError(f"--map {args.map_}: a string is not a list of items (wrap it in a list)")
    options = {"base_url": args.base_url, "api_key_env": api_key_env(args.api_key_env)}
    try:
        result = batch_map(cell if args.raw else cell.strip(), data, chat=chat, provider=args.provider,
                           model=args.model, system=args.system, temperature=args.temperature,
                           max_tokens=args.max_tokens, timeout=args.timeout, proxy=args.proxy, budget=args.budget,
                           concurrency=args.jobs, retries=args.retries, json=args.json, schema=schema,
                           refresh=args.refresh, options={k: v for k, v in options.items() if v is not None})
    except (UnknownProviderError, ModelNotFoundError, ValueError, TypeError) as exc:
        raise UsageError(f"--map: {describe(exc)}") from None
    if target is not None:
        owner, key = target
        if (args.json or schema is not None) and result.index is not None:
            for column, values in result.to_frame(f"{key}.").items():
                owner[column] = values
        else:
            owner[key] = result.to_series(str(key)) if result.index is not None else list(result)
    if args.out:
        chat.shell.user_ns[args.out] = result.to_series(args.out) if result.index is not None else result
    return None


def _into_target(spec: str, namespace: Any) -> tuple[Any, Any]:
    """``df["label"]`` -> (df, "label"): where --into writes (a name, attribute or index, then [key])."""
    import ast

    from .context.values import ContextError, evaluate

    try:
        node = ast.parse(spec.strip(), mode="eval").body
    except SyntaxError:
        node = None
    if not isinstance(node, ast.Subscript) or not isinstance(node.slice, ast.Constant):
        raise ContextError(f"--into {spec}: write it as a column, e.g. df[\"label\"]")
    return evaluate(ast.unparse(node.value), namespace), node.slice.value


def run_cell(chat: Chat, args: Any, cell: str, offer_code: bool | None = None,
             keep: dict[str, Any] | None = None) -> None:
    """``%%chat``: one answer (or one agent run) streamed into the cell and stored.  ``keep`` (the Python
    API) receives the ``answer`` and the agent's ``source`` before a failure is raised."""
    from .context.values import context_block
    from .render import CellRenderer, TerminalRenderer, code_block, failure_lines, outcome
    from .render.outcome import label as outcome_label
    from .runner import Answer, run_blocking
    from .template import fill_template, user_namespace

    shell, config = chat.shell, chat.config
    prompt = (cell if args.raw else fill_template(cell, user_namespace(shell))).strip()
    if not prompt:
        raise UsageError("the cell is empty: write the prompt below the %%chat line")
    fmt = args.format or config.format
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r} (ChatConfig.format): use markdown, text or code")
    if args.max_tokens is not None and args.max_tokens < 1:
        raise UsageError(f"--max-tokens must be at least 1, not {args.max_tokens}")
    extra = {"max_tokens": args.max_tokens, "base_url": args.base_url, "api_key_env": api_key_env(args.api_key_env)}
    setup = setup_or_usage(chat, args.provider, args.model, extra)  # a user error changes nothing, not even --new
    cls, model = setup.provider, setup.model
    if cls.name == "Local" and not args.dry_run:
        _pull_first(model)  # -m hf:OWNER/NAME[/FILE]: downloaded once, with a progress bar; on disk: nothing
    agent = _agent_options(chat, args, setup)  # the tools checked before anything is sent
    attachments = _attachments(chat, args, cls, model)  # evaluated on every run: the data may have changed
    cell_id = chat.new_cell_id()
    warned = len(chat.warnings)  # what is said in this cell is said again in its final answer (the cell is cleared)
    dry_run = args.dry_run
    request, notes = chat.request(prompt, cell_id=cell_id, provider=args.provider, model=args.model,
                                  system=args.system, thread=args.thread, temperature=args.temperature,
                                  proxy=args.proxy, timeout=args.timeout, extra=extra, attachments=attachments,
                                  budget=getattr(args, "budget", None), fresh=args.new)
    if args.new and not dry_run:  # after the request: one refused (over the budget...) changes nothing
        chat.store.reset(chat.notebook, chat.thread_name(args.thread))
    if dry_run:
        return _show_request(request, attachments)
    answer = Answer(request.provider_name, request.model)
    answer.notes.extend(notes)
    label = outcome_label(request.provider_name, request.model)
    if in_kernel(shell):
        renderer = CellRenderer(label, fmt=fmt, rate=config.updates_per_second,
                                metadata={"provider": request.provider_name, "model": request.model,
                                          "thread": chat.thread_name(args.thread)}, attachments=attachments)
    else:
        renderer = TerminalRenderer(label, attachments=attachments)
    source = _agent_source(chat, request, agent, renderer) if agent else None
    run_blocking(request, answer, chat.saving(renderer, prompt, cell_id=cell_id, thread=args.thread,
                                              context=context_block(attachments)), source)
    if answer.ignored and (args.debug or config.show_traceback):
        answer.notes.append("ignored: " + ", ".join(f"{k} x{n}" for k, n in answer.ignored.items()))
    stored = source.stored() if source is not None else {}
    if source is not None and source.note():
        answer.notes.append(source.note())
    recorded = chat.record(prompt, answer, cell_id=cell_id, thread=args.thread, context=context_block(attachments),
                           **stored)
    answer.notes.extend(chat.warnings[warned:])
    result = outcome(answer, recorded)
    renderer.finish(answer, result)
    if args.out:
        shell.user_ns[args.out] = answer.text
    if keep is not None:
        keep.update(answer=answer, source=source)
    if (fmt == "code" if offer_code is None else offer_code) and answer.status == "ok" and has_code(answer.text):
        _suggest_code(chat, cell_id, code_block(answer.text)[0])
    if answer.status == "error":
        if args.debug or config.show_traceback:
            raise answer.error
        raise ChatFailed(failure_lines(answer))
    if answer.status == "interrupted":
        raise ChatFailed([f"■ {result.note}"])


def _agent_options(chat: Chat, args: Any, setup: Any) -> dict[str, Any] | None:
    """``--tools`` (else ``ChatConfig.tools``), ``--approve``, ``--max-steps``, checked; None without tools."""
    from .agent.approval import MODES
    from .agent.tool import ToolError
    from .agent.session import check_tools
    from .agent.toolsets import split_tools

    config = chat.config
    spec = args.tools if getattr(args, "tools", None) is not None else list(config.tools)
    if not split_tools(spec):
        if getattr(args, "approve", None) or getattr(args, "max_steps", None) is not None:
            raise UsageError("--approve and --max-steps go with --tools LIST (e.g. --tools notebook,python)")
        return None
    from .providers.setup import tools_problem

    if (problem := tools_problem(setup)) is not None:
        raise UsageError(f"{problem} (nothing was sent)")
    approve = getattr(args, "approve", None) or config.approve
    if approve not in MODES:
        raise UsageError(f"ChatConfig.approve must be one of {', '.join(MODES)}, not {approve!r}")
    steps = args.max_steps if getattr(args, "max_steps", None) is not None else config.max_steps
    if steps < 1:
        raise UsageError(f"--max-steps must be at least 1, not {steps}")
    try:
        names = check_tools(spec, chat.shell, dict(config.mcp_servers), config.context_budget)
    except ToolError as exc:
        raise UsageError(f"{exc} (nothing was sent)") from None
    return {"names": names, "approve": approve, "max_steps": steps,
            "ask_functions": getattr(args, "approve", None) == "ask"}


def _agent_source(chat: Chat, request: Any, agent: dict[str, Any], renderer: Any) -> Any:
    """The run's source for a cell with tools: the loop, asking in the cell through ``input()``."""
    from .agent.approval import Policy, input_asker
    from .agent.session import AgentSource

    def show(tool: Any, shown: str) -> None:
        _show_call(chat.shell, tool, shown)

    policy = Policy(agent["approve"], input_asker(show), ask_functions=agent["ask_functions"])
    return AgentSource(request, agent["names"], chat.shell, policy=policy, max_steps=agent["max_steps"],
                       budget=chat.config.context_budget, servers=dict(chat.config.mcp_servers))


def _show_call(shell: Any, tool: Any, shown: str) -> None:
    """Before the approval question: what would run (code highlighted in a notebook)."""
    from IPython.display import display

    from .render.html import STYLE, code_html, line_html

    what = f"{tool.shown} wants to run:" if tool.kind == "python" else f"the model calls {tool.shown}:"
    if not in_kernel(shell):
        print(f"{what}\n{shown}")
        return
    language = "python" if tool.kind == "python" else ""
    display({"text/plain": f"{what}\n{shown}",
             "text/html": STYLE + line_html(what, "warn") + f'<div class="ipyg4f-md">{code_html(shown, language)}</div>'},
            raw=True)


def has_code(text: str) -> bool:
    """A fenced code block, or an answer that is Python as a whole (not prose, not one bare word)."""
    import ast

    if "```" in text:
        return True
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    return any(not (isinstance(n, ast.Expr) and isinstance(n.value, (ast.Name, ast.Constant))) for n in tree.body)


_suggested: dict[str, str] = {}


def _suggest_code(chat: Chat, cell_id: str, code: str) -> None:
    """Offer the code as the next cell once per asking cell; a re-run does not stack another cell."""
    key = f"{chat.notebook}\0{cell_id}"
    if key in _suggested:
        return
    _suggested[key] = code
    chat.shell.set_next_input(code, replace=False)


# --- line commands -------------------------------------------------------------

def cmd_history(chat: Chat, args: Any) -> None:
    from IPython.display import display

    thread = chat.thread_name(args.thread)
    total = chat.store.count(chat.notebook, thread)
    if not total:
        display({"text/plain": f"thread {thread!r}: no exchanges yet"}, raw=True)
        return
    last = args.last if args.last and args.last > 0 else None
    exchanges = chat.store.exchanges(chat.notebook, thread, last=last)
    first = total - len(exchanges) + 1
    from .events import ToolStep

    rows = []
    for i, ex in enumerate(exchanges, first):
        rows.append([str(i), ex.provider, ex.status, _clip(ex.prompt), _clip(ex.answer)])
        for step in ex.step_list():  # the agent's tool calls, one line each
            try:
                line = ToolStep(**step).line()
            except TypeError:  # a row written by another version
                continue
            rows.append(["", "", f"↳ {ToolStep(**step).status}", _clip(line, 120), ""])
    show_table(["#", "provider", "status", "prompt", "answer"], rows)
    if first > 1:
        display({"text/plain": f"({first - 1} earlier exchanges not shown: %chat history --last 0 shows all)"}, raw=True)


def cmd_threads(chat: Chat, args: Any) -> None:
    from IPython.display import display

    names = chat.store.threads(chat.notebook)
    if not names:
        display({"text/plain": "no threads in this notebook yet"}, raw=True)
        return
    default = chat.config.thread
    show_table(["thread", "exchanges"], [[f"{n} *" if n == default else n, str(chat.store.count(chat.notebook, n))]
                                          for n in names])


def _clip(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cmd_reset(chat: Chat, args: Any) -> None:
    thread = chat.thread_name(args.thread)
    n = chat.store.reset(chat.notebook, thread)
    print(f"thread {thread!r} reset ({n} exchanges archived)")


def _pull_first(model: str) -> None:
    from .pull import pull_if_needed

    pull_if_needed(model)


def cmd_pull(chat: Chat, args: Any) -> None:
    """``%chat pull OWNER/NAME [FILE]``: download a GGUF model from the Hub once (Local then uses it offline)."""
    import time

    from .pull import pull, summary

    words = args.command[1:]
    if not 1 <= len(words) <= 2:
        raise UsageError("%chat pull needs a Hub repository and, optionally, a file: "
                         "%chat pull Qwen/Qwen2.5-0.5B-Instruct-GGUF [qwen2.5-0.5b-instruct-q4_k_m.gguf]")
    start = time.monotonic()
    result = pull(*words)
    print(summary(result, time.monotonic() - start))


#: what %chat fix asks (the error itself goes with it as an attachment)
FIX_PROMPT = ("Explain the error attached above in two or three sentences, then propose a fix: "
              "the corrected code of the cell that raised, in one Python code block.")


#: the thread %chat fix uses unless -c names one: started afresh each time (follow up with -c fix)
FIX_THREAD = "fix"


def cmd_fix(chat: Chat, args: Any) -> None:
    """Ask the current provider to explain the last error and fix it, in a thread of its own (``-c NAME``:
    that thread, as it is); ``-f code`` offers the fix's code, if the answer has any, as the next cell."""
    if args.thread is None:
        args.thread, args.new = FIX_THREAD, True
    args.error, args.raw, offer = True, True, args.format == "code"
    args.format = "markdown"  # the explanation is shown; the code goes to the next cell
    return run_cell(chat, args, FIX_PROMPT, offer_code=offer)


def cmd_panel(chat: Chat, args: Any) -> Any:
    if not in_kernel(chat.shell):
        raise UsageError("the panel is a widget: open it in JupyterLab, Notebook 7 or VS Code "
                         "(in a terminal, use %%chat)")
    from .panel import ChatPanel

    return ChatPanel(chat=chat)


def cmd_cost(chat: Chat, args: Any) -> None:
    from .pricing.report import cmd_cost as run

    return run(chat, args)


def cmd_export(chat: Chat, args: Any) -> None:
    from .export import cmd_export as run

    return run(chat, args)


def cmd_import(chat: Chat, args: Any) -> None:
    from .export import cmd_import as run

    return run(chat, args)


def cmd_pick(chat: Chat, args: Any) -> None:
    from .compare import cmd_pick as run

    return run(chat, args)


COMMANDS = {"providers": cmd_providers, "models": cmd_models, "history": cmd_history, "threads": cmd_threads,
            "reset": cmd_reset, "use": cmd_use, "panel": cmd_panel, "fix": cmd_fix, "pull": cmd_pull,
            "cost": cmd_cost, "export": cmd_export, "import": cmd_import, "pick": cmd_pick}
