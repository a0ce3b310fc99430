"""Names shared by the modules of the ``Local`` provider."""

from __future__ import annotations

__all__ = ["NAME", "INSTALL_HINT"]

#: the provider the local modules' errors are reported for
NAME = "Local"
INSTALL_HINT = "install ipyg4f[local]: pip install 'ipyg4f[local]'"
