"""``%%chat --map EXPR --compare SPEC[,SPEC...]``: one batch per SPEC, one column of results each.

Each SPEC's batch is a plain ``--map`` (the same store, resume and progress), run one SPEC after another
(each batch is itself concurrent, ``-j``), so a re-run resumes every column where it stopped.
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError

from ..compare import parse_specs, setups


def map_each(chat: Any, args: Any, cell: str, run_map: Any) -> None:
    """``--map EXPR --compare SPECS``: the batch once per SPEC (``run_map``: a plain ``--map``, with its store,
    resume and progress), one column each: ``--into df[["a", "b"]]`` names them, ``--into df["col"]`` makes
    ``col.SPEC`` columns; ``-o VAR`` is ``{SPEC: result}``.  Every SPEC and target is checked first."""
    import copy

    specs = parse_specs(args.compare)
    setups(chat, specs, {})  # an unknown provider or model: nothing is sent
    names = [f"{p}={m}" if m else p for p, m in specs]
    targets = _map_targets(args.into, names) if args.into else [None] * len(specs)
    results = {}
    for (provider, model), name, target in zip(specs, names, targets):
        one = copy.copy(args)
        one.compare, one.provider, one.model, one.into, one.out = None, provider, model, target, None
        if args.out:
            one.out = "_ipyg4f_compare_result"
        run_map(chat, one, cell)
        if args.out:
            results[name] = chat.shell.user_ns.pop(one.out)
    if args.out:
        chat.shell.user_ns[args.out] = results


def _map_targets(into: str, names: list[str]) -> list[str]:
    """``df[["a", "b"]]`` -> ``['df["a"]', 'df["b"]']``; ``df["col"]`` -> ``df["col.SPEC"]`` per SPEC."""
    import ast

    try:
        node = ast.parse(into.strip(), mode="eval").body
    except SyntaxError:
        node = None
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.List):
        keys = [k.value for k in node.slice.elts if isinstance(k, ast.Constant)]
        if len(keys) != len(node.slice.elts) or len(keys) != len(names):
            raise UsageError(f"--into {into}: name one column per --compare SPEC ({len(names)}), "
                             f"e.g. df[[\"a\", \"b\"]]")
    elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        keys = [f"{node.slice.value}.{name}" for name in names]
    else:
        raise UsageError(f"--into {into}: write it as df[\"col\"] (one col.SPEC column each) or "
                         "df[[\"a\", \"b\"]] (a column per SPEC)")
    owner = ast.unparse(node.value)
    return [f"{owner}[{key!r}]" for key in keys]
