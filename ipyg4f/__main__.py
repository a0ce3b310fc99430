"""``python -m ipyg4f demo [NOTEBOOK]``: run a notebook headlessly and print what it answered."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

QUICKSTART = Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ipyg4f")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="execute a notebook in a real kernel and print its outputs")
    demo.add_argument("notebook", nargs="?", default=str(QUICKSTART))
    demo.add_argument("--save", metavar="PATH", help="also write the executed notebook here")
    demo.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell")
    args = parser.parse_args(argv)

    from .notebook import execute_notebook, print_notebook

    path = Path(args.notebook)
    if not path.exists():
        parser.error(f"no notebook at {path}")
    print(f"running {path} in a real kernel…", flush=True)
    try:
        nb = execute_notebook(path, timeout=args.timeout, save_to=args.save)
    except Exception as exc:  # a failing cell: show what ran, then the error
        print(f"\nthe notebook stopped with an error: {str(exc).strip().splitlines()[-1][:500]}", file=sys.stderr)
        return 1
    print_notebook(nb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
