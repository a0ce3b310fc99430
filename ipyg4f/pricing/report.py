"""``%chat cost [-c NAME] [--all]``: what a thread (or every thread of the notebook) used and cost, by
provider and model, from the usage stored with each exchange (:meth:`ipyg4f.chat.Chat.record`); a
``--compare`` cell counts each of its columns (their ``usage``, where the variant stored one)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ..render.table import show_table
from .meter import money

__all__ = ["cmd_cost", "cost_rows"]

HEADERS = ["provider", "model", "exchanges", "tokens in", "tokens out", "cost"]


class _Sum:
    def __init__(self) -> None:
        self.exchanges = 0
        self.tokens_in = self.tokens_out = 0
        self.unknown_in = self.unknown_out = 0  # exchanges whose service did not say
        self.cost = 0.0
        self.priced = 0

    def add(self, usage: dict[str, Any]) -> None:
        self.exchanges += 1
        tokens_in, tokens_out = usage.get("input"), usage.get("output")
        if isinstance(tokens_in, int):
            self.tokens_in += tokens_in
        else:
            self.unknown_in += 1
        if isinstance(tokens_out, int):
            self.tokens_out += tokens_out
        else:
            self.unknown_out += 1
        if isinstance(usage.get("cost"), (int, float)):
            self.cost += float(usage["cost"])
            self.priced += 1

    def merge(self, other: "_Sum") -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)

    def cells(self) -> list[str]:
        def tokens(n: int, unknown: int) -> str:
            if unknown == self.exchanges:
                return "?"
            return f"{n:,}" + (f" (+{unknown} unknown)" if unknown else "")

        cost = "—" if not self.priced else money(self.cost) + (
            f" ({self.exchanges - self.priced} unpriced)" if self.priced < self.exchanges else "")
        return [str(self.exchanges), tokens(self.tokens_in, self.unknown_in), tokens(self.tokens_out, self.unknown_out),
                cost]


def cost_rows(exchanges: list[Any]) -> tuple[list[list[str]], _Sum]:
    """One row per provider and model (in order of first use), and the total."""
    groups: dict[tuple[str, str], _Sum] = defaultdict(_Sum)
    for ex in exchanges:
        variants = [v for v in ex.variant_list() if isinstance(v, dict)]
        if variants:  # a --compare cell: each column under its own provider and model
            for v in variants:
                usage = v.get("usage")
                groups[(str(v.get("provider") or "?"), str(v.get("model") or ""))].add(
                    usage if isinstance(usage, dict) else {})
        else:
            groups[(ex.provider or "?", ex.model or "")].add(ex.usage_dict())
    total = _Sum()
    for group in groups.values():
        total.merge(group)
    return [[provider, model, *group.cells()] for (provider, model), group in groups.items()], total


def cmd_cost(chat: Any, args: Any) -> None:
    from IPython.display import display

    threads = chat.store.threads(chat.notebook) if args.all_ else [chat.thread_name(args.thread)]
    rows: list[list[str]] = []
    grand = _Sum()
    for thread in threads:
        found, total = cost_rows(chat.store.exchanges(chat.notebook, thread))
        grand.merge(total)
        rows += [[thread, *row] for row in found] if args.all_ else found
    if not grand.exchanges:
        where = "this notebook" if args.all_ else f"thread {threads[0]!r}"
        display({"text/plain": f"{where}: no exchanges yet"}, raw=True)
        return
    headers = ["thread", *HEADERS] if args.all_ else HEADERS
    if len(rows) > 1:
        rows.append(["total", *([""] if args.all_ else []), "", *grand.cells()])
    show_table(headers, rows)
    if grand.priced < grand.exchanges:
        display({"text/plain": "—/unpriced: no price known (free and local providers have none; "
                               'ChatConfig.prices = {"MODEL": {"input": …, "output": …}} adds one, per million tokens)'},
                raw=True)
