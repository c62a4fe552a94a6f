"""Style presets: one validated JSON file per style (schema documented in styles/README.md).

A style is words and numbers only: a prompt (optionally with an `{identity}` placeholder where the person's trigger and
phrase go), a negative prompt, multipliers, recommended sampler settings and, optionally, a style LoRA that is either a
file the user already has in the host's Lora folder or a manifest entry (source + sha256) that may be downloaded only
after the user consents. The built-in presets ship in `<extension>/styles/`; users add their own folders.
A broken file never breaks the library: it is listed in `StyleLibrary.errors` under its file name.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping, Optional

from pydantic import BaseModel, Field

from .errors import FaceChainError
from .modelcompat import parse_model
from .names import STYLE_ID, STYLE_ID_RULE, check_name, is_valid

BUILTIN_STYLES_DIR = Path(__file__).resolve().parents[1] / "styles"
SCHEMA_VERSION = 1
IDENTITY_PLACEHOLDER = "{identity}"

_SHA256 = re.compile(r"[0-9a-f]{64}")
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
LORA_SOURCES = ("huggingface", "modelscope", "url")
LORA_SUFFIXES = (".safetensors", ".pt", ".ckpt")


class LoraManifest(BaseModel):
    """Where a style LoRA can be fetched from, with the checksum the download must match."""

    source: str  # one of LORA_SOURCES
    sha256: str
    repo: Optional[str] = None  # huggingface / modelscope repository id
    file: Optional[str] = None  # file inside the repository (also the local file name)
    revision: Optional[str] = None
    url: Optional[str] = None  # for source == "url"
    size: Optional[int] = Field(default=None, ge=1)
    license: Optional[str] = None

    class Config:
        extra = "forbid"


class StyleLora(BaseModel):
    """A style LoRA: a file in the host's Lora folder, or a manifest entry to download (with consent) into it."""

    file: Optional[str] = None  # relative to the host Lora folder, e.g. "styles/film_grain.safetensors"
    manifest: Optional[LoraManifest] = None
    name: Optional[str] = None  # prompt name for <lora:NAME:W>; default: the file's stem

    class Config:
        extra = "forbid"

    @property
    def local_file(self) -> str:
        """Path relative to the Lora folder where the file is (or will be, after a consented download)."""
        if self.file:
            return self.file
        assert self.manifest is not None  # guaranteed by validate_style
        name = self.manifest.file or PurePosixPath(self.manifest.url or "style.safetensors").name
        return f"FaceChain/styles/{PurePosixPath(name).name}"

    @property
    def prompt_name(self) -> str:
        return self.name or PurePosixPath(self.local_file).stem


class Recommended(BaseModel):
    sampler: Optional[str] = None  # host sampler name, e.g. "DPM++ 2M"
    scheduler: Optional[str] = None  # host schedule type, e.g. "Karras" (A1111 >= 1.9)
    steps: Optional[int] = Field(default=None, ge=1, le=150)
    cfg_scale: Optional[float] = Field(default=None, ge=1.0, le=30.0)
    width: Optional[int] = Field(default=None, ge=64, le=2048)
    height: Optional[int] = Field(default=None, ge=64, le=2048)

    class Config:
        extra = "forbid"


class Style(BaseModel):
    schema_version: int = SCHEMA_VERSION
    id: str
    name: str
    description: str = ""
    tags: list[str] = []
    prompt: str
    negative_prompt: str = ""
    style_lora: Optional[StyleLora] = None
    style_multiplier: float = Field(default=0.35, ge=0.0, le=2.0)  # weight of the style LoRA
    face_lora_multiplier: float = Field(default=1.0, ge=0.0, le=2.0)  # scales the identity LoRA weight
    recommended: Recommended = Recommended()
    preview: Optional[str] = None  # image path relative to the style file's folder

    class Config:
        extra = "forbid"


# txt2img field (host name) -> Recommended field
RECOMMENDED_FIELDS = {"sampler_name": "sampler", "scheduler": "scheduler", "steps": "steps", "cfg_scale": "cfg_scale",
                      "width": "width", "height": "height"}


def apply_recommended(
    fields: dict[str, Any], style: Optional[Style], fallback: Mapping[str, Any]
) -> dict[str, Any]:
    """The ONE precedence rule for a styled generation's sampler settings, used by the route and the tab.

    For each of RECOMMENDED_FIELDS: a value set in `fields` (not None) wins, else the style's recommendation, else
    `fallback` (the host API's defaults for the route; the tab's controls when "use the style's settings" is on,
    which the tab expresses by leaving those fields unset). Modifies and returns `fields`; `invalid_request` when
    the resulting width or height is not a multiple of 8 (the latent is 1/8 of the image).
    """
    recommended = style.recommended if style is not None else None
    for field_name, key in RECOMMENDED_FIELDS.items():
        if fields.get(field_name) is not None:
            continue
        value = getattr(recommended, key) if recommended is not None else None
        fields[field_name] = value if value is not None else fallback.get(field_name)
    for side in ("width", "height"):
        if fields.get(side) is not None and int(fields[side]) % 8:
            raise FaceChainError("invalid_request", f"{side}: {fields[side]} must be a multiple of 8.", field=side)
    return fields


def _safe_relative(path: str) -> bool:
    pure = PurePosixPath(path.replace("\\", "/"))
    return bool(path) and not pure.is_absolute() and ".." not in pure.parts and ":" not in path


def _lora_problems(lora: StyleLora) -> list[str]:
    problems = []
    if (lora.file is None) == (lora.manifest is None):
        return ["style_lora: give exactly one of 'file' (in the host Lora folder) or 'manifest' (downloadable)"]
    if lora.file is not None and (not _safe_relative(lora.file) or not lora.file.endswith(LORA_SUFFIXES)):
        problems.append(f"style_lora.file: {lora.file!r} must be a relative path ending in {', '.join(LORA_SUFFIXES)}")
    manifest = lora.manifest
    if manifest is not None:
        if manifest.source not in LORA_SOURCES:
            problems.append(f"style_lora.manifest.source: {manifest.source!r} is not one of {', '.join(LORA_SOURCES)}")
        if not _SHA256.fullmatch(manifest.sha256):
            problems.append("style_lora.manifest.sha256: must be 64 lowercase hex digits")
        if manifest.source == "url" and not (manifest.url or "").startswith("https://"):
            problems.append("style_lora.manifest.url: an https:// URL is required when source is 'url'")
        if manifest.source in ("huggingface", "modelscope") and not (manifest.repo and manifest.file):
            problems.append(f"style_lora.manifest: 'repo' and 'file' are required when source is {manifest.source!r}")
        if manifest.file is not None and not _safe_relative(manifest.file):
            problems.append(f"style_lora.manifest.file: {manifest.file!r} must be a relative path")
    return problems


def style_problems(style: Style) -> list[str]:
    """Rules the field types cannot express; empty when the style is valid."""
    problems = []
    if style.schema_version != SCHEMA_VERSION:
        problems.append(f"schema_version: {style.schema_version} is not supported (expected {SCHEMA_VERSION})")
    if not is_valid(style.id, STYLE_ID):
        problems.append(f"id: {style.id!r} must be {STYLE_ID_RULE}")
    if not style.name.strip():
        problems.append("name: must not be empty")
    if not style.prompt.strip():
        problems.append("prompt: must not be empty")
    for field_name in ("prompt", "negative_prompt"):
        text = getattr(style, field_name)
        if "<lora:" in text.lower():
            problems.append(f"{field_name}: put the style LoRA in 'style_lora', not as <lora:...> text")
        for placeholder in _PLACEHOLDER.findall(text):
            if placeholder != IDENTITY_PLACEHOLDER or field_name == "negative_prompt":
                problems.append(f"{field_name}: unknown placeholder {placeholder} (only {IDENTITY_PLACEHOLDER} in prompt)")
    if style.prompt.count(IDENTITY_PLACEHOLDER) > 1:
        problems.append(f"prompt: {IDENTITY_PLACEHOLDER} may appear at most once")
    rec = style.recommended
    for side in ("width", "height"):
        value = getattr(rec, side)
        if value is not None and value % 8:
            problems.append(f"recommended.{side}: {value} must be a multiple of 8")
    if style.preview is not None and not _safe_relative(style.preview):
        problems.append(f"preview: {style.preview!r} must be a relative path inside the styles folder")
    if style.style_lora is not None:
        problems.extend(_lora_problems(style.style_lora))
    return problems


def parse_style(data: object, *, what: str = "style") -> Style:
    """Validate a style given as dict or JSON text; FaceChainError('invalid_style') lists every problem."""
    style = parse_model(Style, data, what=what, code="invalid_style")
    problems = style_problems(style)
    if problems:
        raise FaceChainError("invalid_style", f"{what}: " + "; ".join(problems), input=what, problems=problems)
    return style


def load_style_file(path: Path) -> Style:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FaceChainError("invalid_style", f"{path.name}: cannot read the file ({exc}).", input=path.name) from exc
    style = parse_style(text, what=path.name)
    if style.id != path.stem:
        raise FaceChainError(
            "invalid_style", f"{path.name}: id {style.id!r} must equal the file name {path.stem!r}.", input=path.name
        )
    return style


class StyleLibrary:
    """Built-in presets plus the user's folders; later folders override earlier ones with the same id.

    Loaded lazily on first use; `reload()` re-reads the folders (the UI's refresh button). Files that fail
    validation are skipped and reported in `.errors` as {file path: reason}.
    """

    def __init__(self, extra_dirs: Iterable[Path | str] = (), *, builtin_dir: Optional[Path] = BUILTIN_STYLES_DIR) -> None:
        self.dirs: list[Path] = ([builtin_dir] if builtin_dir is not None else []) + [Path(d) for d in extra_dirs]
        self._lock = threading.Lock()
        self._styles: Optional[dict[str, Style]] = None
        self._folders: dict[str, Path] = {}
        self._errors: dict[str, str] = {}

    def reload(self) -> None:
        styles: dict[str, Style] = {}
        folders: dict[str, Path] = {}
        errors: dict[str, str] = {}
        for folder in self.dirs:
            if not folder.is_dir():
                if folder != BUILTIN_STYLES_DIR:
                    errors[str(folder)] = "styles folder does not exist"
                continue
            for path in sorted(folder.glob("*.json")):
                try:
                    style = load_style_file(path)
                except FaceChainError as exc:
                    errors[str(path)] = exc.message
                    continue
                styles[style.id] = style
                folders[style.id] = folder
        with self._lock:
            self._styles, self._folders, self._errors = styles, folders, errors

    def _loaded(self) -> dict[str, Style]:
        if self._styles is None:
            self.reload()
        assert self._styles is not None
        return self._styles

    @property
    def errors(self) -> dict[str, str]:
        self._loaded()
        return dict(self._errors)

    def list(self) -> list[Style]:
        return sorted(self._loaded().values(), key=lambda style: style.name.lower())

    def ids(self) -> list[str]:
        return [style.id for style in self.list()]

    def get(self, style_id: str) -> Style:
        check_name(style_id, "style id", pattern=STYLE_ID, rule=STYLE_ID_RULE)
        styles = self._loaded()
        if style_id not in styles:
            raise FaceChainError(
                "style_not_found", f"Style {style_id!r} does not exist.", style=style_id, available=sorted(styles)
            )
        return styles[style_id]

    def preview_path(self, style_id: str) -> Optional[Path]:
        """The preview image of a style, when the file exists."""
        style = self.get(style_id)
        if style.preview is None:
            return None
        path = self._folders[style_id] / style.preview
        return path if path.is_file() else None


def style_lora_path(style: Style, lora_dir: Optional[Path]) -> Optional[Path]:
    """Where the style's LoRA file is expected in the host Lora folder (None if the style has no LoRA)."""
    if style.style_lora is None or lora_dir is None:
        return None
    return Path(lora_dir) / style.style_lora.local_file
