"""A local HTTP server that answers like the Hugging Face Hub, for ``HF_ENDPOINT``.

* ``HEAD|GET /{owner}/{name}/resolve/{revision}/{file}``: like the Hub for an
  LFS file, a 302 to ``http://localhost:PORT/cdn/...`` (another host name) with ``X-Repo-Commit``, ``X-Linked-Etag``
  and ``X-Linked-Size``; an unknown repository is a 401 with
  ``X-Error-Code: RepoNotFound``, an unknown file a 404 with
  ``X-Error-Code: EntryNotFound`` (what ``huggingface_hub`` reads).
* ``GET /cdn/{owner}/{name}/{file}``: the bytes, ``Range: bytes=N-`` honoured (206).
* ``GET /api/models/{owner}/{name}/tree/{revision}``: the file list (``list_repo_tree``).

``requests`` records every request (method, path, Range header, bytes sent).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Seen:
    method: str
    path: str
    range: str | None
    sent: int = 0


@dataclass
class HubServer:
    #: repository -> {file name -> path on disk}
    repos: dict[str, dict[str, Path]] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                hub._handle(self, head=True)

            def do_GET(self):
                hub._handle(self, head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._etags: dict[Path, str] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def etag(self, path: Path) -> str:
        if path not in self._etags:
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    digest.update(block)
            self._etags[path] = digest.hexdigest()
        return self._etags[path]

    def gets(self, file: str) -> list[Seen]:
        """The GET requests of a file's bytes."""
        return [r for r in self.requests if r.method == "GET" and r.path.startswith("/cdn/") and r.path.endswith(file)]

    # -- the handler --------------------------------------------------------------------------------

    def _reply(self, h: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes = b"",
               head: bool = False) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", headers.get("Content-Length", str(len(body))))
        h.end_headers()
        if not head and body:
            h.wfile.write(body)

    def _handle(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        path = unquote(urlsplit(h.path).path)
        seen = Seen("HEAD" if head else "GET", path, h.headers.get("Range"))
        self.requests.append(seen)
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "tree":
            repo = "/".join(parts[2:4])
            if repo not in self.repos:
                return self._not_found(h, head, "RepoNotFound", status=401)
            listing = [{"type": "file", "path": name, "size": p.stat().st_size, "oid": "0" * 40}
                       for name, p in self.repos[repo].items()]
            return self._reply(h, 200, {"Content-Type": "application/json"}, json.dumps(listing).encode(), head)
        if len(parts) >= 5 and parts[2] == "resolve":
            repo, file = "/".join(parts[:2]), "/".join(parts[4:])
            if repo not in self.repos:
                return self._not_found(h, head, "RepoNotFound", status=401)
            if file not in self.repos[repo]:
                return self._not_found(h, head, "EntryNotFound", commit=True)
            local = self.repos[repo][file]
            # an absolute URL on another host name, like the Hub's CDN (the client follows only relative ones)
            cdn = f"http://localhost:{self.server.server_address[1]}/cdn/{repo}/{file}"
            return self._reply(h, 302, {"Location": cdn, "X-Repo-Commit": COMMIT,
                                        "X-Linked-Etag": f'"{self.etag(local)}"',
                                        "X-Linked-Size": str(local.stat().st_size), "ETag": '"pointer"'},
                               head=head)
        if parts[0] == "cdn" and len(parts) >= 4:
            repo, file = "/".join(parts[1:3]), "/".join(parts[3:])
            local = self.repos.get(repo, {}).get(file)
            if local is None:
                return self._reply(h, 404, {}, b"not found", head)
            return self._send_file(h, local, seen, head)
        return self._reply(h, 404, {}, b"not found", head)

    def _not_found(self, h, head: bool, code: str, status: int = 404, commit: bool = False) -> None:
        headers = {"X-Error-Code": code, "X-Error-Message": code}
        if commit:
            headers["X-Repo-Commit"] = COMMIT
        self._reply(h, status, headers, json.dumps({"error": code}).encode(), head)

    def _send_file(self, h, local: Path, seen: Seen, head: bool) -> None:
        size = local.stat().st_size
        start = 0
        if seen.range and seen.range.startswith("bytes="):
            start = int(seen.range[6:].split("-")[0])
        headers = {"Accept-Ranges": "bytes", "ETag": f'"{self.etag(local)}"', "Content-Length": str(size - start),
                   "Content-Type": "application/octet-stream"}
        if start:
            headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
        h.send_response(206 if start else 200)
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        if head:
            return
        try:
            with open(local, "rb") as f:
                f.seek(start)
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.wfile.write(block)
                    seen.sent += len(block)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True
