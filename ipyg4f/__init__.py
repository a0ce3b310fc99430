"""ipyg4f: chat with language models from IPython and Jupyter.

``%load_ext ipyg4f`` registers ``%%chat`` and ``%chat``.  Loading imports
nothing heavy: aiohttp, ipywidgets and the providers load on first use.
"""

from __future__ import annotations

import types

from . import agent

__version__ = "0.1.0"

#: ``ipyg4f.map`` and ``ipyg4f.amap`` (batch prompting) load lazily too; they are not in
#: ``__all__`` so that ``from ipyg4f import *`` never hides the builtin ``map``
__all__ = ["load_ipython_extension", "unload_ipython_extension", "ChatPanel"]


def load_ipython_extension(ipython):
    from .magics import load

    load(ipython)


def unload_ipython_extension(ipython):
    from .magics import unload

    unload(ipython)


def __getattr__(name):
    if name == "ChatPanel":
        from .panel import ChatPanel

        return ChatPanel
    if name == "AgentResult":
        from .api import AgentResult

        return AgentResult
    if name in ("map", "amap"):  # batch prompting: ipyg4f.map(template, data, ...)
        from . import batch

        return getattr(batch, name)
    if name in _SUBPACKAGES:  # ipyg4f.batch.start(...) right after "import ipyg4f"
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(name)


class _AgentPackage(types.ModuleType):
    """``ipyg4f.agent`` is the agent's package (``ipyg4f.agent.loop``...) and, called, the agent from Python:
    ``ipyg4f.agent("Why are there nulls?", tools="notebook,python")`` (:func:`ipyg4f.api.agent`)."""

    def __call__(self, prompt: str, tools: str | list[str] = "notebook", **options):
        from .api import agent

        return agent(prompt, tools, **options)


agent.__class__ = _AgentPackage  # the package itself imports nothing (a docstring): loading stays cheap

#: the public subpackages, imported on first attribute access (loading the extension stays cheap)
_SUBPACKAGES = frozenset({"batch", "context", "providers", "history", "config", "errors", "events"})
