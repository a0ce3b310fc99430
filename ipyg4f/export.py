"""``%chat export`` and ``%chat import`` (issue 22: being built)."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError


def cmd_export(chat: Any, args: Any) -> None:
    raise UsageError("%chat export is not built yet")


def cmd_import(chat: Any, args: Any) -> None:
    raise UsageError("%chat import is not built yet")
