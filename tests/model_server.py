"""A tiny HTTP server on 127.0.0.1 that serves fake model files, and manifest entries pointing at it.

It records every request path (so tests can assert that a refused download never touched the network), serves
bytes in small writes, can announce more bytes than it sends (a dropped connection), and stops by itself after
`lifetime_s` even if a test forgets to stop it. `ModelServer.modelscope(...)` makes it answer like a ModelScope
endpoint for one repository: the file listing the modelscope hub client reads (`/api/v1/models/<id>/repo/files?
Revision=..&Recursive=..`, JSON `{"Code": 200, "Data": {"Files": [{Name, Path, Type, Size, Sha256}]}}`) and the
file downloads (`/api/v1/models/<id>/repo?Revision=..&FilePath=..`), as modelscope/hub/api.py and file_download.py
build them.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from facechain_ext.config import Settings
from facechain_ext.models import ModelArchive, ModelFile, ModelSpec


@dataclass
class Served:
    body: bytes
    announce: int | None = None  # Content-Length to send; defaults to len(body)


@dataclass
class HubRepository:
    """One fake ModelScope repository: its files, and what the listing says about them (sha256/size overrides;
    an override of None leaves the field out, like a client whose listing has no sha256)."""

    repo: str
    revision: str
    files: dict[str, bytes]
    listed_sha256: dict[str, str | None] = field(default_factory=dict)
    listed_size: dict[str, int] = field(default_factory=dict)

    def listing(self) -> dict:
        entries = []
        for name, body in self.files.items():
            entry = {"Name": name, "Path": name, "Type": "blob", "Size": self.listed_size.get(name, len(body)),
                     "Revision": self.revision, "IsLFS": True}
            sha256 = self.listed_sha256.get(name, sha(body))
            if sha256 is not None:
                entry["Sha256"] = sha256
            entries.append(entry)
        entries.append({"Name": "docs", "Path": "docs", "Type": "tree", "Size": 0})
        return {"Code": 200, "Data": {"Files": entries}, "Message": "success", "Success": True}


@dataclass
class ModelServer:
    files: dict[str, Served] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    base_url: str = ""
    hub: dict[str, HubRepository] = field(default_factory=dict)

    def add(self, path: str, body: bytes, announce: int | None = None) -> str:
        self.files[path] = Served(body, announce)
        return f"{self.base_url}{path}"

    def modelscope(self, repo: str, revision: str, files: dict[str, bytes], **overrides: dict) -> HubRepository:
        """Serve `files` as ModelScope repository `repo` at `revision` (see the module doc)."""
        self.hub[repo] = HubRepository(repo, revision, files, **overrides)
        return self.hub[repo]

    def answer(self, path: str) -> Served | None:
        """What a GET of `path` gets: a registered file, a ModelScope listing or file, or None (404)."""
        if path in self.files:
            return self.files[path]
        parts = urlsplit(path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        for repo in self.hub.values():
            base = f"/api/v1/models/{repo.repo}/repo"
            if query.get("Revision") != repo.revision:
                continue
            if parts.path == f"{base}/files":
                return Served(json.dumps(repo.listing()).encode())
            if parts.path == base and query.get("FilePath") in repo.files:
                return Served(repo.files[query["FilePath"]])
        return None


def _handler(server_state: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            server_state.requests.append(self.path)
            served = server_state.answer(self.path)
            if served is None:
                self.send_error(404, "not here")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(served.announce or len(served.body)))
            self.end_headers()
            for start in range(0, len(served.body), 8192):
                self.wfile.write(served.body[start:start + 8192])
            self.close_connection = True

        def log_message(self, *args: object) -> None:  # keep pytest output clean
            return None

    return Handler


@contextmanager
def model_server(lifetime_s: float = 60.0) -> Iterator[ModelServer]:
    state = ModelServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    watchdog = threading.Timer(lifetime_s, httpd.shutdown)  # bounded even if the test hangs
    watchdog.daemon = True
    watchdog.start()
    try:
        yield state
    finally:
        watchdog.cancel()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic, incompressible-enough bytes of `size` (a stand-in for an ONNX file)."""
    out = bytearray()
    block = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def make_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _fake_dir(settings: Settings) -> list[Path]:
    return [settings.models_dir / "fake"]


def file_spec(name: str, url: str | None, data: bytes | None, *, sha256: str | None = "auto",
              size: int | None | str = "auto") -> ModelSpec:
    """A one-file manifest entry; sha256/size default to those of `data` (pass None for unknown)."""
    digest = sha(data) if sha256 == "auto" and data is not None else (None if sha256 == "auto" else sha256)
    length = len(data) if size == "auto" and data is not None else (None if size == "auto" else size)
    return ModelSpec(
        name=name, kind="face_fusion", description="test model", files=(ModelFile(f"{name}.onnx", length, digest, url),),
        sources=({"site": "test", "url": url},), licence="test licence", folders=_fake_dir,
    )


def zip_spec(name: str, url: str, archive: bytes, members: dict[str, bytes]) -> ModelSpec:
    """A manifest entry whose files come in a verified zip: each member by base name, with its own checksum."""
    files = tuple(ModelFile(Path(m).name, len(d), sha(d)) for m, d in members.items())
    return ModelSpec(
        name=name, kind="face_analysis", description="test pack", files=files,
        sources=({"site": "test", "url": url},), licence="test licence", folders=_fake_dir,
        archive=ModelArchive(url=url, members=tuple(members), size=len(archive), sha256=sha(archive)),
    )
