"""One cell's agent run on the runner: the tool loop is the run's source.

:class:`AgentSource` is handed to :class:`ipyg4f.runner.Run` as ``source``: on
the worker loop it opens the tools (MCP servers connected for the run), runs
:class:`~ipyg4f.agent.loop.ToolLoop` with one provider stream per request (the
runner's :func:`~ipyg4f.runner.stream`, with its timeout, feeding the loop
directly), and puts the text, the events and each finished step into the
run's answer.  Synchronous tools and the approval question run on the cell's
thread through :meth:`Run.run_sync`.  Usage is summed over the requests.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable

from ..events import Event, Usage
from ..runner import ChatRequest, Run, stream
from .approval import NO_INPUT, Policy
from .loop import ToolLoop
from .mcp import check_config
from .tool import ToolError
from .toolsets import local_tools, open_tools, split_tools

__all__ = ["AgentSource", "check_tools"]


def check_tools(spec: str | list[str], shell: Any, servers: dict[str, Any], budget: int) -> list[str]:
    """The tool names of ``spec``, checked now (the user's functions found, MCP servers configured);
    a :class:`ToolError` says what is wrong before anything is sent."""
    names = split_tools(spec)
    _, wanted = local_tools(names, shell, budget)
    for server in wanted:
        if server not in servers:
            known = ", ".join(sorted(servers)) or "none is configured"
            raise ToolError(f"--tools mcp:{server}: no such server in ChatConfig.mcp_servers ({known})")
        check_config(server, servers[server])
    return names


class AgentSource:
    """The tool loop over ``names`` for ``request`` (its messages end with the user's prompt)."""

    def __init__(self, request: ChatRequest, names: list[str], shell: Any, *, policy: Policy, max_steps: int,
                 budget: int, servers: dict[str, Any] | None = None) -> None:
        self.request, self.names, self.shell = request, names, shell
        self.policy, self.max_steps, self.budget = policy, max_steps, budget
        self.servers = servers or {}
        self.loop: ToolLoop | None = None
        self._usage: Usage | None = None

    async def __call__(self, run: Run) -> None:
        async with open_tools(self.names, self.shell, self.servers, self.budget) as tools:
            self.loop = loop = ToolLoop(tools, self.policy, max_steps=self.max_steps, budget=self.budget,
                                        on_text=run.put, on_event=self._event(run.put), on_step=run.put,
                                        run_sync=run.run_sync)

            def request(messages: list[dict[str, Any]], specs: list[dict[str, Any]]) -> Any:
                kwargs = {**self.request.kwargs, "tools": specs} if specs else self.request.kwargs
                return stream(dataclasses.replace(self.request, messages=messages, kwargs=kwargs), loop.take)

            await loop.run(request, list(self.request.messages))

    def _event(self, put: Callable[[Any], None]) -> Callable[[Event], None]:
        def event(item: Event) -> None:
            if isinstance(item, Usage):  # the cell's usage is that of all its requests
                before = self._usage
                if before is not None:
                    item = Usage(_add(before.prompt_tokens, item.prompt_tokens),
                                 _add(before.completion_tokens, item.completion_tokens))
                self._usage = item
            put(item)

        return event

    # -- what is stored ---------------------------------------------------------------
    def stored(self) -> dict[str, str]:
        """The history's ``tool_messages`` and ``steps`` of this run (JSON): the assistant turns with
        their calls and the results, without the final answer (stored as the answer itself)."""
        loop = self.loop
        if loop is None or not loop.steps and not any(m.get("tool_calls") for m in loop.messages):
            return {}
        messages = list(loop.messages)
        if messages and messages[-1].get("role") == "assistant" and not messages[-1].get("tool_calls"):
            messages.pop()
        return {"tool_messages": json.dumps(messages, ensure_ascii=False),
                "steps": json.dumps([s.as_dict() for s in loop.steps], ensure_ascii=False)}

    def note(self) -> str:
        """The loop's note (the step limit...), and how to allow tools when nobody could be asked."""
        if self.loop is None:
            return ""
        notes = [self.loop.note] if self.loop.note else []
        if any(s.result.startswith(NO_INPUT) for s in self.loop.steps):
            notes.append("a call was refused: no input is possible here (nbconvert, papermill); "
                         "--approve auto runs the model's code without asking")
        return "; ".join(notes)


def _add(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else a + b
