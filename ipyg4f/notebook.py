"""Execute a notebook in a real kernel the way JupyterLab does: each execute
request carries its cell's id (``metadata.cellId``), which nbclient alone does
not send, so cell-scoped history works in headless runs too.

Needs the ``notebook`` extra (nbclient, nbformat, ipykernel).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _client_class():
    try:
        from nbclient import NotebookClient
    except ImportError as exc:  # pragma: no cover - exercised by users without the extra
        raise SystemExit("running notebooks needs: pip install 'ipyg4f[notebook]'") from exc

    class CellIdNotebookClient(NotebookClient):
        """nbclient that sends ``metadata.cellId`` with every execute request."""

        _cell_id: str | None = None

        async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
            self._cell_id = cell.get("id")
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)

        async def async_start_new_kernel_client(self):
            kc = await super().async_start_new_kernel_client()

            def execute(code, silent=False, store_history=True, user_expressions=None,
                        allow_stdin=None, stop_on_error=True):
                content = {"code": code, "silent": silent, "store_history": store_history,
                           "user_expressions": user_expressions or {}, "allow_stdin": False,
                           "stop_on_error": stop_on_error}
                metadata = {"cellId": self._cell_id} if self._cell_id else {}
                msg = kc.session.msg("execute_request", content, metadata=metadata)
                kc.shell_channel.send(msg)
                return msg["header"]["msg_id"]

            kc.execute = execute
            return kc

    return CellIdNotebookClient


def execute_notebook(path: str | Path, *, timeout: int = 600, allow_errors: bool = False,
                     save_to: str | Path | None = None) -> Any:
    """Run every cell of a notebook; return the executed ``NotebookNode``."""
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    client = _client_class()(nb, timeout=timeout, allow_errors=allow_errors, kernel_name="python3",
                             resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # the kernel inherits this process's environment
    if save_to is not None:
        nbformat.write(nb, save_to)
    return nb


def output_text(output: Any) -> str:
    """What a person reads of one output: Markdown or plain text, stream text, or the error."""
    kind = output.get("output_type")
    if kind == "stream":
        return output.get("text", "")
    if kind == "error":
        return "\n".join(output.get("traceback", []))
    data = output.get("data", {})
    return data.get("text/markdown") or data.get("text/plain") or ""


def print_notebook(nb: Any, out=None) -> None:
    import sys

    out = out or sys.stdout
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        out.write(f"\nIn [{cell.get('execution_count') or ' '}]: " + cell.source.replace("\n", "\n    ") + "\n")
        for output in cell.get("outputs", []):
            text = output_text(output).rstrip()
            footer = (output.get("metadata") or {}).get("ipyg4f", {}).get("footer")
            if footer and footer not in text:  # who answered, how fast
                text = f"{text}\n[{footer}]"
            if text:
                out.write("Out: " + text.replace("\n", "\n     ") + "\n")
