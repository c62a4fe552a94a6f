"""Download a manifest model, only with the user's consent, verified, and installed atomically.

`download_model(spec, settings)` is the one entry point (the HTTP route, the tab's button and the CLI call it):
1. refuse before any network access: `unverifiable_model` (422) when the manifest cannot verify the bytes (then the
   model is manual install only), `downloads_disabled` (403) when the user did not allow downloads or runs offline,
   `dependency_missing` (503) when a ModelScope model's hub client (the modelscope package) is not installed;
2. stream each file (or the model's zip) into a hidden temp file inside the target folder, in chunks, reporting
   progress and checking `should_stop` between chunks; a ModelScope model's files are first looked up in the
   repository's file listing (facechain_ext/modelscope_files.py), which gives each file's address, size and sha256;
3. verify size and sha256 against the manifest (or that listing); a zip is verified as a whole before it is opened,
   then only the expected members are extracted (refusing archives with unsafe member names) and verified again;
4. publish the verified files as one set (`atomic.Publication`) only when all of them are ready: a failure, a cancel
   or Ctrl-C leaves no temp file and no partial model behind; a killed process's temps are removed at the next
   download into the folder.

Standard library only (urllib): the host environment needs no new dependency for this. `opener` lets tests and
callers with special network needs replace `urllib.request.urlopen`.
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
import zipfile
from contextlib import ExitStack
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterable

from .atomic import Publication, our_name
from .config import Settings
from .errors import FaceChainError
from .models import (
    HubRepo,
    ModelArchive,
    ModelFile,
    ModelSpec,
    consent_problem,
    dependency_problem,
    found_file,
    get_spec,
    is_installed,
    manual_reason,
)

if TYPE_CHECKING:
    from .context import FaceChainContext
    from .jobs import Job, JobHandle

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 30.0  # per socket operation (connect, each read): a stalled server fails instead of hanging a job
USER_AGENT = "sd-webui-facechain (model download)"

Progress = Callable[[int, int, str], None]
ShouldStop = Callable[[], bool]
Opener = Callable[..., Any]  # (request, timeout=...) -> response with .read(n) and .headers


def check_download_allowed(spec: ModelSpec, settings: Settings) -> None:
    """Raise the error a download of `spec` would end with before touching the network (422, then 403)."""
    target = spec.folders(settings)[0]
    manual = manual_reason(spec)
    if manual is not None:
        raise FaceChainError(
            "unverifiable_model",
            f"FaceChain cannot download {spec.name} verifiably ({manual}), so it is manual install only: put "
            f"{', '.join(f.name for f in spec.files)} into {target} by hand (licence: {spec.licence}).",
            model=spec.name, path=str(target),
        )
    problem = consent_problem(settings)
    if problem is not None:
        raise FaceChainError(
            "downloads_disabled", f"Not downloading {spec.name}: {problem} Or put the files into {target} by hand.",
            model=spec.name, path=str(target), offline=settings.offline, allow_downloads=settings.allow_downloads,
        )
    dependency = dependency_problem(spec)
    if dependency is not None:
        raise FaceChainError("dependency_missing", f"Cannot download {spec.name}: {dependency}. Or put "
                             f"{', '.join(f.name for f in spec.files)} into {target} by hand.",
                             model=spec.name, path=str(target), package="modelscope")


def submit_download(ctx: FaceChainContext, name: str) -> Job:
    """Queue the download of manifest model `name` as a FaceChain job (tab and API); refusals are raised now.

    The job re-reads `ctx.settings` when it starts, so consent withdrawn meanwhile still stops it.
    """
    spec = get_spec(name)
    check_download_allowed(spec, ctx.settings.check_folders())

    def run(handle: JobHandle) -> dict[str, Any]:
        result = download_model(spec, ctx.settings, progress=handle.progress, should_stop=lambda: handle.cancelled)
        ctx.reset_analyzers()  # a new face pack changes what backend "auto" resolves to
        return result

    return ctx.jobs.submit("model_download", run, exclusive_key=f"model_download:{spec.name}")


def download_model(
    spec: ModelSpec,
    settings: Settings,
    *,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
    opener: Opener | None = None,
) -> dict[str, Any]:
    """Download, verify and install `spec` into its first candidate folder; returns what was installed."""
    check_download_allowed(spec, settings)
    target = spec.folders(settings)[0]
    if is_installed(spec, settings):
        return _result(spec, target, downloaded=0, already_present=True)
    target.mkdir(parents=True, exist_ok=True)
    # One publication: the model's files appear together or not at all, and a killed download's temps are ours to
    # clean (atomic.clean_folder) at the next download into this folder.
    with Publication(target) as publication, ExitStack() as temps:  # temps registered here are deleted on the way out
        fetch = _Fetcher(spec, progress or _no_progress, should_stop or _never, opener or urllib.request.urlopen,
                         publication.token)
        if spec.modelscope is not None:
            ready = _download_from_modelscope(spec, spec.modelscope, settings.modelscope_endpoint, target, fetch, temps)
        elif spec.archive is not None:
            ready = _download_archive(spec, spec.archive, target, fetch, temps)
        else:
            ready = [(fetch.file(f.url or "", f.name, f.size, f.sha256, target, temps), f.name) for f in spec.files]
        fetch.stop_if_asked()
        for temp, name in ready:
            publication.add(name, temp)
        publication.commit()
    fetch.report(f"{spec.name}: installed in {target}")
    return _result(spec, target, downloaded=fetch.done, already_present=False)


def _download_from_modelscope(
    spec: ModelSpec, repo: HubRepo, endpoint: str | None, target: Path, fetch: _Fetcher, temps: ExitStack
) -> list[tuple[Path, str]]:
    """Each file at the address, size and sha256 the repository's ModelScope file listing gives (one listing call)."""
    from .modelscope_files import list_files, listed_file

    fetch.report(f"{spec.name}: reading the file list of {repo.repo} (revision {repo.revision})")
    listing = list_files(repo, endpoint)
    entries = [(f, listed_file(listing, f.name, repo)) for f in spec.files]
    for expected, entry in entries:
        if expected.sha256 is not None and expected.sha256.lower() != entry.sha256:
            raise FaceChainError("checksum_mismatch", f"ModelScope lists {expected.name} with sha256 {entry.sha256}, "
                                 f"the manifest {expected.sha256}; nothing was downloaded.", file=expected.name)
        fetch.total += entry.size
    fetch.stop_if_asked()
    return [(fetch.file(entry.url, f.name, entry.size, entry.sha256, target, temps), f.name) for f, entry in entries]


def _download_archive(
    spec: ModelSpec, archive: ModelArchive, target: Path, fetch: _Fetcher, temps: ExitStack
) -> list[tuple[Path, str]]:
    zip_path = fetch.file(archive.url, archive.file_name, archive.size, archive.sha256, target, temps)
    fetch.report(f"{spec.name}: extracting {archive.file_name}")
    files = {f.name: f for f in spec.files}
    ready = []
    try:
        with zipfile.ZipFile(zip_path) as bundle:
            for member, info in _checked_members(bundle, archive).items():
                fetch.stop_if_asked()
                expected = files[PurePosixPath(member).name]
                temp = _extract_member(bundle, info, expected, archive.file_name, target, temps, fetch.token)
                ready.append((temp, expected.name))
    except zipfile.BadZipFile as exc:  # only reachable when the manifest knows the size but not the sha256
        raise FaceChainError("download_failed", f"{archive.file_name} from {archive.url} is not a readable zip "
                             f"({exc}); nothing was installed.", url=archive.url) from exc
    return ready


def _checked_members(bundle: zipfile.ZipFile, archive: ModelArchive) -> dict[str, zipfile.ZipInfo]:
    """The expected members' entries; refuse an archive with any unsafe name (even one we would not extract)."""
    for info in bundle.infolist():
        if not _safe_member_name(info.filename):
            raise FaceChainError(
                "unsafe_archive",
                f"{archive.file_name} from {archive.url} contains the unsafe path {info.filename!r}; nothing was "
                "extracted.", url=archive.url, member=info.filename,
            )
    by_name = {info.filename: info for info in bundle.infolist() if not info.is_dir()}
    missing = [m for m in archive.members if m not in by_name]
    if missing:
        raise FaceChainError(
            "download_failed", f"{archive.file_name} from {archive.url} lacks {', '.join(missing)}.",
            url=archive.url, missing=missing,
        )
    return {m: by_name[m] for m in archive.members}


def _safe_member_name(name: str) -> bool:
    """A relative POSIX path without '..', drive letters or backslashes (zip slip, Windows paths)."""
    if not name or "\\" in name or ":" in name or name.startswith("/"):
        return False
    return all(part not in ("..", "") for part in name.rstrip("/").split("/"))


def _extract_member(
    bundle: zipfile.ZipFile, info: zipfile.ZipInfo, expected: ModelFile, zip_name: str, target: Path, temps: ExitStack,
    token: str,
) -> Path:
    """Copy one member into a temp file in `target`, bounded by its published (else declared) size, and verify it."""
    limit = expected.size if expected.size is not None else info.file_size
    origin = f"in {zip_name}"
    temp = _temp_file(target, expected.name, temps, token)
    digest, written = hashlib.sha256(), 0
    with bundle.open(info) as source, open(temp, "wb") as sink:
        while chunk := source.read(CHUNK_BYTES):
            written += len(chunk)
            if written > limit:  # a lying header (zip bomb) or another file: stop before filling the disk
                raise FaceChainError("checksum_mismatch", f"{expected.name} ({origin}) is larger than {limit} bytes; "
                                     "nothing was installed.", file=expected.name, expected_size=limit)
            digest.update(chunk)
            sink.write(chunk)
    _verify(expected.name, origin, written, digest.hexdigest(), expected.size, expected.sha256)
    return temp


class _Fetcher:
    """Streams URLs into temp files for one model download, with shared progress and cancel checks."""

    def __init__(self, spec: ModelSpec, progress: Progress, should_stop: ShouldStop, opener: Opener, token: str) -> None:
        self.spec = spec
        self.token = token  # the publication's: temp names `.facechain-<token>.<name>.tmp` (atomic.our_name)
        self.progress = progress
        self.should_stop = should_stop
        self.opener = opener
        self.done = 0
        self.total = _known_total(spec)

    def report(self, text: str) -> None:
        self.progress(self.done, max(self.total, self.done), text)

    def stop_if_asked(self) -> None:
        if self.should_stop():
            raise FaceChainError("cancelled", f"The download of {self.spec.name} was cancelled; nothing was installed.",
                                 model=self.spec.name)

    def file(self, url: str, name: str, size: int | None, sha256: str | None, target: Path, temps: ExitStack) -> Path:
        """Download `url` into a temp file in `target`, verified against `size`/`sha256`; returns the temp path."""
        if not url.startswith(("https://", "http://")):
            raise FaceChainError("unverifiable_model", f"{name}: only http(s) downloads are supported ({url!r}).",
                                 url=url)
        temp = _temp_file(target, name, temps, self.token)
        self.stop_if_asked()
        try:
            with self.opener(urllib.request.Request(url, headers={"User-Agent": USER_AGENT}), timeout=TIMEOUT_S) as rsp:
                announced = _content_length(rsp)
                if size is None and announced is not None:
                    self.total += announced
                with open(temp, "wb") as sink:
                    written, digest = self._stream(rsp, sink, name, url, size)
        except FaceChainError:
            raise
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            raise FaceChainError("download_failed", f"Downloading {name} from {url} failed ({_reason(exc)}).",
                                 url=url, file=name) from exc
        if announced is not None and written != announced:
            raise FaceChainError("download_failed", f"The connection to {url} ended after {written} of {announced} "
                                 "bytes; nothing was installed. Try again.", url=url, file=name)
        _verify(name, f"downloaded from {url}", written, digest, size, sha256)
        return temp

    def _stream(self, rsp: BinaryIO, sink: BinaryIO, name: str, url: str, size: int | None) -> tuple[int, str]:
        digest, written = hashlib.sha256(), 0
        while True:
            self.stop_if_asked()
            chunk = rsp.read(CHUNK_BYTES)
            if not chunk:
                return written, digest.hexdigest()
            written += len(chunk)
            if size is not None and written > size:
                raise FaceChainError("checksum_mismatch", f"{name} from {url} is larger than the published {size} "
                                     "bytes; it was discarded.", url=url, file=name, expected_size=size)
            digest.update(chunk)
            sink.write(chunk)
            self.done += len(chunk)
            self.report(f"{self.spec.name}: {name} {_mb(written)}" + (f" / {_mb(size)}" if size else ""))


def _verify(name: str, origin: str, size: int, sha256: str, expected_size: int | None, expected_sha: str | None) -> None:
    if expected_size is not None and size != expected_size:
        raise FaceChainError("checksum_mismatch", f"{name} ({origin}) has {size} bytes, the published file "
                             f"{expected_size}; it was discarded.", file=name, size=size, expected_size=expected_size)
    if expected_sha is not None and sha256 != expected_sha.lower():
        raise FaceChainError("checksum_mismatch", f"{name} ({origin}) has sha256 {sha256}, the published file "
                             f"{expected_sha}; it was discarded.", file=name, sha256=sha256, expected_sha256=expected_sha)


def _temp_file(folder: Path, name: str, temps: ExitStack, token: str) -> Path:
    path = folder / our_name(token, name, "tmp")
    path.touch(exist_ok=False)
    temps.callback(_remove_quietly, path)
    return path


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:  # already renamed into place
        pass


def _content_length(rsp: Any) -> int | None:
    value = getattr(rsp, "headers", {}).get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _known_total(spec: ModelSpec) -> int:
    sizes: Iterable[int | None] = [spec.archive.size] if spec.archive else [f.size for f in spec.files]
    return sum(size or 0 for size in sizes)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _result(spec: ModelSpec, target: Path, *, downloaded: int, already_present: bool) -> dict[str, Any]:
    return {
        "model": spec.name,
        "path": str(target),
        "already_present": already_present,
        "downloaded_bytes": downloaded,
        "files": [_file_result(target, f) for f in spec.files],
    }


def _file_result(target: Path, expected: ModelFile) -> dict[str, Any]:
    path = found_file(target, expected) or target / expected.name
    return {"name": path.name, "size": path.stat().st_size, "sha256": expected.sha256}


def _no_progress(done: int, total: int, text: str) -> None:
    return None


def _never() -> bool:
    return False
