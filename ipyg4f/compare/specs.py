"""``--compare`` / ``--race`` SPECs: ``PROVIDER`` or ``PROVIDER=MODEL``, comma-separated, each resolved."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError

from ..errors import ModelNotFoundError, UnknownProviderError
from ..http import redact


def parse_specs(text: str, option: str = "--compare") -> list[tuple[str, str | None]]:
    """``"OpenAI=gpt-4o-mini,Local"`` -> ``[("OpenAI", "gpt-4o-mini"), ("Local", None)]``."""
    specs = []
    for word in (text or "").split(","):
        word = word.strip()
        if not word:
            continue
        provider, _, model = word.partition("=")
        if not provider.strip():
            raise UsageError(f"{option} {text}: {word!r} names no provider (write PROVIDER or PROVIDER=MODEL)")
        specs.append((provider.strip(), model.strip() or None))
    if not specs:
        raise UsageError(f"{option} needs at least one PROVIDER or PROVIDER=MODEL, comma-separated")
    return specs


def setups(chat: Any, specs: list[tuple[str, str | None]], cell: dict[str, Any]) -> list[Any]:
    """Each SPEC as configured; an unknown provider or model (Local: a file not on disk) is a UsageError,
    before anything is sent.  ``Local=hf:OWNER/NAME`` is pulled first, as a plain cell does."""
    from ..providers.setup import SetupError
    from ..pull import pull_if_needed

    found = []
    for provider, model in specs:
        try:
            setup = chat.setup(provider, model, cell)
            if setup.provider.name == "Local":
                pull_if_needed(setup.model)
                setup.provider.resolve_path(setup.model)
        except (UnknownProviderError, ModelNotFoundError, SetupError) as exc:
            raise UsageError(f"{redact(exc.message)} (nothing was sent)") from None
        found.append(setup)
    return found
