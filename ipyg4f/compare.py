"""``%%chat --compare`` / ``--race`` and ``%chat pick`` (issue 22: being built)."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError


def run_cell(chat: Any, args: Any, cell: str) -> None:
    raise UsageError("--compare and --race are not built yet")


def cmd_pick(chat: Any, args: Any) -> None:
    raise UsageError("%chat pick is not built yet")
