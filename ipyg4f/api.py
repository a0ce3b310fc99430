"""The agent from Python: ``ipyg4f.agent("Why are there nulls?", tools="notebook,python")``.

It runs exactly what ``%%chat --tools ...`` runs (the same checks, approval,
rendering into the cell and history) and returns what happened as an
:class:`AgentResult`, so a run can be scripted and its steps inspected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["AgentResult", "agent"]


@dataclass
class AgentResult:
    text: str  #: the final answer
    status: str  #: ok, error or interrupted
    steps: list[Any] = field(default_factory=list)  #: :class:`ipyg4f.events.ToolStep`, in order
    messages: list[dict[str, Any]] = field(default_factory=list)  #: what the run added, OpenAI format
    outcome: str = ""  #: done, max_steps, interrupted or failed
    note: str = ""

    def __str__(self) -> str:
        return self.text


def agent(prompt: str, tools: str | list[str] = "notebook", *, provider: str | None = None, model: str | None = None,
          approve: str | None = None, max_steps: int | None = None, thread: str | None = None,
          system: str | None = None, notebook: bool = False, **options: Any) -> AgentResult:
    """Ask with tools, as ``%%chat --tools TOOLS`` would; the answer is shown in the cell as it streams.

    ``options``: any other ``%%chat`` option by its long name (``temperature``, ``max_tokens``,
    ``base_url``, ``api_key_env``, ``timeout``...).  Bad options raise ``UsageError``; a failed or
    interrupted run raises after the steps so far are stored."""
    from IPython import get_ipython
    from IPython.core.error import UsageError
    from IPython.core.magic_arguments import parse_argstring

    from .chat import get_chat
    from .commands import run_cell
    from .magics import ChatMagics

    shell = get_ipython()
    if shell is None:
        raise RuntimeError("ipyg4f.agent needs a running IPython shell (a notebook, or ipython)")
    args = parse_argstring(ChatMagics.chat, "")
    names = tools if isinstance(tools, str) else ",".join(tools)
    settings = {"tools": names, "provider": provider, "model": model, "approve": approve, "max_steps": max_steps,
                "thread": thread, "system": system, "notebook": notebook, "raw": True, **options}
    for name, value in settings.items():
        if not hasattr(args, name):
            raise UsageError(f"ipyg4f.agent: unknown option {name!r}")
        setattr(args, name, value)
    kept: dict[str, Any] = {}
    run_cell(get_chat(shell), args, prompt, keep=kept)
    answer, source = kept["answer"], kept["source"]
    loop = getattr(source, "loop", None)
    return AgentResult(answer.text, answer.status, list(answer.steps), list(loop.messages) if loop else [],
                       loop.outcome if loop else "", source.note() if source else "")
