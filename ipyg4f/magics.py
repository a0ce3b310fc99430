"""``%%chat`` and ``%chat``: parse options, hand the work to :mod:`ipyg4f.chat` and the runner."""

from __future__ import annotations

import shlex
import string
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from .chat import Chat
from .config import ChatConfig

FORMATS = ("markdown", "text", "code")
SUBCOMMANDS = ("providers", "models", "history", "threads", "reset", "use", "panel")


class ChatFailed(Exception):
    """A provider failure, shown as a short message (no traceback wall)."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31m{self.lines[0]}\x1b[0m", *self.lines[1:]]


def fill_template(template: str, namespace: dict[str, Any]) -> str:
    """Fill ``{name}`` (attributes and indexes too, e.g. ``{In[3]}``) from the namespace.

    Unknown names stay as written; ``{{``/``}}`` are braces; a template that
    does not parse is left as it is.
    """
    formatter = string.Formatter()
    try:
        parsed = list(formatter.parse(template))
    except ValueError:
        return template
    out = []
    for literal, field, spec, conversion in parsed:
        out.append(literal)
        if field is None:
            continue
        original = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        try:
            value, _ = formatter.get_field(field, (), namespace)
            value = formatter.convert_field(value, conversion)
            out.append(formatter.format_field(value, spec or ""))
        except Exception:  # unknown name, bad index or spec: keep the text as the user wrote it
            out.append(original)
    return "".join(out)


def _in_kernel(shell: Any) -> bool:
    return type(shell).__name__ == "ZMQInteractiveShell"


@magics_class
class ChatMagics(Magics):
    def __init__(self, shell, chat: Chat):
        super().__init__(shell)
        self.state = chat

    @magic_arguments()
    @argument("-p", "--provider", help="provider name (see %%chat providers); default: the configured one")
    @argument("-m", "--model", help="model name; default: the provider's")
    @argument("-s", "--system", help="system prompt")
    @argument("-c", "--chat", dest="thread", metavar="NAME", help="conversation thread (default: 'default')")
    @argument("--new", action="store_true", help="start this thread afresh (earlier exchanges are archived)")
    @argument("-f", "--format", choices=FORMATS, help="answer format: markdown (default), text or code")
    @argument("-t", "--temperature", type=float, help="sampling temperature")
    @argument("--proxy", help="proxy URL, e.g. $MY_PROXY (never echoed)")
    @argument("--timeout", type=float, help="longest silence from the provider, in seconds")
    @argument("-o", "--out", metavar="VAR", help="also store the answer text in this variable")
    @argument("-r", "--raw", action="store_true", help="send the body as written (no {name} filling)")
    @argument("--debug", action="store_true", help="show the full traceback of a failure")
    @argument("--last", type=int, default=50, metavar="N", help="line mode: %%chat history shows the last N (0: all)")
    @argument("command", nargs="*", help="line mode: providers | models [-p P] | history [-c NAME] | "
                                          "threads | reset [-c NAME] | use -p P [-m M] | panel")
    @line_cell_magic
    def chat(self, line: str, cell: str | None = None):
        """Chat with a language model.

        Cell mode: the body is the prompt; the answer streams into the cell::

            %%chat -p OpenAI -m gpt-4o-mini
            Explain {topic} in two sentences.

        Line mode manages providers, models, history and defaults::

            %chat providers      %chat models -p OpenAI     %chat history [-c NAME]
            %chat threads        %chat reset -c NAME        %chat use -p OpenAI -m M
            %chat panel
        """
        args = parse_argstring(self.chat, line)
        if cell is None:
            return self._line(args)
        if args.command:
            raise UsageError(f"unexpected words after %%chat options: {' '.join(args.command)!r}")
        from .commands import run_cell

        return run_cell(self, args, cell)

    def _line(self, args):
        from . import commands

        if not args.command:
            raise UsageError(f"%chat needs a command: {', '.join(SUBCOMMANDS)} (or use %%chat as a cell magic)")
        name, rest = args.command[0], args.command[1:]
        if name not in SUBCOMMANDS:
            raise UsageError(f"unknown %chat command {name!r}; use one of: {', '.join(SUBCOMMANDS)}")
        if rest:
            raise UsageError(f"unexpected words after %chat {name}: {shlex.join(rest)}")
        return getattr(commands, f"cmd_{name}")(self, args)


_loaded: dict[int, tuple[ChatMagics, Any]] = {}


def load(shell) -> None:
    """Register the magics, the settings and the ``pre_run_cell`` hook (once per shell)."""
    if id(shell) in _loaded:
        return
    config = ChatConfig(parent=shell)
    shell.configurables.append(config)
    chat = Chat(shell, config)
    magics = ChatMagics(shell, chat)
    shell.register_magics(magics)
    shell.events.register("pre_run_cell", chat.pre_run_cell)
    _loaded[id(shell)] = (magics, config)


def unload(shell) -> None:
    """Undo everything :func:`load` did."""
    entry = _loaded.pop(id(shell), None)
    if entry is None:
        return
    magics, config = entry
    shell.events.unregister("pre_run_cell", magics.state.pre_run_cell)
    for kind in ("line", "cell"):
        shell.magics_manager.magics[kind].pop("chat", None)
    shell.magics_manager.registry.pop(type(magics).__name__, None)
    for configurable in (config, magics):  # a Magics registers itself as a configurable too
        if configurable in shell.configurables:
            shell.configurables.remove(configurable)
    magics.state.close()


def get_chat(shell=None) -> Chat:
    """The loaded extension's chat state (loading it if needed)."""
    if shell is None:
        from IPython import get_ipython

        shell = get_ipython()
    if shell is None:
        raise RuntimeError("ipyg4f needs a running IPython shell")
    load(shell)
    return _loaded[id(shell)][0].state
