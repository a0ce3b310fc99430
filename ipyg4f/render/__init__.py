"""Renderers of an answer (cell, terminal; the panel has its own in :mod:`ipyg4f.panel`) and safe HTML."""

from .cell import CellRenderer, TerminalRenderer
from .html import (COLOURS, answer_bundle, code_block, context_html, line_html, markdown_to_html, text_to_html,
                   thinking_html)
from .outcome import Outcome, context_summary, failure_lines, footer, outcome
from .stream import StreamRenderer, Throttle

__all__ = ["CellRenderer", "TerminalRenderer", "StreamRenderer", "Throttle", "Outcome", "outcome", "footer",
           "failure_lines", "context_summary", "context_html", "COLOURS", "answer_bundle", "code_block", "line_html",
           "markdown_to_html", "text_to_html", "thinking_html"]
