"""The files of a ModelScope model repository, read through the `modelscope` package's hub client.

What the client gives us (modelscope 1.28–1.37, `modelscope/hub/api.py` and `modelscope/hub/file_download.py`):
- `HubApi(endpoint).get_model_files(model_id, revision, recursive=True)`: GET
  `{endpoint}/api/v1/models/{model_id}/repo/files?Revision={revision}&Recursive=True`; the answer's `Data.Files` are
  dicts with `Path`, `Name`, `Type` ("blob" | "tree"), `Size` (bytes) and `Sha256` (hex) per file — the values the
  client itself checks its downloads against (`file_integrity_validation`).
- `get_file_download_url(model_id, file_path, revision, endpoint)`: `{endpoint}/api/v1/models/{model_id}/repo?
  Revision={revision}&FilePath={file_path}` (the server answers with the bytes or a redirect to them).
The endpoint is `Settings.modelscope_endpoint` when set, else the client's own default (`https://` + the
MODELSCOPE_DOMAIN environment variable, or www.modelscope.cn). The bytes are then streamed by facechain_ext.downloads
(temp file beside the target, progress, cancel, sha256 + size against this listing, then os.replace).

Anonymous on purpose: an empty cookie jar is passed, so no login cookies of the user's modelscope CLI are read or
sent. modelscope >= 1.38 delegates to the modelscope-hub package, whose listing carries no sha256: such a listing
is refused as unverifiable rather than downloaded unchecked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http.cookiejar import CookieJar
from typing import TYPE_CHECKING, Any, Optional

from .errors import FaceChainError

if TYPE_CHECKING:
    from .models import HubRepo

TIMEOUT_S = 30  # per request of the listing (the file streams have their own timeout in downloads.py)
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class ListedFile:
    """One file of the listing: `path` in the repository, `size` in bytes, `sha256` (lower-case hex), download `url`."""

    path: str
    size: int
    sha256: str
    url: str


def _client() -> tuple[Any, Any]:
    """(HubApi, get_file_download_url), imported only when a download starts (modelscope imports torch)."""
    try:
        from modelscope.hub.api import HubApi
        from modelscope.hub.file_download import get_file_download_url
    except ImportError as exc:
        from .models import MODELSCOPE_REQUIREMENT

        raise FaceChainError(
            "dependency_missing",
            f"The modelscope package cannot be imported ({exc}); restart the webui so FaceChain's install.py installs "
            f"it, or run pip install \"{MODELSCOPE_REQUIREMENT}\".", package="modelscope",
        ) from exc
    return HubApi, get_file_download_url


def list_files(repo: HubRepo, endpoint: Optional[str] = None) -> dict[str, ListedFile]:
    """Every file of `repo` at its revision, by path; FaceChainError `download_failed` when the listing fails."""
    hub_api, download_url = _client()
    api = hub_api(endpoint=endpoint or None, timeout=TIMEOUT_S)  # None: the client's default endpoint
    where = f"{repo.repo} (revision {repo.revision}) at {api.endpoint}"
    try:
        entries = api.get_model_files(repo.repo, revision=repo.revision, recursive=True, use_cookies=CookieJar())
    except Exception as exc:  # noqa: BLE001 - requests, urllib3 and modelscope errors alike: the listing failed
        raise FaceChainError(
            "download_failed", f"Could not read the file list of {where}: {type(exc).__name__}: {exc}",
            repo=repo.repo, revision=repo.revision, endpoint=api.endpoint,
        ) from exc
    files = {}
    for entry in entries or []:
        if not isinstance(entry, dict) or entry.get("Type", "blob") == "tree" or not entry.get("Path"):
            continue
        path = str(entry["Path"])
        files[path] = ListedFile(
            path=path, size=_size(entry), sha256=_sha256(entry, where),
            url=download_url(repo.repo, path, repo.revision, endpoint=api.endpoint),
        )
    return files


def listed_file(files: dict[str, ListedFile], name: str, repo: HubRepo) -> ListedFile:
    """The listing entry of `name`; `download_failed` naming the repository when it is not there."""
    entry = files.get(name)
    if entry is None:
        raise FaceChainError(
            "download_failed",
            f"{name} is not in the file list of {repo.repo} at revision {repo.revision} (it lists "
            f"{', '.join(sorted(files)) or 'nothing'}); nothing was downloaded.",
            file=name, repo=repo.repo, revision=repo.revision,
        )
    if entry.sha256 == "":
        from importlib.metadata import version

        from .models import MODELSCOPE_REQUIREMENT

        raise FaceChainError(
            "unverifiable_model",
            f"The file list of {repo.repo} gives no sha256 for {name} (modelscope {version('modelscope')} is "
            f"installed; versions from 1.38 on drop it), so FaceChain will not download it. Install "
            f"\"{MODELSCOPE_REQUIREMENT}\" or put the file into the folder by hand.", file=name, repo=repo.repo,
        )
    return entry


def _size(entry: dict) -> int:
    try:
        return int(entry.get("Size"))  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise FaceChainError("download_failed", f"The file list gives no usable size for {entry.get('Path')!r}.",
                             file=str(entry.get("Path"))) from exc


def _sha256(entry: dict, where: str) -> str:
    """The listed sha256 in lower case, "" when the listing has none, `download_failed` when it is malformed."""
    value = entry.get("Sha256")
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise FaceChainError("download_failed", f"The file list of {where} gives a malformed sha256 {value!r} for "
                             f"{entry.get('Path')!r}; nothing was downloaded.", file=str(entry.get("Path")))
    return value.lower()
