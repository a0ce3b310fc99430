"""``%%chat`` and ``%chat``: parse the options, hand the work to :mod:`ipyg4f.commands`."""

from __future__ import annotations

import difflib
import shlex
import textwrap
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.utils.process import arg_split

from .chat import Chat, detach, get_chat
from .config import FORMATS

SUBCOMMANDS = ("providers", "models", "history", "threads", "reset", "use", "panel", "fix", "pull", "cost",
               "export", "import", "pick")
#: line commands that take words after their name (a path, a repository, a column)
WORDS = {"pull", "export", "import", "pick"}


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
    @argument("-T", "--tools", metavar="LIST", help="tools the model may use: notebook, python, your functions' "
                                                     "names, mcp:NAME (comma-separated)")
    @argument("--approve", choices=("ask", "auto", "never"),
              help="run_python and MCP calls: ask (default), auto (run whatever the model writes) or never")
    @argument("--max-steps", type=int, metavar="N", help="with --tools: most requests in this cell (default 10)")
    @argument("--notebook", action="store_true", help="attach the executed cells (newest first, within the budget)")
    @argument("--compare", metavar="SPEC[,SPEC...]", help="the same prompt to several providers, side by side: "
                                                          "PROVIDER or PROVIDER=MODEL")
    @argument("--race", metavar="SPEC[,SPEC...]", help="the same prompt to several providers; the first to answer "
                                                       "wins, the others are cancelled")
    @argument("--budget", type=float, metavar="USD", help="most this cell (or --map batch) may spend")
    @argument("--all", dest="all_", action="store_true", help="line mode: %%chat cost --all covers every thread")
    @argument("--debug", action="store_true", help="show the full traceback of a failure")
    @argument("--check", action="store_true", help="line mode: %%chat providers also checks each one answers")
    @argument("--last", type=int, default=50, metavar="N", help="line mode: %%chat history shows the last N (0: all)")
    @argument("command", nargs="*", help="line mode: providers | models [-p P] | history [-c NAME] | "
                                          "threads | reset [-c NAME] | use -p P [-m M] | panel | fix [-f code] | "
                                          "pull OWNER/NAME [FILE] | cost [--all] | export PATH | import PATH | "
                                          "pick N")
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

        try:
            # intermixed: words and options in any order (%chat export -c NAME PATH)
            args = _unquoted(self.chat.parser.parse_intermixed_args(arg_split(line, strict=False)))
        except UsageError as exc:
            words = _words(line)
            if HELP & set(words):
                return print(self._help(words, cell is not None))
            raise UsageError(_did_you_mean(str(exc), words, self.chat.parser)) from None
        if cell is None:
            return self._line(commands, args)
        if args.command:
            raise UsageError(f"unexpected words after %%chat options: {' '.join(args.command)!r}")
        if args.compare and args.race:
            raise UsageError("--compare and --race do not go together: choose one")
        if args.map_:
            return commands.run_map(self.state, args, cell)
        if args.compare or args.race:
            from .compare import run_cell as run_compare

            return run_compare(self.state, args, cell)
        if args.into or args.json or args.schema or args.refresh:
            raise UsageError("--into, --json, --schema and --refresh go with --map EXPR")
        return commands.run_cell(self.state, args, cell)

    def _line(self, commands, args):
        if not args.command:
            raise UsageError(f"%chat needs a command: {', '.join(SUBCOMMANDS)} (or use %%chat as a cell magic)")
        name, rest = args.command[0], args.command[1:]
        if name not in SUBCOMMANDS:
            raise UsageError(f"unknown %chat command {name!r}{_suggest(name, SUBCOMMANDS)}; "
                             f"use one of: {', '.join(SUBCOMMANDS)}")
        if rest and name not in WORDS:  # pull takes the repository and file as words, export a path...
            raise UsageError(f"unexpected words after %chat {name}: {shlex.join(rest)}")
        return commands.COMMANDS[name](self.state, args)

    def _help(self, words: list[str], cell: bool) -> str:
        """The usage: of ``%chat COMMAND`` when a command is named, else of the whole magic."""
        named = next((w for w in words if w in SUBCOMMANDS), None) if not cell else None
        if named:
            usage, about = SUBCOMMAND_HELP.get(named, (f"%chat {named}", ""))
            about = f"\n\n{textwrap.fill(about, 88)}" if about else ""
            return f"usage: {usage}{about}\n\n(%chat --help lists every option)"
        text = (self.chat.__doc__ or "").removeprefix("::").strip("\n")
        head, _, rest = text.partition("\n\n")
        first, *more = textwrap.dedent(head).strip().splitlines()
        first = "usage: " + ("%" + first if cell else first)
        indent = " " * first.index("[")
        return "\n".join([first, *(indent + line.strip() for line in more)]) + f"\n\n{rest}"


#: what ``%chat COMMAND --help`` prints: the usage line and what the command does
SUBCOMMAND_HELP = {
    "providers": ("%chat providers [--check] [-p NAME]",
                  "The providers and whether each is set up (no network is used); --check also asks each one set "
                  "up whether it answers; -p NAME shows that one only. * marks the default."),
    "models": ("%chat models [-p PROVIDER] [--base-url URL] [--api-key-env NAME]",
               "The models a provider offers (the default provider when -p is not given); * marks the default."),
    "history": ("%chat history [-c NAME] [--last N]",
                "The exchanges of a thread (the default one unless -c), the last 50 unless --last N (0: all)."),
    "threads": ("%chat threads", "The threads of this notebook and how many exchanges each holds."),
    "reset": ("%chat reset [-c NAME]", "Start a thread afresh: its exchanges are archived, not deleted."),
    "use": ("%chat use -p PROVIDER [-m MODEL]", "Make a provider (and a model) the default for this session."),
    "panel": ("%chat panel", "The chat panel: a widget for JupyterLab, Notebook 7 and VS Code."),
    "fix": ("%chat fix [-f code] [-c NAME] [-p PROVIDER] [-m MODEL]",
            "Send the last error (its type, message, your frames and the cell that raised) and ask for an "
            "explanation and a fix. It uses a thread of its own, 'fix' (started afresh each time; follow up with "
            "%%chat -c fix), unless -c NAME says which thread. -f code offers the fix as the next cell when the "
            "answer has code."),
    "cost": ("%chat cost [-c NAME] [--all]",
             "Tokens in and out and the cost of a thread's exchanges (of every thread with --all), by provider "
             "and model."),
    "export": ("%chat export [-c NAME] PATH",
               "Write a thread as Markdown (PATH.md) or as OpenAI-format messages (PATH.json, for %chat import)."),
    "import": ("%chat import PATH [-c NAME]", "Read a thread written by %chat export PATH.json into a thread."),
    "pick": ("%chat pick N [-c NAME]",
             "Continue the thread with column N of its last --compare cell (until then its context is the prompt)."),
    "pull": ("%chat pull OWNER/NAME [FILE]",
             "Download a GGUF model from the Hugging Face Hub once; -p Local -m NAME then uses it offline."),
}
HELP = {"-h", "--help"}


def _words(line: str) -> list[str]:
    try:
        return arg_split(line)
    except ValueError:  # unbalanced quotes: argparse said so already
        return line.split()


def _suggest(word: str, known: Any) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known`` (case ignored), else ``""``."""
    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.75)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""


def _did_you_mean(message: str, words: list[str], parser: Any) -> str:
    """argparse's message, plus the closest real option for each option it did not know."""
    if "unrecognized arguments" not in message:
        return message
    known = [s for action in parser._actions for s in action.option_strings]
    unknown = [w.split("=", 1)[0] for w in words if w.startswith("-") and len(w) > 1 and not _number(w)]
    unknown = [w for w in unknown if not any(k.startswith(w) for k in known if w.startswith("--")) and w not in known]
    hints = [close[0] for w in unknown if (close := difflib.get_close_matches(w, known, n=1, cutoff=0.75))]
    return f"{message} (did you mean {' '.join(hints)}?)" if hints else message


def _number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


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
    from .context import lasterror

    lasterror.track(shell)


def unload(shell) -> None:
    """Undo everything :func:`load` did."""
    magics = _loaded.pop(id(shell), None)
    if magics is None:
        return
    from .context import lasterror

    lasterror.untrack(shell)
    for kind in ("line", "cell"):
        shell.magics_manager.magics[kind].pop("chat", None)
    shell.magics_manager.registry.pop(type(magics).__name__, None)
    if magics in shell.configurables:  # a Magics registers itself as a configurable too
        shell.configurables.remove(magics)
    detach(shell)
