"""A real ipykernel driven the way JupyterLab drives it: execute requests carry
``metadata.cellId`` (nbclient and ``KernelClient.execute`` do not send it)."""

from __future__ import annotations

import queue
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.manager import start_new_kernel


@dataclass
class Execution:
    msg_id: str
    messages: list[dict] = field(default_factory=list)
    reply: dict | None = None

    def of_type(self, *types: str) -> list[dict]:
        return [m for m in self.messages if m["msg_type"] in types]

    @property
    def displays(self) -> list[dict]:
        return self.of_type("display_data", "update_display_data")

    @property
    def updates(self) -> list[dict]:
        return self.of_type("update_display_data")

    @property
    def outputs(self) -> list[dict]:
        """The cell's outputs as a front end keeps them (and saves them): displays appended, updates applied
        to every output of their display id, ``clear_output(wait=True)`` applied at the next output."""
        return self.outputs_after(len(self.messages))

    @property
    def most_outputs(self) -> int:
        """The most outputs the cell had at any moment."""
        return max((len(self.outputs_after(n)) for n in range(len(self.messages) + 1)), default=0)

    def outputs_after(self, count: int) -> list[dict]:
        """The cell's outputs once the first ``count`` messages have arrived."""
        outputs: list[dict] = []
        clear_pending = False
        for m in self.messages[:count]:
            kind, content = m["msg_type"], m["content"]
            if kind == "clear_output":
                if content.get("wait"):
                    clear_pending = True
                else:
                    outputs.clear()
                continue
            if kind == "update_display_data":
                for out in outputs:
                    if out.get("display_id") == content["transient"]["display_id"]:
                        out.update(data=content["data"], metadata=content["metadata"])
                continue
            if kind not in ("display_data", "stream", "execute_result", "error"):
                continue
            if clear_pending:
                outputs.clear()
                clear_pending = False
            out = {"output_type": kind, **content}
            out["display_id"] = content.get("transient", {}).get("display_id")
            outputs.append(out)
        return outputs

    def final(self) -> dict:
        """The content (data + metadata) of the last display message."""
        return self.displays[-1]["content"]

    def stream(self, name: str = "stdout") -> str:
        return "".join(m["content"]["text"] for m in self.of_type("stream") if m["content"]["name"] == name)

    @property
    def error(self) -> dict | None:
        errs = self.of_type("error")
        return errs[-1]["content"] if errs else None

    @property
    def status(self) -> str:
        return self.reply["content"]["status"] if self.reply else "pending"

    def text(self) -> str:
        """All text a person would see: streams, plain text of displays/results, error lines."""
        parts = [self.stream("stdout"), self.stream("stderr")]
        for m in self.of_type("display_data", "update_display_data", "execute_result"):
            parts.append(m["content"]["data"].get("text/plain", ""))
        if self.error:
            parts.extend(self.error["traceback"])
        return "\n".join(parts)


class Kernel:
    def __init__(self, env: dict[str, str] | None = None, cwd: str | None = None):
        import os

        full_env = {**os.environ, **(env or {})}
        self.km, self.kc = start_new_kernel(kernel_name="python3", env=full_env, cwd=cwd,
                                            startup_timeout=60)
        self.pending: dict[str, Execution] = {}

    def send(self, code: str, cell_id: str | None = None, *, stop_on_error: bool = True,
             allow_stdin: bool = False) -> Execution:
        """Execute like a front end (``allow_stdin``: it can answer ``input()``, see :meth:`reply`)."""
        content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                   "allow_stdin": allow_stdin, "stop_on_error": stop_on_error}
        metadata = {"cellId": cell_id} if cell_id else {}
        msg = self.kc.session.msg("execute_request", content, metadata=metadata)
        self.kc.shell_channel.send(msg)
        ex = Execution(msg["header"]["msg_id"])
        self.pending[ex.msg_id] = ex
        return ex

    def reply(self, ex: Execution, text: str, timeout: float = 90) -> str:
        """Wait for the kernel's input prompt (reading iopub meanwhile), type ``text``; returns the prompt."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.kc.get_stdin_msg(timeout=0.2)
            except queue.Empty:
                self.pump_iopub(0.05)
                continue
            assert msg["msg_type"] == "input_request", msg["msg_type"]
            self.kc.input(text)
            return msg["content"]["prompt"]
        raise TimeoutError(f"the kernel did not ask within {timeout} s")

    def pump_iopub(self, timeout: float) -> dict | None:
        try:
            msg = self.kc.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            return None
        parent = msg.get("parent_header", {}).get("msg_id")
        if parent in self.pending:
            msg["received"] = time.monotonic()
            self.pending[parent].messages.append(msg)
        return msg

    def wait_for(self, ex: Execution, predicate, timeout: float = 60) -> dict:
        """Read iopub until a message of ``ex`` satisfies ``predicate``; return it."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for m in ex.messages[seen:]:
                if predicate(m):
                    return m
            seen = len(ex.messages)
            self.pump_iopub(0.2)
        raise TimeoutError(f"no matching message for {ex.msg_id} within {timeout} s")

    def wait(self, ex: Execution, timeout: float = 60) -> Execution:
        """Until the kernel is idle for this request and its reply arrived."""
        self.wait_for(ex, lambda m: m["msg_type"] == "status" and m["content"]["execution_state"] == "idle",
                      timeout)
        deadline = time.monotonic() + timeout
        while ex.reply is None and time.monotonic() < deadline:
            try:
                reply = self.kc.get_shell_msg(timeout=0.5)
            except queue.Empty:
                continue
            parent = reply["parent_header"].get("msg_id")
            if parent in self.pending:
                self.pending[parent].reply = reply
        if ex.reply is None:
            raise TimeoutError(f"no execute_reply for {ex.msg_id}")
        return ex

    def run(self, code: str, cell_id: str | None = None, timeout: float = 60, **kw: Any) -> Execution:
        return self.wait(self.send(code, cell_id or uuid.uuid4().hex, **kw), timeout)

    def ok(self, code: str, cell_id: str | None = None, timeout: float = 60) -> Execution:
        ex = self.run(code, cell_id, timeout)
        assert ex.status == "ok", ex.text()
        return ex

    def interrupt(self) -> None:
        self.km.interrupt_kernel()

    def restart(self) -> None:
        self.kc.stop_channels()
        self.km.restart_kernel(now=True)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.pending.clear()

    def kill(self) -> None:
        self.km.kill_kernel()

    def shutdown(self) -> None:
        try:
            self.kc.stop_channels()
        finally:
            self.km.shutdown_kernel(now=True)
