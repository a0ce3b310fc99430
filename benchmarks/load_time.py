"""Load cost of ``%load_ext ipyg4f``: whole-process wall time and peak RSS of
IPython running it, against bare IPython (the floor), interleaved, median of
RUNS each.  Targets: time ratio <= 1.10, and neither aiohttp nor ipywidgets
imported by loading.

    python benchmarks/load_time.py [RUNS]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, summary, versions  # noqa: E402

BARE = "pass"
LOADED = "get_ipython().run_line_magic('load_ext', 'ipyg4f')"
CHECK = (LOADED + "; import sys; print(sorted(m for m in ('aiohttp', 'ipywidgets', 'markdown_it', 'nh3', "
         "'xllamacpp', 'sqlite3') if m in sys.modules))")


def run_with_rusage(code: str) -> tuple[float, int, str]:
    argv = [sys.executable, "-m", "IPython", "--quick", "--no-banner", "--HistoryManager.enabled=False",
            "--colors=nocolor", "-c", code]
    r, w = os.pipe()
    t = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        os.dup2(w, 1)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 2)
        os.execv(sys.executable, argv)
    os.close(w)
    chunks = []
    while data := os.read(r, 65536):
        chunks.append(data)
    os.close(r)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t
    if status:
        raise SystemExit(f"IPython exited with status {status} running {code!r}")
    return wall, usage.ru_maxrss, b"".join(chunks).decode()


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    bare_t, bare_m, load_t, load_m = [], [], [], []
    run_with_rusage(BARE)  # warm the page cache once
    run_with_rusage(LOADED)
    for _ in range(runs):
        t, m, _ = run_with_rusage(BARE)
        bare_t.append(t)
        bare_m.append(m)
        t, m, _ = run_with_rusage(LOADED)
        load_t.append(t)
        load_m.append(m)
    imported = run_with_rusage(CHECK)[2].strip().splitlines()[-1]
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    ratio = med(load_t) / med(bare_t)
    rss_ratio = med(load_m) / med(bare_m)
    print(f"machine: {machine()}")
    print(f"versions: {versions('ipython', 'ipyg4f', 'aiohttp', 'ipywidgets')}")
    print(f"runs: {runs} each, interleaved")
    print(f"bare IPython (floor)      {summary(bare_t)}   peak RSS {med(bare_m) / 1024:.1f} MiB")
    print(f"IPython + %load_ext       {summary(load_t)}   peak RSS {med(load_m) / 1024:.1f} MiB")
    print(f"time ratio {ratio:.3f} (target <= 1.10)   RSS ratio {rss_ratio:.3f}")
    print(f"heavy modules imported by loading: {imported}")
    heavy = any(name in imported for name in ("'aiohttp'", "'ipywidgets'"))
    return 0 if ratio <= 1.10 and not heavy else 1


if __name__ == "__main__":
    sys.exit(main())
