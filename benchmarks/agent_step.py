"""The agent loop's own cost per step, against the cost of sending a plain request (issue 21).

One run against a local OpenAI-compatible server (a separate process, so its work takes no GIL
from the client): the agent asks STEPS times for a tool call to ``noop()`` (a function of the
session that returns at once), then answers.  The server notes, on the system's monotonic clock
(shared by both processes), when it has read each request and when it has written the last byte
of each answer.  Measured:

* **per step**: from the last byte of a tool-call answer to the next request read by the server,
  minus the tool's own time (measured inside the tool): parsing the calls, checking the arguments,
  the hop to the rendering thread and back (``Run.run_sync``), the result message, building and
  sending the next request;
* **floor**: a plain request (``Run`` without tools) from ``Run.run()`` to the request read by the
  server: what any request costs before it is on the wire;
* for comparison, an agent run's first request (tools opened and offered) the same way;
* the step split in three: the client reading the end of the answer (the provider's stream ends),
  the loop itself (from that end to the next stream's start: the calls joined and checked, the
  tool's three hops to the rendering thread and back, the messages), and sending the next request.

    python benchmarks/agent_step.py [STEPS] [RUNS]
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # the tool script's chunks (tests/tool_script.py)
from _common import machine, versions  # noqa: E402


# -- the server (its own process) --------------------------------------------------------------

def serve(port_queue: "multiprocessing.Queue", steps: int) -> None:
    import asyncio

    from aiohttp import web

    from tool_script import Call, Turn, deltas, step_of

    marks: list[tuple[str, float]] = []  # ("in", t) when a request was read, ("out", t) after its last byte

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        marks.append(("in", time.monotonic()))
        step = step_of(body.get("messages"))
        tools = bool(body.get("tools")) and step < steps
        turn = Turn(calls=[Call("noop", {}, cuts=1)]) if tools else Turn("done")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        finish = "tool_calls" if tools else "stop"
        chunks = [{"choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas(turn, step)]
        chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        data = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
        await resp.write(data)
        await resp.write_eof()
        marks.append(("out", time.monotonic()))
        return resp

    async def take(request: web.Request) -> web.Response:
        taken = list(marks)
        marks.clear()
        return web.json_response(taken)

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        app.router.add_get("/marks", take)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        site = web.SockSite(runner, sock)
        await site.start()
        port_queue.put(sock.getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


# -- the client ----------------------------------------------------------------------------------

class Quiet:
    """A renderer that draws nothing (the cost measured is the loop's, not the display's)."""

    tick_interval = None

    def start(self, answer):
        pass

    def prepare(self):
        pass

    def update(self, answer):
        pass

    def pending(self):
        return False

    def wait_time(self):
        return 0.0

    def flush(self):
        pass


class Shell:
    def __init__(self) -> None:
        self.user_ns = {"noop": noop}


TOOL_TIME: list[float] = []  #: the tool's own time, each call


def noop() -> str:
    """Do nothing."""
    start = time.perf_counter()
    TOOL_TIME.append(time.perf_counter() - start)
    return "ok"


def marks(url: str) -> list[tuple[str, float]]:
    import urllib.request

    with urllib.request.urlopen(f"{url}/marks", timeout=10) as resp:
        return [tuple(m) for m in json.loads(resp.read())]


def main() -> int:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    os.environ["IPYG4F_DATA_DIR"] = tempfile.mkdtemp(prefix="ipyg4f-bench-")
    spawn = multiprocessing.get_context("spawn")
    queue = spawn.Queue()
    server = spawn.Process(target=serve, args=(queue, steps), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{queue.get(timeout=60)}"

    from ipyg4f.agent.approval import Policy
    from ipyg4f.agent.session import AgentSource
    from ipyg4f.chat import Chat
    from ipyg4f.config import ChatConfig
    from ipyg4f.runner import Answer, ChatRequest, Run

    chat = Chat(None, ChatConfig(provider="OpenAI"))
    setup = chat.setup("OpenAI", "bench", {"base_url": f"{url}/v1"})
    shell = Shell()

    def request() -> ChatRequest:
        return ChatRequest(setup.provider, "bench", [{"role": "user", "content": "go"}], kwargs=setup.kwargs())

    ends: list[float] = []  #: a plain request: its answer's last byte -> Run.run() has returned

    def plain() -> float:
        req = request()
        start = time.monotonic()
        Run(req, Answer("OpenAI", "bench"), Quiet()).run()
        end = time.monotonic()
        got = marks(url)
        received = next(t for kind, t in got if kind == "in")
        ends.extend(end - t for kind, t in got if kind == "out")
        return received - start

    parts: dict[str, list[float]] = {"reading the end": [], "the loop": [], "sending": []}

    def agent() -> tuple[float, list[float]]:
        req = request()
        source = AgentSource(req, ["noop"], shell, policy=Policy("auto"), max_steps=steps + 1, budget=4000)
        answer = Answer("OpenAI", "bench")
        start = time.monotonic()
        Run(req, answer, Quiet(), source).run()
        assert answer.status == "ok" and len(answer.steps) == steps, (answer.status, answer.error, len(answer.steps))
        got = marks(url)
        ins = [t for kind, t in got if kind == "in"]
        outs = [t for kind, t in got if kind == "out"]
        tool = TOOL_TIME[-steps:]
        gaps = [ins[k + 1] - outs[k] - tool[k] for k in range(steps)]
        mine = streams[-(steps + 1):]
        for k in range(steps):
            parts["reading the end"].append(mine[k][1] - outs[k])
            parts["the loop"].append(mine[k + 1][0] - mine[k][1] - tool[k])
            parts["sending"].append(ins[k + 1] - mine[k + 1][0])
        return ins[0] - start, gaps

    hops: list[float] = []  #: each Run.run_sync round trip (worker loop -> rendering thread -> back)
    run_sync = Run.run_sync

    async def timed(self, fn):
        start = time.monotonic()
        try:
            return await run_sync(self, fn)
        finally:
            hops.append(time.monotonic() - start)

    Run.run_sync = timed
    import ipyg4f.agent.session as session

    streams: list[tuple[float, float]] = []  #: (start, end) of each provider stream the agent reads
    stream = session.stream

    async def timed_stream(request, on_item):
        start = time.monotonic()
        try:
            return await stream(request, on_item)
        finally:
            streams.append((start, time.monotonic()))

    session.stream = timed_stream
    for _ in range(3):  # warm up: imports, the connection pool, the worker loop
        plain()
        agent()
    floors, firsts, gaps = [], [], []
    hops.clear()
    ends.clear()
    for values in parts.values():
        values.clear()
    for _ in range(runs):
        for _ in range(steps):
            floors.append(plain())
        first, step_gaps = agent()
        firsts.append(first)
        gaps += step_gaps
    server.kill()

    def ms(xs: list[float]) -> str:
        xs = sorted(xs)
        return (f"median {statistics.median(xs) * 1000:6.2f} ms  p90 {xs[int(len(xs) * 0.9)] * 1000:6.2f} ms  "
                f"[{xs[0] * 1000:.2f}..{xs[-1] * 1000:.2f}]  n={len(xs)}")

    floor, step = statistics.median(floors), statistics.median(gaps)
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    print(f"versions: {versions('ipyg4f', 'aiohttp')}")
    print(f"{runs} agent runs of {steps} tool steps each, interleaved with {steps} plain requests per run")
    print(f"floor: plain request, Run.run() -> read by the server    {ms(floors)}")
    print(f"floor: plain request, last byte -> Run.run() returned {ms(ends)}")
    print(f"agent: first request, Run.run() -> read by the server    {ms(firsts)}")
    print(f"agent: per step, last byte of the tool-call answer -> next request read, tool time excluded")
    print(f"                                                          {ms(gaps)}")
    print(f"  = last byte -> the provider's stream has ended          {ms(parts['reading the end'])}")
    print(f"  + the loop: stream ended -> next stream started        {ms(parts['the loop'])}")
    print(f"    (its Run.run_sync round trips, 3 a step: approval, the call, its result text: {ms(hops)})")
    print(f"  + next stream started -> its request read by the server {ms(parts['sending'])}")
    whole = floor + statistics.median(ends)
    print(f"per step / floor (Run.run() -> on the wire): {step / floor:.2f}x")
    print(f"per step / a plain request's own ends (last byte -> returned, plus Run.run() -> on the wire, "
          f"{whole * 1000:.2f} ms): {step / whole:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
