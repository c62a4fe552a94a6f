"""A tiny HTTP server on 127.0.0.1 that serves fake model files, and manifest entries pointing at it.

It records every request path (so tests can assert that a refused download never touched the network), serves
bytes in small writes, can announce more bytes than it sends (a dropped connection), and stops by itself after
`lifetime_s` even if a test forgets to stop it.
"""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from facechain_ext.config import Settings
from facechain_ext.models import ModelArchive, ModelFile, ModelSpec


@dataclass
class Served:
    body: bytes
    announce: int | None = None  # Content-Length to send; defaults to len(body)


@dataclass
class ModelServer:
    files: dict[str, Served] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    base_url: str = ""

    def add(self, path: str, body: bytes, announce: int | None = None) -> str:
        self.files[path] = Served(body, announce)
        return f"{self.base_url}{path}"


def _handler(server_state: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            server_state.requests.append(self.path)
            served = server_state.files.get(self.path)
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
