"""A stand-in for the Hugging Face Hub on 127.0.0.1: files from folders on disk, under repo ids.

It speaks the part of the Hub's HTTP API that `hf_hub_download` and `snapshot_download` use, in
both clients hub3d meets (huggingface_hub 0.23 with requests, 2.x with httpx):

- `GET /api/models/{repo}[/revision/{rev}]`: the repo's info; `siblings` lists every file
  (0.23 filters snapshot patterns on it) and `sha` is the commit;
- `GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=`: the file listing 2.x filters on;
- `HEAD|GET /{repo}/resolve/{rev}/{path}`: a small file answers 200 with its git blob id as ETag;
  a weights file (as .gitattributes sends to LFS) answers 302 to a signed URL on a second server
  (the "CDN", another origin, so both clients drop the Authorization header there), with
  X-Linked-Etag (its sha256) and X-Linked-Size. Every answer carries X-Repo-Commit. No answer
  names Xet (no X-Xet-Hash header, no xetHash in listings), so 2.x downloads over plain HTTP;
- `GET /api/agent-harnesses` (2.x builds its User-Agent from it): an empty registry;
- the CDN answers Range requests (206), as a resumed download asks; files stream from disk;
  `cut_after` drops a blob's connection mid-file once, for the clients' resume to be seen.

The gate, as the Hub answers a gated repo's files: no token → 401 with X-Error-Code GatedRepo;
a token the Hub does not know → 401 "Invalid credentials in Authorization header"; a known
token whose account has not accepted the licence → 403 GatedRepo. Repo info and listings stay
public, as on the Hub. What it cannot play: the licence-acceptance web flow (the test decides
which token has accepted), token scopes, private repos, other repo types, branches other than
`main`, pagination of long listings, Xet storage, rate limits.

`stop()` makes it unreachable the way a vanished host is (every connection closed unanswered)
while it keeps recording, so a test can prove an offline run sent it nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.local_http import LocalHTTPServer

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".npz", ".h5")
CHUNK = 1 << 20


@dataclass(frozen=True)
class Seen:
    """One request that reached the stand-in."""

    server: str  # "hub" or "cdn"
    method: str
    path: str
    token: str | None
    range: str | None
    answered: bool


@lru_cache(maxsize=256)
def _digests(path: Path, size: int, mtime_ns: int) -> tuple[str, str]:
    """(sha256, git blob sha1) of a file, read in chunks; keyed by size and mtime."""
    sha256, blob = hashlib.sha256(), hashlib.sha1(f"blob {size}\0".encode())
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            sha256.update(chunk)
            blob.update(chunk)
    return sha256.hexdigest(), blob.hexdigest()


@dataclass(frozen=True)
class RepoFile:
    path: str
    local: Path

    @property
    def size(self) -> int:
        return self.local.stat().st_size

    def digests(self) -> tuple[str, str]:
        st = self.local.stat()
        return _digests(self.local, st.st_size, st.st_mtime_ns)

    @property
    def lfs(self) -> bool:
        return self.path.endswith(LFS_SUFFIXES)

    def pointer(self) -> bytes:
        """The Git LFS pointer the repo's git tree holds for a weights file."""
        return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.digests()[0]}\n"
                f"size {self.size}\n").encode()

    def blob_id(self) -> str:
        if not self.lfs:
            return self.digests()[1]
        pointer = self.pointer()
        return hashlib.sha1(b"blob %d\0" % len(pointer) + pointer).hexdigest()

    def tree_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "file", "path": self.path, "size": self.size,
                                 "oid": self.blob_id()}
        if self.lfs:
            entry["lfs"] = {"oid": self.digests()[0], "size": self.size,
                            "pointerSize": len(self.pointer())}
        return entry


@dataclass
class HubStandIn:
    """repos: repo id → folder (every file under it, by relative path); files: name → local
    file served as-is at `file_url(name)` (u2net's release download)."""

    repos: Mapping[str, Path]
    gated: Iterable[str] = ()
    tokens: Mapping[str, Iterable[str]] = field(default_factory=dict)  # token → accepted repos
    files: Mapping[str, Path] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    cut_after: dict[str, int] = field(default_factory=dict)  # sha256 → bytes, then drop (once)
    dark: bool = False
    _secret: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    _servers: list[LocalHTTPServer] = field(default_factory=list)

    def __enter__(self) -> HubStandIn:
        for name in ("hub", "cdn"):
            handler = type(f"{name}_handler", (_Handler,), {"hub": self, "server_name": name})
            server = LocalHTTPServer(("127.0.0.1", 0), handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._servers.append(server)
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def cdn_url(self) -> str:
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}"

    def file_url(self, name: str) -> str:
        return f"{self.cdn_url}/files/{name}"

    def stop(self) -> None:
        """Answer nothing from now on (connections closed unanswered), still recording."""
        self.dark = True

    def commit(self, repo_id: str) -> str:
        """The repo's one commit: a hash of its file names and contents."""
        listing = sorted((f.path, f.blob_id()) for f in self.list_files(repo_id))
        return hashlib.sha1(json.dumps([repo_id, listing]).encode()).hexdigest()

    def list_files(self, repo_id: str) -> list[RepoFile]:
        root = self.repos[repo_id]
        return [RepoFile(p.relative_to(root).as_posix(), p) for p in sorted(root.rglob("*"))
                if p.is_file()]

    def sign(self, sha256: str) -> str:
        return hmac.new(self._secret, sha256.encode(), "sha256").hexdigest()

    def refusal(self, repo_id: str, token: str | None) -> tuple[int, dict[str, str]] | None:
        """The gate's answer for a file request, or None when it may be served."""
        if repo_id not in set(self.gated):
            return None
        if token is None:
            return 401, {"X-Error-Code": "GatedRepo", "X-Error-Message": (
                f"Access to model {repo_id} is restricted. You must have access to it and be "
                "authenticated to access it. Please log in.")}
        if token not in self.tokens:
            return 401, {"X-Error-Message": "Invalid credentials in Authorization header"}
        if repo_id not in set(self.tokens[token]):
            return 403, {"X-Error-Code": "GatedRepo", "X-Error-Message": (
                f"Access to model {repo_id} is restricted and you are not in the authorized "
                f"list. Visit https://huggingface.co/{repo_id} to ask for access.")}
        return None


_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)"
                  r"(?:/revision/(?P<rev>[^/]+)|/tree/(?P<tree>[^/]+)(?:/(?P<sub>.+))?)?$")


class _Handler(BaseHTTPRequestHandler):
    hub: HubStandIn
    server_name: str
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:  # noqa: N802
        self._handle(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._handle(head=False)

    def _handle(self, head: bool) -> None:
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        hub = self.hub
        hub.seen.append(Seen(self.server_name, self.command, self.path, token,
                             self.headers.get("Range"), not hub.dark))
        if hub.dark:
            self.close_connection = True
            return
        self.head = head
        url = urlsplit(self.path)
        if self.server_name == "cdn":
            self._cdn(url.path, parse_qs(url.query))
        elif match := _RESOLVE.match(url.path):
            self._resolve(match["repo"], match["rev"], match["path"], token)
        elif url.path == "/api/agent-harnesses":  # 2.x reads it for its User-Agent
            self._json({"standardEnvVars": [], "harnesses": {}})
        elif match := _API.match(url.path):
            self._api(match, parse_qs(url.query))
        else:
            self._send(404, b"Not Found")

    def _send(self, status: int, body: bytes = b"", headers: Mapping[str, str] = {}) -> None:
        self.send_response(status)
        for key, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(key, value)
        self.end_headers()
        if not self.head:
            self.wfile.write(body)

    def _json(self, data: object, status: int = 200, headers: Mapping[str, str] = {}) -> None:
        self._send(status, json.dumps(data).encode(),
                   {"Content-Type": "application/json", **headers})

    def _error(self, status: int, headers: Mapping[str, str]) -> None:
        message = headers.get("X-Error-Message", "")
        self._json({"error": message}, status, headers)

    def _repo_or_error(self, repo_id: str, rev: str | None) -> str | None:
        """The commit for rev ("main" or the commit itself), after answering any error."""
        if repo_id not in self.hub.repos:
            self._error(401, {"X-Error-Code": "RepoNotFound",
                              "X-Error-Message": "Repository not found"})
            return None
        commit = self.hub.commit(repo_id)
        if rev not in (None, "main", commit):
            self._error(404, {"X-Error-Code": "RevisionNotFound",
                              "X-Error-Message": f"Invalid rev id: {rev}"})
            return None
        return commit

    def _api(self, match: re.Match[str], query: dict[str, list[str]]) -> None:
        repo_id = match["repo"]
        commit = self._repo_or_error(repo_id, match["rev"] or match["tree"])
        if commit is None:
            return
        files = self.hub.list_files(repo_id)
        if match["tree"] is None:
            gated = "manual" if repo_id in set(self.hub.gated) else False
            self._json({"id": repo_id, "modelId": repo_id, "sha": commit, "private": False,
                        "gated": gated, "downloads": 0, "likes": 0, "tags": [],
                        "siblings": [{"rfilename": f.path} for f in files]})
            return
        sub = (match["sub"] or "").strip("/")
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        prefix = f"{sub}/" if sub else ""
        inside = [f for f in files if f.path.startswith(prefix)]
        if sub and not inside:
            self._error(404, {"X-Error-Code": "EntryNotFound",
                              "X-Error-Message": f"{sub} does not exist on main"})
            return
        entries: list[dict[str, Any]] = []
        folders: set[str] = set()
        for f in inside:
            rest = f.path[len(prefix):]
            if recursive:
                folders.update(prefix + "/".join(rest.split("/")[:i])
                               for i in range(1, rest.count("/") + 1))
            if recursive or "/" not in rest:
                entries.append(f.tree_entry())
            else:
                folders.add(prefix + rest.split("/")[0])
        dirs = [{"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest(),
                 "size": 0} for d in sorted(folders)]
        self._json(dirs + entries)

    def _resolve(self, repo_id: str, rev: str, path: str, token: str | None) -> None:
        commit = self._repo_or_error(repo_id, rev)
        if commit is None:
            return
        refused = self.hub.refusal(repo_id, token)
        if refused:
            self._error(refused[0], {**refused[1], "X-Repo-Commit": commit})
            return
        found = [f for f in self.hub.list_files(repo_id) if f.path == path]
        if not found:
            self._error(404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit,
                              "X-Error-Message": "Entry not found"})
            return
        (file,) = found
        headers = {"X-Repo-Commit": commit, "ETag": f'"{file.blob_id()}"'}
        if not file.lfs:
            self._file(file.local, headers)
            return
        sha256 = file.digests()[0]
        location = f"{self.hub.cdn_url}/blobs/{sha256}?sig={self.hub.sign(sha256)}"
        self._send(302, b"", {**headers, "Location": location, "X-Linked-Etag": f'"{sha256}"',
                              "X-Linked-Size": str(file.size)})

    def _cdn(self, path: str, query: dict[str, list[str]]) -> None:
        if path.startswith("/files/") and path[len("/files/"):] in self.hub.files:
            self._file(self.hub.files[path[len("/files/"):]], {})
            return
        sha256 = path[len("/blobs/"):] if path.startswith("/blobs/") else ""
        if not hmac.compare_digest(query.get("sig", [""])[0], self.hub.sign(sha256)):
            self._send(403, b"AccessDenied: the signature does not match")
            return
        for repo_id in self.hub.repos:
            for f in self.hub.list_files(repo_id):
                if f.lfs and f.digests()[0] == sha256:
                    self._file(f.local, {"ETag": f'"{sha256}"'}, self.hub.cut_after.pop(sha256,
                                                                                      None))
                    return
        self._send(404, b"NoSuchKey")

    def _file(self, local: Path, headers: Mapping[str, str], cut: int | None = None) -> None:
        """Stream a file, or the part a `Range: bytes=a-[b]` asks for (206); with `cut`, the
        connection drops after that many bytes, as a broken network does."""
        size = local.stat().st_size
        start, end, status = 0, size - 1, 200
        extra = {"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if wanted:
            start = int(wanted[1])
            end = min(int(wanted[2]), size - 1) if wanted[2] else size - 1
            if start > end:
                self._send(416, b"", {"Content-Range": f"bytes */{size}"})
                return
            status, extra["Content-Range"] = 206, f"bytes {start}-{end}/{size}"
        self.send_response(status)
        for key, value in {**headers, **extra, "Content-Length": str(end - start + 1)}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.head:
            return
        with open(local, "rb") as fh:
            fh.seek(start)
            left = end - start + 1 if cut is None else min(cut, end - start + 1)
            self.close_connection = cut is not None
            while left > 0 and (chunk := fh.read(min(CHUNK, left))):
                self.wfile.write(chunk)
                left -= len(chunk)
