"""Describing a 10,000,000-row DataFrame for ``--with df``: under 100 ms, no data copied.

Floor: ``df.shape`` (what it costs to look at the frame at all).  Measured:
:func:`ipyg4f.context.values.describe` (shape, dtypes, null counts, head and tail
rows, shallow memory use), median of RUNS; the ratio to the floor is printed.
Copies are checked with tracemalloc (peak allocation during one describe) and
by checking the columns still share their data.

    python benchmarks/describe_dataframe.py [RUNS]
"""

from __future__ import annotations

import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, summary, versions  # noqa: E402

ROWS = 10_000_000
TARGET = 0.100  # seconds


def frame():
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "id": np.arange(ROWS, dtype=np.int64),
        "price": rng.random(ROWS),
        "qty": rng.integers(0, 100, ROWS, dtype=np.int32),
        "flag": rng.random(ROWS) > 0.5,
        "kind": pd.Categorical.from_codes(rng.integers(0, 4, ROWS), ["a", "b", "c", "d"]),
        "when": pd.date_range("2020-01-01", periods=ROWS, freq="s"),
    })
    df.loc[rng.integers(0, ROWS, 1000), "price"] = np.nan
    return df


def timed(call, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        out.append(time.perf_counter() - started)
    return out


def main(runs: int = 20) -> None:
    import numpy as np

    from ipyg4f.context.values import describe

    print(machine())
    print(versions("pandas", "numpy"))
    df = frame()
    memory = df.memory_usage(deep=False).sum()
    print(f"frame: {ROWS:,} rows x {df.shape[1]} columns, {memory / 1e6:.0f} MB")
    floor = timed(lambda: df.shape, runs)
    describe(df)  # warm up (imports, pandas' formatting caches)
    measured = timed(lambda: describe(df), runs)
    tracemalloc.start()
    before = df["price"].to_numpy()
    describe(df)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    shared = np.shares_memory(before, df["price"].to_numpy())
    med, base = statistics.median(measured), statistics.median(floor)
    print(f"df.shape (floor)  {summary(floor)}")
    print(f"describe(df)      {summary(measured)}")
    print(f"ratio to floor    {med / base:,.0f}x")
    print(f"peak allocation   {peak / 1e6:.1f} MB during one describe ({peak / memory:.2%} of the frame); "
          f"columns share their data: {shared}")
    print(f"target < {TARGET * 1000:.0f} ms: {'met' if med < TARGET else 'MISSED'}")
    print(describe(df)[1])


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
