"""``%chat cost`` (issue 22: being built)."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError


def cmd_cost(chat: Any, args: Any) -> None:
    raise UsageError("%chat cost is not built yet")
