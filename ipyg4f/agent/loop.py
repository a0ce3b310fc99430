"""The tool loop: request with the tools, stream the answer, run its tool calls, send the results, repeat.

Independent of providers: ``request(messages, tools)`` is any function giving an
async iterator of ``str`` pieces and typed events (the runner's provider stream);
tool calls arrive as :class:`~ipyg4f.agent.calls.ToolCallPart` events (streamed
pieces with ids), or as one :class:`~ipyg4f.events.ToolCalls` carrying each
call's name and arguments (``Local`` does that; ids are made up).  Whatever
the model sends is untrusted: an unknown tool, arguments that are not JSON or do
not fit the schema, a refused call, a tool that raises — each becomes a short
``error: ...`` result the model receives, and the loop goes on.  Results are cut
to the budget and redacted (:func:`ipyg4f.http.redact`) before they are shown,
stored or sent back.  ``max_steps`` bounds the requests; reaching it ends the
run with a note (the calls still asked for get a "not run" result, so the
messages stay a valid conversation).  A ``KeyboardInterrupt`` or a cancellation
stops at once: the steps so far stay in :attr:`ToolLoop.steps` and
:attr:`ToolLoop.messages` (open calls get an "interrupted" result), then it is
raised again.

Synchronous tools and the asking run through ``run_sync`` (default: right here,
on the loop's thread); the front end passes a function that runs them on the
kernel's own thread when the loop runs on the runner's worker loop.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence

from ..context.values import fit, shorten
from ..events import Event, Reasoning, ThinkSplitter, ToolCallPart, ToolCalls, ToolStep
from ..http import redact
from .approval import Policy
from .calls import Call, Calls, arguments_shown, assistant_message, tool_message
from .schema import check, parse_arguments
from .tool import MCP, Tool, ToolError, ToolOutput, result_text

__all__ = ["Step", "ToolLoop", "DONE", "MAX_STEPS", "INTERRUPTED", "FAILED"]

DONE, MAX_STEPS, INTERRUPTED, FAILED = "done", "max_steps", "interrupted", "failed"
Request = Callable[[list[dict[str, Any]], list[dict[str, Any]]], AsyncIterator[Any]]


#: one tool call as it went (an event the loop sends with ``on_step``)
Step = ToolStep


async def _inline(fn: Callable[[], Any]) -> Any:
    return fn()


class ToolLoop:
    """One run of the loop over ``tools`` (those ``policy`` withholds are not offered)."""

    def __init__(self, tools: Sequence[Tool], policy: Policy | None = None, *, max_steps: int = 10,
                 budget: int = 4000, on_text: Callable[[str], Any] | None = None,
                 on_event: Callable[[Event], Any] | None = None, on_step: Callable[[Step], Any] | None = None,
                 run_sync: Callable[[Callable[[], Any]], Awaitable[Any]] | None = None) -> None:
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        self.policy = policy or Policy()
        self.tools = {t.name: t for t in tools if self.policy.offered(t)}
        self.max_steps, self.budget = max_steps, budget
        self.on_text, self.on_event, self.on_step = on_text, on_event, on_step
        self.run_sync = run_sync or _inline
        self.messages: list[dict[str, Any]] = []  #: what this run added (assistant, tool), OpenAI format
        self.steps: list[Step] = []
        self.requests = 0
        self.outcome = ""  #: DONE, MAX_STEPS, INTERRUPTED or FAILED (a request raised) once it ended
        self.note = ""
        self.text = ""  #: the text of the last answer (the final one when DONE)
        self._open: list[Call] = []
        self._calls, self._whole, self._think = Calls(), [], ThinkSplitter()

    def specs(self) -> list[dict[str, Any]]:
        return [t.spec() for t in self.tools.values()]

    async def run(self, request: Request, messages: list[dict[str, Any]]) -> str:
        """Run to the final answer (or the step limit); returns its text."""
        try:
            while True:
                self.requests += 1
                self.text = ""
                calls, named = await self._stream(request([*messages, *self.messages], self.specs()))
                if not calls:
                    self.messages.append({"role": "assistant", "content": self.text})
                    if named:
                        self.note = (f"the model asked for {', '.join(named)} but the provider sent no arguments: "
                                     "it does not pass tool calls on")
                    self.outcome = DONE
                    return self.text
                calls = calls.done(self.requests)  # run as sent; stored and shown redacted
                stored = [Call(c.id, c.name, redact(c.arguments)) for c in calls]
                self.messages.append(assistant_message(self.text, stored))
                self._open = list(calls)
                if self.requests >= self.max_steps:
                    self._close("not run: the step limit of this cell was reached")
                    wanted = ", ".join(dict.fromkeys(c.name for c in calls))
                    self.note = f"stopped after {self.requests} requests (--max-steps {self.max_steps}); " \
                                f"the model still wanted to call {wanted}"
                    self.outcome = MAX_STEPS
                    return self.text
                while self._open:
                    call = self._open[0]
                    result = await self._execute(call)
                    self._open.pop(0)
                    self.messages.append(tool_message(call, result))
        except (KeyboardInterrupt, asyncio.CancelledError):
            self.outcome = INTERRUPTED
            self.note = "interrupted"
            self._close("interrupted by the user")
            raise
        except Exception:  # the provider failed: the steps so far stay, the caller words the error
            self.outcome = FAILED
            self._close("not run: the request failed")
            raise

    async def _stream(self, source: Any) -> tuple[Calls, list[str]]:
        """Read one answer: ``source`` is an async iterator of items, or an awaitable that hands each item
        to :meth:`take` itself (the runner's stream does: no generator between the wire and the loop)."""
        self._calls, self._whole, self._think = Calls(), [], ThinkSplitter()
        if hasattr(source, "__aiter__"):
            async for item in source:
                self.take(item)
        else:
            await source
        self._text(self._think.close())
        calls, named = self._calls, []
        for event in self._whole if not calls else ():  # parts are the fuller account when a provider sends both
            if len(event.arguments) == len(event.names):  # whole calls with their arguments (Local does this)
                for name, arguments in zip(event.names, event.arguments):
                    calls.add(ToolCallPart(len(calls.parts), "", name, arguments))
            else:
                named.extend(event.names)
        return calls, named

    def take(self, item: Any) -> None:
        """One item of the answer being read: text (``<think>`` blocks split off, as thinking events),
        tool-call parts, or another event (handed to ``on_event``)."""
        if isinstance(item, str):
            if self._think.plain(item):
                self.text += item
                if self.on_text is not None and item:
                    self.on_text(item)
            else:
                self._text(self._think.feed(item))
        elif isinstance(item, ToolCallPart):
            self._calls.add(item)
        elif isinstance(item, ToolCalls):
            self._whole.append(item)
        elif isinstance(item, Event) and self.on_event is not None:
            self.on_event(item)

    def _text(self, pieces: list[Any]) -> None:
        for piece in pieces:
            if isinstance(piece, Reasoning):
                if self.on_event is not None:
                    self.on_event(piece)
            elif piece:
                self.text += piece
                if self.on_text is not None:
                    self.on_text(piece)

    async def _execute(self, call: Call) -> str:
        tool = self.tools.get(call.name)
        step = Step(self.requests, call.id, tool.shown if tool else call.name, tool.kind if tool else "",
                    redact(arguments_shown(call)))
        try:
            result, step.error = await self._outcome(tool, call, step), False
        except _Failed as failed:
            result, step.error = str(failed), True
        except (KeyboardInterrupt, asyncio.CancelledError):
            step.result, step.error = "interrupted by the user", True
            self._record(step)
            raise
        step.result = redact(fit(result, self.budget)[0])
        self._record(step)
        return step.result

    async def _outcome(self, tool: Tool | None, call: Call, step: Step) -> str:
        if tool is None:
            known = ", ".join(self.tools) or "none"
            raise _Failed(f"error: there is no tool {shorten(call.name, 60)!r} (the tools are: {known})")
        try:
            arguments = parse_arguments(call.arguments)
        except ValueError as exc:
            raise _Failed(f"error: {exc}") from None
        if (problem := check(tool.parameters, arguments)) is not None:
            raise _Failed(f"error: {problem}")
        decision = await self.run_sync(lambda: self.policy.decide(tool, arguments))
        step.approved, step.asked = decision.approved, decision.asked
        if not decision.approved:
            return decision.reason
        started = time.perf_counter()
        try:
            if tool.kind == MCP or inspect.iscoroutinefunction(tool.call):
                value = await tool.call(arguments)
            else:
                value = await self.run_sync(lambda: tool.call(arguments))
                if inspect.isawaitable(value):
                    value = await value
            if isinstance(value, ToolOutput):
                step.displays = value.displays
            return await self.run_sync(lambda: result_text(value))
        except ToolError as exc:
            raise _Failed(f"error: {exc}") from None
        except (Exception, SystemExit) as exc:
            raise _Failed(f"error: {type(exc).__name__}: {shorten(str(exc), 300)}") from None
        finally:
            step.seconds = time.perf_counter() - started

    def _record(self, step: Step) -> None:
        self.steps.append(step)
        if self.on_step is not None:
            self.on_step(step)

    def _close(self, why: str) -> None:
        """A result for every call still open, so the stored conversation stays valid."""
        for call in self._open:
            self.messages.append(tool_message(call, why))
        self._open = []


class _Failed(Exception):
    """A call that did not happen as asked; its message is the model's result."""
