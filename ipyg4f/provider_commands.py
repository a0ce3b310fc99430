"""What ``%chat providers``, ``%chat models`` and ``%chat use`` do, from the one provider set-up
(:mod:`ipyg4f.providers.setup`), and the set-up of a cell's own options (a user error is a UsageError).
"""

from __future__ import annotations

import os
from typing import Any

from IPython.core.error import UsageError

from .chat import Chat
from .errors import ChatFailed, ModelNotFoundError, UnknownProviderError, describe
from .render.table import show_table

__all__ = ["cmd_providers", "cmd_models", "cmd_use", "setup_or_usage", "api_key_env"]


def api_key_env(name: str | None) -> str | None:
    """``--api-key-env NAME``, checked: the variable must hold a key (read by the set-up, never shown)."""
    if name and not os.environ.get(name):
        raise UsageError(f"--api-key-env {name}: that environment variable is not set")
    return name or None


def setup_or_usage(chat: Chat, provider: str | None, model: str | None = None, cell: dict | None = None) -> Any:
    """The provider as configured (:meth:`Chat.setup`); a user error is a UsageError."""
    from .http import redact
    from .providers.setup import SetupError

    try:
        return chat.setup(provider, model, cell)
    except (UnknownProviderError, ModelNotFoundError, SetupError) as exc:
        raise UsageError(redact(exc.message)) from None


def cmd_providers(chat: Chat, args: Any) -> None:
    """The providers as configured: set up or not (no network); with ``--check``, whether each one set up
    answers where its set-up points (a connect to its address, all at once, bounded in time; ``-p NAME``
    checks just that one, with the cell's ``--base-url``)."""
    from .http import reachable
    from .providers.setup import check_options, infos, listed_names

    default = chat.provider_setting()
    chat.warn_once(check_options(chat.config.provider_options))
    if args.provider:
        cell = {"base_url": args.base_url, "api_key_env": api_key_env(args.api_key_env)}
        found = [setup_or_usage(chat, args.provider, None, cell).info()]
    else:
        found = infos(chat.config.provider_options, listed_names(chat.config.provider_options, chat.config.fallback))
    reach: dict[str, str] = {}
    if args.check:
        reach = reachable({i.name: i.endpoint for i in found if i.configured and i.endpoint},
                          timeout=min(chat.config.timeout, 3.0))
    rows = []
    for info in found:
        flags = [f for f, on in (("stream", info.supports_stream), ("system", info.supports_system_message),
                                 ("history", info.supports_message_history),
                                 ("tools", getattr(info, "supports_tools", False)), ("key", info.needs_auth)) if on]
        state = "yes" if info.configured else ("not set up" if info.working else "no (marked not working)")
        name = f"{info.name} *" if info.name.lower() == default.lower() else info.name
        models = ", ".join(info.models) or info.default_model or "any"
        row = [name, state, models, " ".join(flags), info.error or info.label]
        if args.check:
            row.insert(2, reach.get(info.name, "in process" if info.configured and not info.endpoint else "—"))
        rows.append(row)
    headers = ["provider", "set up", "models", "supports", "about"]
    if args.check:
        headers.insert(2, "reachable")
    show_table(headers, rows)


def cmd_models(chat: Chat, args: Any) -> None:
    """The models of a provider, asked where its set-up points (``--base-url``, ``--api-key-env``,
    ``provider_options``, environment), with its key."""
    import asyncio

    from .http import redact
    from .runner import LoopThread

    cell = {"base_url": args.base_url, "api_key_env": api_key_env(args.api_key_env)}
    setup = setup_or_usage(chat, args.provider, None, cell)
    cls = setup.provider
    if cls.name == "Local":
        return local_models(chat, cls)
    models = cls.available_models()
    if not models and cls.lists_models_remotely():
        timeout = chat.config.timeout
        future = LoopThread.get().submit(asyncio.wait_for(setup.list_models(), timeout))
        where = f" at {setup.endpoint}" if setup.endpoint else ""
        try:
            models = future.result(timeout=timeout + 1)
        except Exception as exc:
            future.cancel()
            reason = f"no answer in {timeout:g} s" if isinstance(exc, TimeoutError) else redact(describe(exc))
            lines = [f"✖ {cls.name}: cannot list models{where}: {reason}"]
            if getattr(exc, "status", None) in (401, 403):
                lines.append(f"  try: {setup.key_hint()}")
            raise ChatFailed(lines) from None
    default = setup.model or cls.default_model
    show_table(["model", "default"], [[m, "*" if m == default else ""] for m in models] or [[default or "any", "*"]])


def local_models(chat: Chat, cls: Any) -> None:
    """The bundled model and every pulled one, with size and quantisation; * marks the default."""
    headers, rows = cls.model_table()
    current = chat.config.model if chat.provider_setting().lower() == "local" and chat.config.model else ""
    default = cls.get_model(current) if current else cls.default_model
    show_table(headers[:1] + ["default"] + headers[1:],
                [[row[0], "*" if row[0] == default else "", *row[1:]] for row in rows])


def cmd_use(chat: Chat, args: Any) -> None:
    """Make a provider/model the default; says at once what the set-up lacks (a key, a provider_options problem)."""
    if not args.provider and not args.model:
        raise UsageError("%chat use needs -p PROVIDER and/or -m MODEL")
    setup = setup_or_usage(chat, args.provider or chat.config.provider or None, args.model)
    cls, model = setup.provider, setup.model
    if cls.name == "Local" and args.model:
        try:
            cls.resolve_path(model)  # a model on disk only: %chat use never downloads
        except ModelNotFoundError as exc:
            raise UsageError(f"{exc.message} (try: {exc.hint})") from None
    chat.set_defaults(cls.name, args.model or "")
    print(f"default: {cls.name}" + (f" ({model})" if model else ""))
    if setup.missing_key():
        chat.warn(setup.missing_key())  # said at once, not by the next cell's failure
    chat.warn_once(list(setup.problems))
