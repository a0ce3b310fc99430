"""gpt4free's response objects -> our typed stream events (see :mod:`ipyg4f.events`)."""

from __future__ import annotations

from typing import Any


def from_g4f(item: Any) -> Any:
    return None
