"""What ``--compare`` and ``--race`` cost in a real ipykernel (issue 22).

A child process serves an OpenAI-compatible stream whose latency (time before the response starts) and
length depend on the model asked for; ``-p OpenAI`` points at it.  Measured from this process:

* CPU: the kernel's CPU time (every thread, /proc schedstat) for ``--compare`` of 4 specs, each streaming
  N chunks, against 4 times that of one ``%%chat`` streaming the same N chunks.  Target: at most 1.2x.
* wall: ``--compare`` of specs answering after 0.2, 0.4, 0.6 and 0.8 s against the slowest alone (concurrent:
  close to it, not to the sum).
* race: time to the first visible answer text of ``--race slow,fast,hang`` (each from a server process of
  its own) against ``fast`` alone.  Target: within 5 ms.

    python benchmarks/compare.py [--quick] [--only cpu|wall|race]
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from _common import machine, versions  # noqa: E402
from streaming import ChildServer, SSEServer, cpu_seconds, med  # noqa: E402

#: seconds before the response starts, per model (anything else: none)
LATENCY = {"l200": 0.2, "l400": 0.4, "l600": 0.6, "l800": 0.8, "fast": 0.05, "slow": 0.5, "hang": 60.0}


class Server(SSEServer):
    """:class:`streaming.SSEServer` whose answers start after the model's latency (:data:`LATENCY`)."""

    async def chat(self, request):
        from aiohttp import web

        body = await request.json()
        await asyncio.sleep(LATENCY.get(body.get("model"), 0.0))
        try:
            return await super().chat(request)
        except ConnectionError:  # a race's loser: the client went away
            return web.Response()


class Child(ChildServer):
    """A :class:`Server` in a child process (configured over HTTP, like :class:`streaming.ChildServer`)."""

    def __init__(self) -> None:
        code = ("import sys, time; sys.path.insert(0, %r); from compare import Server; "
                "s = Server(); print(s.port, flush=True); time.sleep(10**6)" % str(HERE))
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())


def cell(k, i: int, options: str) -> dict:
    pid = k.km.provisioner.process.pid
    cpu0 = cpu_seconds(pid)
    t0 = time.monotonic()
    ex = k.send(f"%%chat -c bench{i} --new {options}\nstream please", cell_id=f"bench-{i}")
    k.wait(ex, timeout=600)
    cpu = cpu_seconds(pid) - cpu0
    assert ex.status == "ok", ex.text()
    visible = [m for m in ex.displays if "tok" in m["content"]["data"].get("text/html", "")]
    return {"cpu": cpu, "first": visible[0]["received"] - t0, "total": ex.displays[-1]["received"] - t0,
            "messages": len(ex.displays), "bytes": sum(len(json.dumps(m["content"])) for m in ex.displays)}


def main() -> int:
    quick = "--quick" in sys.argv
    repeat = 3 if quick else 5
    from kernel_harness import Kernel

    srv = Child()
    # the race's three answers each come from a server of their own (as different providers' would):
    # one Python server handling all three would serve them one after another
    fast, hang = Child(), Child()
    tmp = tempfile.mkdtemp(prefix="ipyg4f-bench-")
    k = Kernel(env={"OPENAI_BASE_URL": srv.base_url, "OPENAI_API_KEY": "bench", "IPYG4F_DATA_DIR": tmp,
                    "OLLAMA_BASE_URL": fast.base_url, "VLLM_BASE_URL": hang.base_url,
                    "JPY_SESSION_NAME": f"{tmp}/bench.ipynb"})
    ok, i = True, 0
    try:
        k.ok("%load_ext ipyg4f")
        srv.configure(50, 0.0)
        cell(k, -1, "-p OpenAI -m warm")  # warm-up: imports, first connection
        cell(k, -2, "--compare OpenAI=w1,OpenAI=w2")
        print(f"machine: {machine()}")
        print(f"versions: {versions('ipykernel', 'ipython', 'aiohttp', 'ipyg4f')}")
        print(f"repeats: {repeat} (medians; kernel CPU = on-CPU time of all kernel threads)\n")

        only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else ""
        print(f"{'chunks':>6} {'gap':>5} | {'1 answer cpu':>12} {'x4':>7} | {'compare 4 cpu':>13} {'ratio':>6} | "
              f"{'msgs 1':>6} {'msgs 4':>6} | {'KB 1':>6} {'KB 4':>6}")
        for n, delay in [(500, 0.002), (2000, 0.001), (5000, 0.0)] if only in ("", "cpu") else []:
            srv.configure(n, delay)
            singles, compares = [], []
            for _ in range(repeat):
                i += 1
                singles.append(cell(k, i, "-p OpenAI -m one"))
                i += 1
                compares.append(cell(k, i, "--compare OpenAI=a,OpenAI=b,OpenAI=c,OpenAI=d"))
            one, four = med([r["cpu"] for r in singles]), med([r["cpu"] for r in compares])
            ratio = four / (4 * one)
            ok &= ratio <= 1.2
            print(f"{n:>6} {delay * 1000:>3.0f}ms | {one:>11.3f}s {4 * one:>6.3f}s | {four:>12.3f}s {ratio:>6.2f} | "
                  f"{max(r['messages'] for r in singles):>6} {max(r['messages'] for r in compares):>6} | "
                  f"{med([r['bytes'] for r in singles]) / 1024:>6.0f} {med([r['bytes'] for r in compares]) / 1024:>6.0f}")

        srv.configure(20, 0.0)
        walls, slowest = [], []
        for _ in range(repeat if only in ("", "wall") else 0):
            i += 1
            walls.append(cell(k, i, "--compare OpenAI=l200,OpenAI=l400,OpenAI=l600,OpenAI=l800")["total"])
            i += 1
            slowest.append(cell(k, i, "-p OpenAI -m l800")["total"])
        if walls:
            print(f"\nwall: --compare of 0.2/0.4/0.6/0.8 s specs {med(walls):.3f} s; the slowest alone {med(slowest):.3f} s;"
                  f" the sum of the four 2.0 s")
            ok &= med(walls) < med(slowest) + 0.2

        races, alone = [], []
        srv.configure(20, 0.0)
        fast.configure(20, 0.0)
        for _ in range(3 * repeat if only in ("", "race") else 0):  # a few ms: more samples
            i += 1
            races.append(cell(k, i, "--race OpenAI=slow,Ollama=fast,VLLM=hang")["first"])
            i += 1
            alone.append(cell(k, i, "-p Ollama -m fast")["first"])
        if races:
            gap = (med(races) - med(alone)) * 1000
            print(f"race: first text {med(races) * 1000:.1f} ms (slow, fast, hang) vs {med(alone) * 1000:.1f} ms "
                  f"(fast alone): {gap:+.1f} ms (target <= 5 ms)")
            ok &= gap <= 5
    finally:
        k.shutdown()
        for child in (srv, fast, hang):
            child.stop()
    print("\nall targets met" if ok else "\nsome target missed (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
