"""Cutting a byte string into chunks at given places, for the decoder property tests."""

from __future__ import annotations


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at every ``cut % (len(data) + 1)``; empty chunks included (a network read can be empty)."""
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]
