"""The panel's Tools field and Approve choice: the agent's loop (:mod:`ipyg4f.agent`) for one Send.

The panel's answer is rendered on a thread of its own (:meth:`ipyg4f.runner.Run.start`), and
synchronous tools run on that thread (:meth:`~ipyg4f.runner.Run.run_sync`), beside whatever cell the
kernel runs meanwhile.  So the model's code is never run without asking here: the panel offers
``ask`` (Approve / Refuse in the transcript) and ``never``; ``ChatConfig.approve = "auto"`` means
``ask`` in the panel (``%%chat --approve auto`` runs on the cell's own thread).
"""

from __future__ import annotations

from typing import Any, Callable

from ..agent.toolsets import split_tools

__all__ = ["APPROVE_OPTIONS", "agent_source", "panel_mode"]

APPROVE_OPTIONS = [("ask before running code", "ask"), ("never run code", "never")]


def panel_mode(mode: str) -> str:
    """``ChatConfig.approve`` as the panel applies it: ``never`` stays, anything else asks."""
    return "never" if mode == "never" else "ask"


def agent_source(chat: Any, request: Any, spec: str, mode: str) -> Callable[[Any], Any] | None:
    """``make(ask) -> AgentSource`` for ``request`` with the tools of ``spec``, or None without tools;
    a ValueError says what is wrong (a provider without tools, a name that is not defined...)."""
    if not split_tools(spec):
        return None
    from ..agent.approval import Policy
    from ..agent.session import AgentSource, check_tools
    from ..agent.tool import ToolError

    config, shell = chat.config, chat.shell
    if shell is None:
        raise ValueError("tools need the kernel's shell (open the panel with %chat panel)")
    if not getattr(request.provider, "supports_tools", False):
        raise ValueError(f"{request.provider_name} does not take tools: choose an OpenAI-compatible server, "
                         "Local or g4f:Custom, or empty the Tools field")
    if config.max_steps < 1:
        raise ValueError(f"ChatConfig.max_steps must be at least 1, not {config.max_steps}")
    try:
        names = check_tools(spec, shell, dict(config.mcp_servers), config.context_budget)
    except ToolError as exc:
        raise ValueError(str(exc).replace("--tools ", "Tools: ", 1)) from None
    policy_mode = panel_mode(mode)

    def make(ask: Callable[[Any, str], str]) -> Any:
        return AgentSource(request, names, shell, policy=Policy(policy_mode, ask), max_steps=config.max_steps,
                           budget=config.context_budget, servers=dict(config.mcp_servers))

    return make
