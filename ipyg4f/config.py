"""Settings, as traitlets: ``%config ChatConfig.provider = "OpenAI"`` and friends."""

from __future__ import annotations

import os
from pathlib import Path

from traitlets import Bool, Dict, Float, Int, List, Unicode
from traitlets.config import Configurable

#: the answer formats of ``-f``
FORMATS = ("markdown", "text", "code")


def data_dir() -> Path:
    """Per-user data directory: $IPYG4F_DATA_DIR, else $XDG_DATA_HOME/ipyg4f, else ~/.local/share/ipyg4f."""
    if env := os.environ.get("IPYG4F_DATA_DIR"):
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "ipyg4f"


class ChatConfig(Configurable):
    """Defaults of ``%%chat`` and the panel."""

    provider = Unicode(
        os.environ.get("IPYG4F_PROVIDER", ""),
        help="Default provider ($IPYG4F_PROVIDER). Empty: Local when ipyg4f[local] is installed, else Fallback.",
    ).tag(config=True)
    model = Unicode("", help="Default model; empty: the provider's own default.").tag(config=True)
    fallback = List(Unicode(), default_value=[],
                    help="Providers the Fallback provider tries, in order; empty: every available one "
                         "(Local first).").tag(config=True)
    system = Unicode("", help="Default system prompt.").tag(config=True)
    provider_options = Dict(
        default_value={},
        help='Per-provider defaults, e.g. {"g4f:Custom": {"base_url": "http://127.0.0.1:8080/v1", '
             '"api_key_env": "MY_KEY"}}: base_url, api_key_env (the NAME of the variable holding the key), '
             'max_tokens, temperature.').tag(config=True)
    proxy = Unicode("", help="Default proxy URL (also $IPYG4F_PROXY). Never echoed.").tag(config=True)
    timeout = Float(120.0, help="Longest silence (seconds) allowed from a provider.").tag(config=True)
    temperature = Float(None, allow_none=True, help="Default temperature (None: the provider's).").tag(config=True)
    format = Unicode("markdown", help="Default answer format: markdown, text or code.").tag(config=True)
    thread = Unicode("default", help="Default conversation thread (-c).").tag(config=True)
    max_context = Int(50, help="Most earlier exchanges sent as context (0: none).").tag(config=True)
    context_budget = Int(4000, help="Most characters of each --with / --error description; a longer "
                                    "one is cut and says where.").tag(config=True)
    updates_per_second = Float(10.0, help="Most display updates per second while streaming (each costs a "
                               "message of ~600 bytes besides the text: 10 reads smoothly).").tag(config=True)
    history_path = Unicode("", help="History database; empty: <data dir>/history.sqlite3.").tag(config=True)
    show_traceback = Bool(False, help="Show full tracebacks of provider failures (like --debug).").tag(config=True)
    local_context_size = Int(0, help="Context of the Local model, in tokens; 0: the model's own (from its GGUF "
                                      "file), at most 4096. Longer costs memory; too long a history loses "
                                      "its oldest exchanges.").tag(config=True)
    local_max_tokens = Int(0, help="Longest answer of the Local model, in tokens (--max-tokens overrides it); 0: 256 "
                                   "for a base model's one-line answers, else 1024 (at most half the "
                                   "context).").tag(config=True)
    local_threads = Int(0, help="llama.cpp threads of the Local model; 0: $IPYG4F_LOCAL_THREADS, else half the "
                                "CPUs minus the busy ones (1 on 2 cores). A change reloads the model.").tag(config=True)

    tools = List(Unicode(), default_value=[],
                 help="Tools every %%chat cell may use unless --tools says otherwise: notebook, python, the names "
                      "of your functions, mcp:NAME (empty: none).").tag(config=True)
    approve = Unicode("ask", help="Approval of run_python and MCP tools: ask (in the cell, each call), auto (runs "
                                  "whatever the model writes, in your kernel) or never (not offered).").tag(config=True)
    max_steps = Int(10, help="Most requests of one cell that uses tools (--max-steps).").tag(config=True)
    mcp_servers = Dict(
        default_value={},
        help='MCP servers for --tools mcp:NAME, as in mcp.json: {"NAME": {"command": "...", "args": [...], '
             '"env": {...}}} (stdio) or {"NAME": {"url": "http://.../mcp"}} (streamable HTTP).').tag(config=True)
    fallback_mode = Unicode("order", help="How -p Fallback uses its list: order (one after another) or race (all at "
                                          "once; the first to answer wins, the others are cancelled).").tag(config=True)
    prices = Dict(default_value={},
                  help='Prices the price database lacks, per million tokens, and the context window in tokens: '
                       '{"MODEL": {"input": 0.15, "output": 0.6, "window": 128000}}.').tag(config=True)
    budget = Float(None, allow_none=True, help="Most a cell may spend, in USD (None: no ceiling); --budget for "
                                               "a --map batch.").tag(config=True)

    def resolved_history_path(self) -> Path:
        return Path(self.history_path) if self.history_path else data_dir() / "history.sqlite3"

    def resolved_proxy(self) -> str | None:
        return self.proxy or os.environ.get("IPYG4F_PROXY") or None

    def provider_settings(self, name: str) -> dict[str, int]:
        """Keywords these settings give provider ``name`` (the ``local_*`` ones go to Local), those set only."""
        if name.lower() != "local":
            return {}
        settings = {"n_ctx": self.local_context_size, "max_tokens": self.local_max_tokens,
                    "n_threads": self.local_threads}
        return {k: v for k, v in settings.items() if v and v > 0}
