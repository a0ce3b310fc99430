"""Responsiveness: while the panel streams 50,000 chunks (or a batch runs in the
background), how long does a trivial cell's execute round trip take?

The floor is the same trivial cell on the idle kernel, measured in the same
run.  Target: median round trip while streaming <= 50 ms.

    python benchmarks/responsiveness.py [N_CHUNKS] [GAP_MS]
    python benchmarks/responsiveness.py --batch [N_ITEMS] [LATENCY_MS]   # ipyg4f.batch.start, -j 64
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from _common import machine, summary, versions  # noqa: E402
from streaming import SSEServer  # noqa: E402


def round_trip(k) -> float:
    t = time.monotonic()
    k.ok("pass")
    return time.monotonic() - t


def measure(srv: SSEServer, setup: str, start: str, finished: tuple[str, str], result: str):
    """Round trips of a trivial cell on the idle kernel, then while ``start`` runs until ``finished``
    (a cell, and the text its output shows once done); returns (floor, busy, seconds, result's words)."""
    from kernel_harness import Kernel

    tmp = tempfile.mkdtemp(prefix="ipyg4f-bench-")
    k = Kernel(env={"OPENAI_BASE_URL": srv.base_url, "IPYG4F_DATA_DIR": tmp, "JPY_SESSION_NAME": f"{tmp}/r.ipynb"})
    try:
        k.ok(setup)
        floor = [round_trip(k) for _ in range(30)]
        t0 = time.monotonic()
        k.ok(start)
        busy = []
        while True:
            busy.append(round_trip(k))
            if finished[1] in k.ok(finished[0]).stream():
                break
        took = time.monotonic() - t0
        return floor, busy, took, k.ok(result).stream().split()
    finally:
        k.shutdown()


def report(what: str, floor: list[float], busy: list[float], ok: bool) -> int:
    med = statistics.median(busy)
    print(f"idle kernel (floor)     {summary(floor)}  ({len(floor)} cells)")
    print(f"{what:<24}{summary(busy)}  ({len(busy)} cells)  ratio {med / statistics.median(floor):.1f}x")
    print("target (median <= 50 ms):", "met" if med <= 0.050 else "MISSED")
    return 0 if med <= 0.050 and ok else 1


def batch(n: int, latency: float) -> int:
    """A background batch (``ipyg4f.batch.start``) of ``n`` items, each answered after ``latency``."""
    srv = SSEServer()
    srv.n, srv.delay = 1, latency
    floor, busy, took, done = measure(
        srv, "%load_ext ipyg4f\nimport ipyg4f.batch as B",
        f"job = B.start('{{item}}', list(range({n})), provider='OpenAI', concurrency=64, progress=False)",
        ("print(job.wait(0))", "True"), "r = job.result(); print(r.ok, len(r))")
    print(f"machine: {machine()}")
    print(f"versions: {versions('ipykernel', 'aiohttp', 'ipyg4f')}")
    print(f"batch of {n} items ({latency * 1000:g} ms each, -j 64) in {took:.2f} s: {done[0]}/{done[1]} answered"
          f" (ideal {n * latency / 64:.2f} s)")
    return report("while the batch runs", floor, busy, done[0] == done[1])


def main() -> int:
    if sys.argv[1:2] == ["--batch"]:
        args = sys.argv[2:]
        return batch(int(args[0]) if args else 5_000, (float(args[1]) if len(args) > 1 else 20.0) / 1000)
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    gap = float(sys.argv[2]) / 1000 if len(sys.argv) > 2 else 0.0
    srv = SSEServer()
    srv.n, srv.delay = n, gap
    floor, busy, streamed, done = measure(
        srv, "%load_ext ipyg4f\nfrom ipyg4f import ChatPanel\np = ChatPanel()\np.provider.value = 'OpenAI'",
        "p.submit('stream please')", ("print(p.busy)", "False"),
        "print(p.exchanges[-1].answer.status, len(p.exchanges[-1].answer.text))")
    print(f"machine: {machine()}")
    print(f"versions: {versions('ipykernel', 'ipywidgets', 'aiohttp', 'ipyg4f')}")
    print(f"panel streamed {n} chunks (gap {gap * 1000:g} ms) in {streamed:.2f} s: status {done[0]}, {done[1]} characters")
    return report("while panel streams", floor, busy, done[0] == "ok")


if __name__ == "__main__":
    sys.exit(main())
