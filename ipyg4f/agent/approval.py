"""Which tool calls run, which ask first, and how an answer is read.

Modes (``--approve``, ``ChatConfig.approve``):

``ask``    (default) ``run_python`` and MCP tools ask before every call
``auto``   everything runs without asking: the model's code runs in your kernel, with your permissions
``never``  the acting tools (``run_python``, MCP) are not offered, and a call to one is refused

Read-only tools (the ``notebook`` set) never ask.  The user's own functions run
without asking unless ``ask_functions`` is set (the front end sets it when
``--approve ask`` is given explicitly).  The asking itself is a callable passed
in — ``ask(tool, shown_call) -> answer text`` — so the front end decides how
(the kernel's ``input()``, a button in the panel): ``y``/``yes`` runs it,
``a``/``all`` runs it and every later call of this cell, anything else refuses.
An ``ask`` that cannot ask (no stdin: nbconvert, papermill) raises; the call is
then refused and the model told why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from .tool import FUNCTION, MCP, PYTHON, READ, Tool

__all__ = ["MODES", "Decision", "Policy", "read_answer", "shown_call", "input_asker", "QUESTION"]

MODES = ("ask", "auto", "never")
QUESTION = "Run it? [y]es / [n]o / [a]ll for this cell: "
#: how a call is refused when nobody can be asked
NO_INPUT = "refused: the user could not be asked"
Ask = Callable[[Tool, str], str]


@dataclass(frozen=True)
class Decision:
    """Whether one call may run; ``reason`` is what the model is told when it may not."""

    approved: bool
    asked: bool = False
    reason: str = ""


def read_answer(text: str) -> str:
    """``"yes"``, ``"all"`` or ``"no"`` for what the user typed (anything unclear is no)."""
    word = (text or "").strip().lower()
    if word in ("y", "yes"):
        return "yes"
    if word in ("a", "all"):
        return "all"
    return "no"


def shown_call(tool: Tool, arguments: dict[str, Any]) -> str:
    """The call as the user is shown it: the code for ``run_python``, else ``name(arguments)``."""
    if tool.kind == PYTHON and isinstance(arguments.get("code"), str):
        return arguments["code"]
    inside = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in arguments.items())
    return f"{tool.shown}({inside})"


def input_asker(show: Callable[[Tool, str], Any], read: Callable[[str], str] = input) -> Ask:
    """An ``ask`` for a kernel or a terminal: ``show`` the call (the front end highlights the code),
    then ``read`` the answer with the kernel's input prompt.  Where no input is possible ``input()``
    raises (IPython's ``StdinNotImplementedError``) and the call is refused."""
    def ask(tool: Tool, shown: str) -> str:
        show(tool, shown)
        return read(QUESTION)

    return ask


class Policy:
    """The approval mode of one cell and what was answered in it (``all`` lasts for the cell)."""

    def __init__(self, mode: str = "ask", ask: Ask | None = None, *, ask_functions: bool = False) -> None:
        if mode not in MODES:
            raise ValueError(f"approve must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode = mode
        self.ask = ask
        self.ask_functions = ask_functions
        self.all = False

    def offered(self, tool: Tool) -> bool:
        """Whether the model is offered ``tool`` at all (``never`` withholds the acting tools)."""
        return not (self.mode == "never" and tool.kind in (PYTHON, MCP))

    def needs_asking(self, tool: Tool) -> bool:
        if tool.kind == READ or self.mode == "auto" or self.all:
            return False
        if tool.kind == FUNCTION:
            return self.ask_functions
        return True

    def decide(self, tool: Tool, arguments: dict[str, Any]) -> Decision:
        """Ask if needed; a ``KeyboardInterrupt`` while asking goes through (it stops the loop)."""
        if not self.offered(tool):
            return Decision(False, reason=f"refused: {tool.shown} is not allowed in this cell (--approve never)")
        if not self.needs_asking(tool):
            return Decision(True)
        if self.ask is None:
            return Decision(False, reason="refused: the user cannot be asked here; they can allow tools "
                                          "with --approve auto")
        try:
            answer = read_answer(self.ask(tool, shown_call(tool, arguments)))
        except Exception:  # no stdin (nbconvert, papermill, allow_stdin false), a closed panel...
            return Decision(False, asked=True, reason=f"{NO_INPUT} (no input possible "
                                                      "here); they can allow tools with --approve auto")
        if answer == "all":
            self.all = True
        if answer == "no":
            return Decision(False, asked=True, reason="refused by the user")
        return Decision(True, asked=True)
