"""Batch prompting at scale: 10,000 items against a local OpenAI-compatible server with 100 ms latency.

The server (tests/protocol_server.py, echoing each prompt after ``latency``)
runs in a child process, so this process's CPU time is the client's alone.
``ipyg4f.batch.run_batch`` sends every item at ``-j`` concurrency and stores
each answer in a history file, as in a notebook.

Reported: wall time against the ideal (items x latency / concurrency; target
<= 1.15x), client CPU per item, peak RSS; then, with tracemalloc at 0 ms
latency, the peak memory of a batch of 1,000 and of 10,000 items beyond its
results (target: the overhead per item does not grow with the number of items).

    python benchmarks/batch.py [ITEMS] [CONCURRENCY] [LATENCY_MS]
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import machine, versions  # noqa: E402

SERVER = """
import sys, threading
sys.path.insert(0, {tests!r})
from protocol_server import ProtocolServer
srv = ProtocolServer().start()
srv.echo, srv.latency = True, {latency!r}
print(srv.base_url, flush=True)
sys.stdin.read()
"""


def serve(latency: float) -> tuple[subprocess.Popen, str]:
    code = SERVER.format(tests=str(HERE.parent / "tests"), latency=latency)
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return child, child.stdout.readline().strip()


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batch(url: str, n: int, concurrency: int, store) -> tuple[float, float, object]:
    from ipyg4f.batch import run_batch

    items = [f"review-{i:06d} positive" for i in range(n)]  # echoed: a two-token answer, like a label
    wall, cpu = time.monotonic(), time.process_time()
    result = run_batch("{item}", items, provider="OpenAI", options={"base_url": f"{url}/v1"}, store=store,
                       concurrency=concurrency, retries=0, timeout=30)
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    if result.errors or result.pending or result != items:
        raise SystemExit(f"the batch did not answer every item: {result.summary()}")
    return wall, cpu, result


def result_bytes(result) -> int:
    return sys.getsizeof(result) + sum(sys.getsizeof(v) for v in result)


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    latency = (float(sys.argv[3]) if len(sys.argv) > 3 else 100.0) / 1000
    os.environ.pop("OPENAI_BASE_URL", None)
    os.environ.pop("OPENAI_API_KEY", None)
    from ipyg4f.history import HistoryStore

    tmp = Path(tempfile.mkdtemp(prefix="ipyg4f-batch-bench-"))
    os.environ["IPYG4F_DATA_DIR"] = str(tmp)
    print(f"machine: {machine()}")
    print(f"versions: {versions('aiohttp', 'ipyg4f')}")

    child, url = serve(latency)
    try:
        batch(url, 200, concurrency, HistoryStore(":memory:"))  # warm-up: imports, the loop thread
        server_cpu = cpu_of(child.pid)
        wall, cpu, _ = batch(url, n, concurrency, HistoryStore(tmp / "timed.sqlite3"))
        server_cpu = cpu_of(child.pid) - server_cpu
    finally:
        child.stdin.close()
        child.wait(10)
    ideal = n * latency / concurrency
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{n} items, -j {concurrency}, {latency * 1000:g} ms latency, each answer stored in SQLite")
    print(f"wall {wall:.2f} s, ideal {ideal:.2f} s, ratio {wall / ideal:.3f} (target <= 1.15): "
          + ("met" if wall / ideal <= 1.15 else "MISSED"))
    print(f"client CPU {cpu:.2f} s = {cpu / n * 1000:.2f} ms per item ({cpu / wall * 100:.0f} % of one core)")
    print(f"server CPU {server_cpu:.2f} s = {server_cpu / n * 1000:.2f} ms per item (the child process)")
    print(f"peak RSS of this process {peak_rss:.0f} MiB")

    child, url = serve(0.0)
    sizes = {}
    try:
        for count in (1_000, 10_000):
            tracemalloc.start()
            store = HistoryStore(tmp / f"mem-{count}.sqlite3")
            base = tracemalloc.get_traced_memory()[0]
            _, _, result = batch(url, count, concurrency, store)
            peak = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.stop()
            sizes[count] = (peak, result_bytes(result))
            store.close()
    finally:
        child.stdin.close()
        child.wait(10)
    for count, (peak, held) in sizes.items():
        print(f"tracemalloc, {count:>6} items: peak {peak / 2**20:6.2f} MiB, results {held / 2**20:5.2f} MiB, "
              f"beyond the results {(peak - held) / 2**20:5.2f} MiB ({(peak - held) / count:.0f} B per item)")
    small, large = ((p - h) for p, h in sizes.values())
    growth = large / small
    print(f"memory beyond the results, 10,000 vs 1,000 items: {growth:.2f}x (10x items; "
          f"target: well under 10x): " + ("met" if growth < 3 else "MISSED"))
    return 0 if wall / ideal <= 1.15 and growth < 3 else 1


if __name__ == "__main__":
    sys.exit(main())
