"""Small helpers shared by the benchmark scripts."""

from __future__ import annotations

import platform
import statistics
import sys


def summary(samples: list[float]) -> str:
    """median [min..max] of samples given in seconds, shown in ms."""
    med = statistics.median(samples)
    return f"{med * 1000:8.2f} ms  [{min(samples) * 1000:.2f}..{max(samples) * 1000:.2f}]"


def machine() -> str:
    import os

    return f"{platform.platform()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"


def versions(*names: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in names:
        try:
            out.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            out.append(f"{name} -")
    return ", ".join(out)
