"""``%%chat`` and ``%chat``: parse the options, hand the work to :mod:`ipyg4f.commands`."""

from __future__ import annotations

import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from .chat import Chat, detach, get_chat
from .config import FORMATS

SUBCOMMANDS = ("providers", "models", "history", "threads", "reset", "use", "panel", "fix", "pull")


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
    @argument("--max-tokens", type=int, metavar="N", help="longest answer, in tokens")
    @argument("--timeout", type=float, help="longest silence from the provider, in seconds")
    @argument("--base-url", metavar="URL", help="the provider's base URL (OpenAI-compatible and gpt4free providers)")
    @argument("--api-key-env", metavar="NAME", help="read the API key from this environment variable")
    @argument("-o", "--out", metavar="VAR", help="also store the answer text in this variable")
    @argument("-r", "--raw", action="store_true", help="send the body as written (no {name} filling)")
    @argument("--with", dest="with_", action="append", metavar="EXPR[,EXPR...]",
              help="attach a typed description of each value: df, model.coef_, Out[3], data['train']")
    @argument("--error", action="store_true", help="attach the last error (type, message, your frames, the cell)")
    @argument("--image", action="append", metavar="EXPR",
              help="attach an image: a Figure, PIL image, PNG/JPEG bytes, a path, Out[n], or last")
    @argument("--dry-run", action="store_true", help="show the messages that would be sent; send nothing")
    @argument("--map", dest="map_", metavar="EXPR",
              help="run the body once per item of EXPR (list, Series, DataFrame): {item}, {col}, {row.col}")
    @argument("--into", metavar="TARGET", help='with --map: write the answers into a column, e.g. df["label"]')
    @argument("-j", "--jobs", type=int, default=8, metavar="N", help="with --map: requests at once (default 8)")
    @argument("--retries", type=int, default=2, metavar="N", help="with --map: tries more per failed item")
    @argument("--json", action="store_true", help="with --map: ask for one JSON object per item, parsed")
    @argument("--schema", metavar="EXPR", help="with --map: a JSON-schema dict or pydantic class to validate")
    @argument("--refresh", action="store_true", help="with --map: ignore stored results, send every item")
    @argument("--debug", action="store_true", help="show the full traceback of a failure")
    @argument("--check", action="store_true", help="line mode: %%chat providers also checks each one answers")
    @argument("--last", type=int, default=50, metavar="N", help="line mode: %%chat history shows the last N (0: all)")
    @argument("command", nargs="*", help="line mode: providers | models [-p P] | history [-c NAME] | "
                                          "threads | reset [-c NAME] | use -p P [-m M] | panel | fix [-f code] | "
                                          "pull OWNER/NAME [FILE]")
    @line_cell_magic
    def chat(self, line: str, cell: str | None = None):
        """Chat with a language model.

        Cell mode: the body is the prompt; the answer streams into the cell::

            %%chat -p OpenAI -m gpt-4o-mini
            Explain {topic} in two sentences.

        Line mode manages providers, models, history and defaults::

            %chat providers [--check]  %chat models -p OpenAI  %chat history [-c NAME]
            %chat threads        %chat reset -c NAME        %chat use -p OpenAI -m M
            %chat panel          %chat fix [-f code]  (explain the last error, propose a fix)
            %chat pull OWNER/NAME [FILE]  (a GGUF model from the Hugging Face Hub, for -p Local)

        Context: ``--with df,model.coef_`` attaches typed descriptions of values,
        ``--error`` the last error, ``--image last`` the last plot shown; the
        answer lists what was sent.
        """
        from . import commands  # here, not at the top: %load_ext stays cheap

        args = _unquoted(parse_argstring(self.chat, line))
        if cell is None:
            return self._line(commands, args)
        if args.command:
            raise UsageError(f"unexpected words after %%chat options: {' '.join(args.command)!r}")
        if args.map_:
            return commands.run_map(self.state, args, cell)
        if args.into or args.json or args.schema or args.refresh:
            raise UsageError("--into, --json, --schema and --refresh go with --map EXPR")
        return commands.run_cell(self.state, args, cell)

    def _line(self, commands, args):
        if not args.command:
            raise UsageError(f"%chat needs a command: {', '.join(SUBCOMMANDS)} (or use %%chat as a cell magic)")
        name, rest = args.command[0], args.command[1:]
        if name not in SUBCOMMANDS:
            raise UsageError(f"unknown %chat command {name!r}; use one of: {', '.join(SUBCOMMANDS)}")
        if rest and name != "pull":  # pull takes the repository and file as words
            raise UsageError(f"unexpected words after %chat {name}: {shlex.join(rest)}")
        return commands.COMMANDS[name](self.state, args)


def _unquoted(args: Any) -> Any:
    """IPython's argument splitting keeps the quotes of ``-s "Be brief."``: drop one surrounding pair."""
    for name, value in vars(args).items():
        if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            setattr(args, name, value[1:-1])
        elif isinstance(value, list):
            setattr(args, name, [v[1:-1] if isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] and v[0] in "'\""
                                 else v for v in value])
    return args


_loaded: dict[int, ChatMagics] = {}


def load(shell) -> None:
    """Register the magics on top of the shell's chat state (once per shell)."""
    if id(shell) in _loaded:
        return
    magics = ChatMagics(shell, get_chat(shell))
    shell.register_magics(magics)
    _loaded[id(shell)] = magics


def unload(shell) -> None:
    """Undo everything :func:`load` did."""
    magics = _loaded.pop(id(shell), None)
    if magics is None:
        return
    for kind in ("line", "cell"):
        shell.magics_manager.magics[kind].pop("chat", None)
    shell.magics_manager.registry.pop(type(magics).__name__, None)
    if magics in shell.configurables:  # a Magics registers itself as a configurable too
        shell.configurables.remove(magics)
    detach(shell)
