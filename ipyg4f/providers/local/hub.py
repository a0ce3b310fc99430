"""Pulling GGUF models from the Hugging Face Hub into the Hub's own cache (:mod:`.hub_cache` reads it).

:func:`pull` downloads with ``huggingface_hub`` (``ipyg4f[local]``), which
honours ``HF_ENDPOINT``, ``HF_HOME``/``HF_HUB_CACHE``, ``HF_HUB_OFFLINE`` and
the user's token.  First one connection to the endpoint (:func:`probe`):
offline, a refused port or a name that does not resolve fail there at once,
in one line (the Hub client would retry five times, 30 s, printing each retry
on stderr).  Then it asks the Hub for the file's metadata
(:func:`huggingface_hub.get_hf_file_metadata`) and streams the file with
:func:`huggingface_hub.file_download.http_get` into ``blobs/<etag>.part``,
which it keeps when the download stops (interrupt, lost connection, full
disk): the next pull sends a ``Range`` request from where it stopped.
(``hf_hub_download`` deletes its partial file on failure, so it cannot
resume.)  The finished file is checked as a GGUF before it is moved into
place.  Which file, when the reference names only a repository:
:func:`~.hub_cache.choose`.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ...errors import ProviderError
from ...gguf import check_gguf
from .common import INSTALL_HINT, NAME
from .hub_cache import (DEFAULT_REVISION, PREFERRED, PREFIX, AmbiguousFileError, HubError, Progress, Pulled, Ref,
                        _repo_dir, _snapshot, cache_root, choose, local_path, parse_ref, pulled, quantization_of)

__all__ = ["PREFIX", "PREFERRED", "DEFAULT_REVISION", "Ref", "Progress", "Pulled", "HubError", "AmbiguousFileError",
           "parse_ref", "quantization_of", "cache_root", "choose", "local_path", "pulled", "probe", "pull"]

#: seconds the first connection to the endpoint may take
PROBE_TIMEOUT = 5.0


def _hub() -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise HubError(f"pulling models needs huggingface_hub; {INSTALL_HINT}", provider=NAME,
                       hint=INSTALL_HINT) from None
    return huggingface_hub


def _offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in ("1", "ON", "YES", "TRUE")


def _endpoint(hub: Any) -> str:
    from huggingface_hub import constants  # a lazy submodule: not an attribute of the package until imported

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _failure(exc: BaseException, ref: Ref, endpoint: str) -> HubError:
    """One short line for what went wrong while talking to the Hub."""
    from huggingface_hub import errors as hf

    name = type(exc).__name__
    if isinstance(exc, hf.OfflineModeIsEnabled):
        return HubError(f"{ref.name} is not on this machine and HF_HUB_OFFLINE is set", provider=NAME,
                        hint="unset HF_HUB_OFFLINE to download it, or use a model that is pulled "
                             "(%chat models -p Local)")
    if isinstance(exc, hf.GatedRepoError):
        return HubError(f"{ref.repo} is gated: accept its licence on the Hub, then log in (hf auth login)",
                        provider=NAME)
    if isinstance(exc, hf.RepositoryNotFoundError):
        return HubError(f"no repository {ref.repo} on {endpoint} (or it is private)", provider=NAME,
                        hint="check the name (OWNER/NAME), or log in for a private one (hf auth login)")
    if isinstance(exc, hf.RevisionNotFoundError):
        return HubError(f"{ref.repo} has no revision {ref.revision!r}", provider=NAME)
    if isinstance(exc, hf.RemoteEntryNotFoundError):
        return HubError(f"{ref.repo} has no file {ref.file!r}", provider=NAME,
                        hint=f"%chat pull {ref.repo} lists its GGUF files")
    if isinstance(exc, hf.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        return HubError(f"the Hub answered HTTP {status} for {ref.name}", provider=NAME,
                        hint="try again later")
    if name in ("ConnectError", "ConnectTimeout", "TimeoutException", "ReadTimeout", "ProxyError",
                "RemoteProtocolError", "ReadError", "NetworkError"):
        return HubError(f"cannot reach {endpoint} ({name}): are you offline?", provider=NAME,
                        hint="check the connection (or HF_ENDPOINT); a model that is already pulled works offline")
    return HubError(f"pulling {ref.name} failed: {name}: {exc}", provider=NAME)


def probe(endpoint: str, timeout: float = PROBE_TIMEOUT) -> None:
    """One TCP connection to ``endpoint``'s host (skipped when a proxy is set for it): a
    :class:`HubError` at once when the name does not resolve, the port refuses or nothing answers."""
    import urllib.request

    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if not host or (urllib.request.getproxies().get(parts.scheme) and not urllib.request.proxy_bypass(host)):
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    hint = "check the connection (or HF_ENDPOINT); a model that is already pulled works offline"
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except socket.gaierror:
        raise HubError(f"cannot reach {endpoint}: the name {host} does not resolve (offline?)", provider=NAME,
                       hint=hint) from None
    except ConnectionRefusedError:
        raise HubError(f"cannot reach {endpoint}: the connection was refused", provider=NAME, hint=hint) from None
    except OSError as exc:  # a timeout, no route, the network down
        why = f"no answer within {timeout:g} s" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise HubError(f"cannot reach {endpoint} ({why}): are you offline?", provider=NAME, hint=hint) from None


def _disk_full(folder: Path, needed: int | None, partial: Path) -> HubError:
    free = shutil.disk_usage(folder).free
    need = f"; {_size(needed)} more are needed" if needed else ""
    return HubError(f"the disk is full ({_size(free)} free in {folder}{need})", provider=NAME,
                    hint=f"free some space and pull again: it resumes from the {_size(_stat_size(partial))} "
                         f"already in {partial.name}" if _stat_size(partial) else "free some space and pull again")


def _stat_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _size(n: int | None) -> str:
    if n is None:
        return "? B"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


class _Bar:
    """What ``http_get`` calls a progress bar (it builds one with ``tqdm_class(**kwargs)``): our callback.

    ``http_get`` counts a chunk before it writes it, so the callback is told the bytes on disk:
    those counted before this chunk (and all of them once the download ends).
    """

    def __init__(self, callback: Callable[[Progress], None] | None, resumed: int, total: int | None):
        self.callback = callback
        self.resumed = resumed
        self.total = total
        self.started = time.monotonic()
        self.done = resumed

    def __call__(self, **kwargs: Any) -> _Bar:
        self.done = int(kwargs.get("initial") or 0)
        self._tell(self.done)
        return self

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, kind: Any, *exc: Any) -> None:
        if kind is None:
            self._tell(self.done)

    def update(self, n: int = 1) -> None:
        written, self.done = self.done, self.done + n
        self._tell(written)

    def _tell(self, done: int) -> None:
        if self.callback is not None:
            self.callback(Progress(done, self.total, self.resumed, self.started))

    def close(self) -> None:
        return None


def _list_files(hub: Any, ref: Ref, endpoint: str) -> list[tuple[str, int | None]]:
    api = hub.HfApi(endpoint=endpoint)
    return [(entry.path, getattr(entry, "size", None))
            for entry in api.list_repo_tree(ref.repo, revision=ref.revision, recursive=True)
            if type(entry).__name__ == "RepoFile"]


def pull(ref: Ref, on_progress: Callable[[Progress], None] | None = None) -> Pulled:
    """The file ``ref`` names, downloaded into the cache if it is not there yet; checked as a GGUF.

    Raises :class:`HubError` (one line, no traceback needed) for what the user can act on:
    offline, no such repository or file, several files to choose from, a full disk, a file that
    is not a complete GGUF.  ``KeyboardInterrupt`` (from the download, or raised by
    ``on_progress``) leaves the partial file for the next pull to resume.
    """
    if (path := local_path(ref)) is not None:
        return Pulled(Ref(ref.repo, _relative(path, ref)), path, path.stat().st_size)
    hub = _hub()
    endpoint = _endpoint(hub)
    if _offline():
        raise HubError(f"{ref.name} is not on this machine and HF_HUB_OFFLINE is set", provider=NAME,
                       hint="unset HF_HUB_OFFLINE to download it, or use a model that is pulled "
                            "(%chat models -p Local)")
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    probe(endpoint)
    try:
        if ref.file is None:
            ref = Ref(ref.repo, choose(ref.repo, _list_files(hub, ref, endpoint)), ref.revision)
            if (path := local_path(ref)) is not None:
                return Pulled(ref, path, path.stat().st_size)
        url = hub.hf_hub_url(ref.repo, ref.file, revision=ref.revision, endpoint=endpoint)
        meta = hub.get_hf_file_metadata(url, endpoint=endpoint)
        headers = build_hf_headers()
        location = meta.location or url
        if location != url and _host(location) != _host(url):
            headers.pop("authorization", None)  # a CDN does not get the Hub token
        if not meta.commit_hash or not meta.etag:
            raise HubError(f"{endpoint} does not answer like the Hugging Face Hub (no commit or ETag for "
                           f"{ref.name})", provider=NAME, hint="check HF_ENDPOINT")
    except HubError:
        raise
    except Exception as exc:
        raise _failure(exc, ref, endpoint) from None
    folder = _repo_dir(ref.repo)
    blob = folder / "blobs" / meta.etag
    partial = blob.with_name(blob.name + ".part")
    if not blob.is_file():
        _download(http_get, location, headers, partial, meta.size, ref, endpoint, on_progress)
        try:
            check_gguf(partial)  # a complete download that is not a GGUF model is useless: say so
        except ProviderError as exc:
            partial.unlink()
            why = exc.message.partition(" is not a valid GGUF model: ")[2] or exc.message
            raise HubError(f"{ref.name} is not a valid GGUF model: {why}", provider=NAME,
                           hint="the file on the Hub may be damaged, or not a model: pick another file") from None
        partial.replace(blob)
    target = folder / "snapshots" / meta.commit_hash / ref.file
    _link(blob, target)
    if not re.fullmatch(r"[0-9a-f]{40}", ref.revision):
        (folder / "refs").mkdir(parents=True, exist_ok=True)
        (folder / "refs" / ref.revision).write_text(meta.commit_hash)
    return Pulled(ref, target, target.stat().st_size)


def _download(http_get: Callable[..., None], url: str, headers: dict[str, str], partial: Path, size: int | None,
              ref: Ref, endpoint: str, on_progress: Callable[[Progress], None] | None) -> None:
    partial.parent.mkdir(parents=True, exist_ok=True)
    resume = _stat_size(partial)
    if size is not None and resume > size:  # not the file we are after: start again
        partial.unlink()
        resume = 0
    if size is not None and shutil.disk_usage(partial.parent).free < size - resume:
        raise _disk_full(partial.parent, size - resume, partial)
    bar = _Bar(on_progress, resume, size)
    try:
        with open(partial, "ab") as out:
            http_get(url, out, resume_size=resume, headers=headers, expected_size=size,
                     displayed_filename=ref.file, tqdm_class=bar)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise _disk_full(partial.parent, None if size is None else size - _stat_size(partial), partial) from None
        if "Consistency check failed" in str(exc):
            raise HubError(f"the download of {ref.name} ended early ({_size(_stat_size(partial))} of "
                           f"{_size(size)}); pull again to resume", provider=NAME) from None
        raise _failure(exc, ref, endpoint) from None
    except KeyboardInterrupt:
        raise
    except HubError:
        raise
    except Exception as exc:
        raise _failure(exc, ref, endpoint) from None


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).netloc


def _relative(path: Path, ref: Ref) -> str:
    snapshot = _snapshot(ref.repo, ref.revision)
    return path.relative_to(snapshot).as_posix() if snapshot is not None else path.name


def _link(blob: Path, target: Path) -> None:
    """``snapshots/<commit>/<file>`` -> the blob, as the Hub client does (a copy where links fail)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_file():
        return
    if target.is_symlink():  # a dangling link
        target.unlink()
    try:
        target.symlink_to(os.path.relpath(blob, target.parent))
    except OSError:
        shutil.copyfile(blob, target)
