"""History at scale: 10,000 exchanges in one notebook thread.

Times (median of 30, after one warm-up) the three operations a cell pays for:
``%chat history`` (the magic, rendered), re-running a cell (replace its
exchange), and building the context of a new cell; the floor is one bare
SQLite primary-key lookup on the same file.  Target: each <= 20 ms.
Checks afterwards that the file passes SQLite's integrity check and still
holds exactly 10,000 live exchanges.

    python benchmarks/history_scale.py
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, summary, versions  # noqa: E402

N = 10_000
REPEAT = 30


def timed(fn, repeat: int = REPEAT) -> list[float]:
    fn()
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return samples


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="ipyg4f-bench-"))
    os.environ["IPYG4F_DATA_DIR"] = str(tmp)
    os.environ["JPY_SESSION_NAME"] = str(tmp / "big.ipynb")
    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython()
    ip.run_line_magic("load_ext", "ipyg4f")
    from ipyg4f.chat import get_chat

    chat = get_chat(ip)
    store = chat.store
    t = time.perf_counter()
    for i in range(N):
        store.record(chat.notebook, "default", f"cell-{i}", f"question {i} " * 5, f"answer {i} " * 40,
                     provider="Bench", model="m")
    fill = time.perf_counter() - t

    db = sqlite3.connect(store.path)
    floor = timed(lambda: db.execute("SELECT prompt FROM exchange WHERE id=?", (N // 2,)).fetchone())

    import io
    from contextlib import redirect_stdout

    def history():
        with redirect_stdout(io.StringIO()):
            ip.run_line_magic("chat", "history")

    replace = timed(lambda: store.record(chat.notebook, "default", "cell-5000", "re-run question",
                                         "re-run answer", provider="Bench", model="m"))
    context = timed(lambda: chat.request("new question", cell_id="cell-new"))
    shown = timed(history)

    print(f"machine: {machine()}")
    print(f"versions: {versions('ipython', 'ipyg4f')}, sqlite {sqlite3.sqlite_version}")
    print(f"filled {N} exchanges in {fill:.2f} s ({fill / N * 1e6:.0f} us each)")
    print(f"floor (one primary-key lookup)  {summary(floor)}")
    rows = [("%chat history (last 50 shown)", shown), ("re-run replace", replace),
            (f"build context (last {chat.config.max_context})", context)]
    ok = True
    med_floor = sorted(floor)[len(floor) // 2]
    for name, samples in rows:
        med = sorted(samples)[len(samples) // 2]
        verdict = "ok" if med <= 0.020 else "OVER 20 ms"
        ok &= med <= 0.020
        print(f"{name:32s}{summary(samples)}  ratio {med / med_floor:7.0f}x floor  {verdict}")
    integrity = store.check()
    live = store.count(chat.notebook, "default")
    print(f"integrity_check: {integrity}; live exchanges: {live}")
    ok &= integrity == "ok" and live == N
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
